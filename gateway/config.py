"""Typed, validated configuration loaded from TOML.

Every section is a frozen dataclass whose fields carry their default, bounds and help text in
``metadata``; one generic loader walks them. A bad file never half-loads: the loader collects
*every* problem as ``PATH:LINE: dotted.key: what is wrong and what is expected`` and raises
:class:`ConfigError`, which the CLI turns into exit status 78 (EX_CONFIG).

Secrets (cloud and API keys, camera passwords) can be inline, in a file named by the sibling
``<key>_file`` key, or in systemd's credentials directory under the dotted key name
(``cloud.secret_key``, ``camera.<name>.password``), so they can stay out of the config file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CONFIG_PATH: Final = Path("/etc/ivc-gateway/gateway.toml")
CONFIG_ENV: Final = "IVC_GATEWAY_CONFIG"
EX_CONFIG: Final = 78
CREDENTIAL_ID: Final = "ivc-gateway"  # LoadCredential=ivc-gateway:/etc/ivc-gateway/credentials
REGIONS: Final = ("ap-beijing", "ap-chongqing", "ap-guangzhou", "ap-shanghai")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class Duration(float):
    """Seconds; in TOML a number of seconds or a string such as ``"90s"``, ``"5m"``, ``"1h"``."""


class ByteSize(int):
    """Bytes; in TOML an integer or a string such as ``"500MB"``, ``"2GiB"``."""


class Secret(str):
    """A secret string; never printed by ``repr``."""

    def __repr__(self) -> str:
        return "Secret('***')"


def _meta(
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[str] | None = None,
    pattern: str | None = None,
) -> dict[str, Any]:
    return {"help": help, "min": min, "max": max, "choices": choices, "pattern": pattern}


def _field(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    help_text = meta.pop("help")
    if isinstance(default, list | tuple):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=_meta(help_text, **meta))
    return field(default=default, metadata=_meta(help_text, **meta))


@dataclass(frozen=True, slots=True)
class GatewaySection:
    """Who this gateway is and where it keeps its state."""

    name: str = _field("ivc-gateway", help="human-readable name of this site gateway")
    gateway_id: str = _field("", help="the cloud's GatewayId of this gateway (required with [cloud])")
    state_dir: Path = _field(Path("/var/lib/ivc-gateway"), help="directory for the database, snapshots, recordings")
    timezone: str = _field("UTC", help="the site's IANA time zone, used for record plan time sections")
    log_level: str = _field("info", help="log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True, slots=True)
class CloudSection:
    """The IVC cloud account the gateway registers devices with. Absent = standalone mode."""

    secret_id: str = _field(help="API SecretId of the cloud account")
    secret_key: Secret = _field(help="API SecretKey of the cloud account")
    cluster_id: str = _field(help="service node (ClusterId) new devices are added to")
    organization_id: str = _field(help="organization (OrganizationId) new devices are added to")
    endpoint: str = _field("iss.tencentcloudapi.com", help="API endpoint, host[:port] or URL")
    region: str = _field("ap-guangzhou", help="region of the IVC data", choices=REGIONS)
    timeout: Duration = _field(Duration(10), help="timeout of one cloud call", min=0.5, max=120)


@dataclass(frozen=True, slots=True)
class ApiSection:
    """The local iss-compatible API."""

    listen: str = _field("127.0.0.1:8640", help="HOST:PORT the local API listens on")
    secret_id: str = _field("", help="SecretId callers of the local API sign with")
    secret_key: Secret = _field(Secret(""), help="SecretKey callers of the local API sign with")
    public_url: str = _field("", help="URL the local API is reached at from outside (for snapshot/playback links)")


@dataclass(frozen=True, slots=True)
class RelaySection:
    """The outbound WebSocket that carries cloud commands to the gateway through NAT."""

    url: str = _field(help="ws:// or wss:// URL of the cloud relay", pattern=r"^wss?://")
    max_backoff: Duration = _field(Duration(60), help="longest wait between reconnect attempts", min=1, max=3600)


@dataclass(frozen=True, slots=True)
class DiscoverySection:
    """How cameras are found on the site network."""

    interval: Duration = _field(Duration(300), help="time between discovery rounds", min=10, max=86400)
    multicast: bool = _field(True, help="send WS-Discovery multicast probes")
    interfaces: tuple[str, ...] = _field((), help="IPv4 addresses of the interfaces to probe from (empty = all)")
    probe_timeout: Duration = _field(Duration(3), help="how long to wait for answers to one probe", min=0.2, max=60)
    unicast_hosts: tuple[str, ...] = _field((), help="hosts, ranges (a-b) or CIDRs probed one by one")
    unicast_concurrency: int = _field(32, help="hosts probed at once", min=1, max=1024)
    username: str = _field("admin", help="ONVIF user name tried on discovered devices")
    password: Secret = _field(Secret(""), help="ONVIF password tried on discovered devices")


@dataclass(frozen=True, slots=True)
class CameraEntry:
    """A device configured by hand (always probed, whether discovery finds it or not)."""

    host: str = _field(help="IP address or host name of the camera or NVR")
    port: int = _field(80, help="ONVIF HTTP port", min=1, max=65535)
    username: str = _field("admin", help="ONVIF user name")
    password: Secret = _field(Secret(""), help="ONVIF password")
    name: str = _field("", help="name shown in the cloud (default: the device's model and address)")
    id: str = _field("", help="identity to use when the device reports neither MAC nor serial number")
    https: bool = _field(False, help="talk ONVIF over HTTPS")
    verify_tls: bool = _field(True, help="verify the camera's TLS certificate (https only)")


@dataclass(frozen=True, slots=True)
class RecordingSection:
    """Local recording on the gateway's disk."""

    enabled: bool = _field(True, help="record channels according to record plans")
    directory: Path = _field(Path(""), help="where recordings go (default: <state_dir>/recordings)")
    segment_seconds: int = _field(60, help="length of one recording file", min=5, max=3600)
    retention_days: int = _field(30, help="days kept when the plan sets no lifecycle", min=1, max=3650)
    min_free_bytes: ByteSize = _field(ByteSize(2 * 10**9), help="free-space floor on the recording disk", min=0)
    min_free_percent: float = _field(5.0, help="free-space floor as percent of the disk", min=0, max=90)
    full_disk_policy: str = _field(
        "delete_oldest", help="what to do at the floor", choices=("delete_oldest", "deny_new")
    )
    channels: tuple[str, ...] = _field((), help="standalone mode: channels recorded around the clock")
    plan_refresh: Duration = _field(
        Duration(300), help="how often record plans are fetched from the cloud", min=10, max=86400
    )
    disk_check_interval: Duration = _field(
        Duration(30), help="how often free space on the recording disk is checked", min=1, max=3600
    )


@dataclass(frozen=True, slots=True)
class ReconcileSection:
    """Keeping the cloud's view of the site true."""

    interval: Duration = _field(Duration(60), help="time between reconcile rounds", min=5, max=86400)
    offline_after: int = _field(3, help="missed health checks before a channel is offline", min=1, max=100)
    check_interval: Duration = _field(
        Duration(10), help="time between health checks of every device and channel", min=1, max=3600
    )
    on_cloud_delete: str = _field(
        "reregister", help="a device deleted in the cloud is", choices=("reregister", "leave")
    )


@dataclass(frozen=True, slots=True)
class PtzSection:
    """How cloud PTZ commands drive cameras."""

    step_seconds: Duration = _field(Duration(0.5), help="how long one PTZ command moves", min=0.05, max=10)
    command_timeout: Duration = _field(Duration(5), help="device answer deadline", min=0.5, max=60)


@dataclass(frozen=True, slots=True)
class SnapshotSection:
    """Snapshots taken for ControlDeviceSnapshot and served to ListDeviceSnapshots links."""

    max_per_channel: int = _field(
        1000, help="images kept per channel; the oldest go first beyond it", min=1, max=100000
    )
    link_lifetime: Duration = _field(
        Duration(3600), help="how long a snapshot download/preview link works", min=60, max=7 * 86400
    )
    rtsp_timeout: Duration = _field(
        Duration(10), help="longest wait for a keyframe when the camera has no snapshot", min=1, max=60
    )


@dataclass(frozen=True, slots=True)
class UploadSection:
    """Recording upload plans: closed segments PUT to an HTTP endpoint in the plans' upload hours."""

    url: str = _field(
        "", help="HTTP(S) base URL segments are PUT under (empty = uploads off)", pattern=r"^(https?://.+)?$"
    )
    timeout: Duration = _field(Duration(300), help="longest one segment upload may take", min=1, max=86400)
    concurrency: int = _field(2, help="segments uploaded at once", min=1, max=64)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; ``cloud``/``relay`` are None when absent (standalone mode)."""

    path: Path
    gateway: GatewaySection
    cloud: CloudSection | None
    api: ApiSection
    relay: RelaySection | None
    discovery: DiscoverySection
    cameras: tuple[CameraEntry, ...]
    recording: RecordingSection
    reconcile: ReconcileSection
    ptz: PtzSection
    snapshot: SnapshotSection
    upload: UploadSection = UploadSection()
    warnings: tuple[str, ...] = ()

    @property
    def standalone(self) -> bool:
        """No cloud account: devices keep local ids and nothing is registered."""
        return self.cloud is None

    @property
    def recordings_dir(self) -> Path:
        """Where recordings are written."""
        return self.recording.directory if str(self.recording.directory) not in ("", ".") else self.gateway.state_dir / "recordings"


# Section name in TOML -> (dataclass, is an array of tables, optional)
_SECTIONS: Final[dict[str, tuple[type, bool, bool]]] = {
    "gateway": (GatewaySection, False, False),
    "cloud": (CloudSection, False, True),
    "api": (ApiSection, False, False),
    "relay": (RelaySection, False, True),
    "discovery": (DiscoverySection, False, False),
    "camera": (CameraEntry, True, False),
    "recording": (RecordingSection, False, False),
    "reconcile": (ReconcileSection, False, False),
    "ptz": (PtzSection, False, False),
    "snapshot": (SnapshotSection, False, False),
    "upload": (UploadSection, False, False),
}


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` are ready-to-print lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class _LineIndex:
    """Maps dotted key paths of a TOML text to line numbers, for error messages.

    tomllib gives values but no positions; a light scan of table headers and ``key =`` lines is
    enough to point a technician at the right line.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        counts: dict[str, int] = {}
        prefix = ""
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            if line.count('"""') % 2 or line.count("'''") % 2:
                in_multiline = not in_multiline
                if not in_multiline:
                    continue
            elif in_multiline:
                continue
            header = self._HEADER.match(line)
            if header:
                name = header[2].replace('"', "").replace("'", "").strip()
                if header[1] == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    prefix = f"{name}[{index}]"
                else:
                    prefix = name
                self.lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(line)
            if key:
                dotted = key[1].replace('"', "").replace("'", "")
                self.lines.setdefault(f"{prefix}.{dotted}" if prefix else dotted, number)

    def line_of(self, path: str) -> int:
        """The line of ``path`` or of its closest enclosing table; 1 when nothing matches."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[: path.rindex("[")] if path.endswith("]") else path.rpartition(".")[0]
        return 1


class _Loader:
    """Walks the TOML document against the section dataclasses, collecting problems."""

    def __init__(self, path: Path, text: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.index = _LineIndex(text)
        self.environ = environ
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.inline_secrets: list[str] = []

    def problem(self, dotted: str, message: str) -> None:
        self.problems.append(f"{self.path}:{self.index.line_of(dotted)}: {dotted}: {message}")

    def load(self, document: dict[str, Any]) -> Config | None:
        for key in document:
            if key not in _SECTIONS:
                self.problem(key, f"unknown section; expected one of {', '.join(sorted(_SECTIONS))}")
        built: dict[str, Any] = {}
        for name, (cls, is_array, optional) in _SECTIONS.items():
            raw = document.get(name)
            if is_array:
                built[name] = self._load_array(name, cls, raw)
            elif raw is None and optional:
                built[name] = None
            elif raw is not None and not isinstance(raw, dict):
                self.problem(name, f"must be a table [{name}], not {_type_name(raw)}")
                built[name] = None
            else:
                built[name] = self._load_section(name, cls, raw or {})
        self._check_cross_section(built)
        if self.problems:
            return None
        self._warn_world_readable()
        return Config(
            path=self.path,
            gateway=built["gateway"],
            cloud=built["cloud"],
            api=built["api"],
            relay=built["relay"],
            discovery=built["discovery"],
            cameras=built["camera"],
            recording=built["recording"],
            reconcile=built["reconcile"],
            ptz=built["ptz"],
            snapshot=built["snapshot"],
            upload=built["upload"],
            warnings=tuple(self.warnings),
        )

    def _load_array(self, name: str, cls: type, raw: Any) -> tuple[Any, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.problem(name, f"must be written as [[{name}]] tables")
            return ()
        entries = []
        for i, item in enumerate(raw):
            entry = self._load_section(f"{name}[{i}]", cls, item, credential_prefix=f"{name}.{item.get('name') or item.get('host') or i}")
            if entry is not None:
                entries.append(entry)
        return tuple(entries)

    def _load_section(self, dotted: str, cls: type, raw: dict[str, Any], credential_prefix: str | None = None) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        secret_files = {f"{name}_file" for name, hint in hints.items() if hint is Secret}
        problems_before = len(self.problems)
        for key in raw:
            if key not in fields and key not in secret_files:
                known = ", ".join(sorted([*fields, *secret_files]))
                self.problem(f"{dotted}.{key}", f"unknown key; expected one of {known}")
        values: dict[str, Any] = {}
        for name, fld in fields.items():
            key_path = f"{dotted}.{name}"
            hint = hints[name]
            if hint is Secret:
                before = len(self.problems)
                value = self._resolve_secret(key_path, raw, name, credential_prefix or dotted)
                if value is None:
                    if fld.default is dataclasses.MISSING and len(self.problems) == before:
                        self.problem(key_path, f"missing; set {name}, {name}_file or a systemd credential named {credential_prefix or dotted}.{name}")
                    continue
                values[name] = Secret(value)
                continue
            if name not in raw:
                if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                    self.problem(key_path, f"missing required key ({fld.metadata['help']})")
                continue
            converted = self._convert(key_path, raw[name], hint, fld.metadata)
            if converted is not _INVALID:
                values[name] = converted
        if len(self.problems) > problems_before:
            return None
        return cls(**values)

    def _resolve_secret(self, key_path: str, raw: dict[str, Any], name: str, credential_prefix: str) -> str | None:
        inline = raw.get(name)
        file_key = f"{name}_file"
        if inline is not None and file_key in raw:
            self.problem(key_path, f"set either {name} or {file_key}, not both")
            return None
        if inline is not None:
            if not isinstance(inline, str):
                self.problem(key_path, f"must be a string, not {_type_name(inline)}")
                return None
            if inline:
                self.inline_secrets.append(key_path)
            return inline
        if file_key in raw:
            target = raw[file_key]
            if not isinstance(target, str) or not target:
                self.problem(f"{key_path}_file", "must be the path of a file holding the secret")
                return None
            secret_path = Path(target) if Path(target).is_absolute() else self.path.parent / target
            try:
                return secret_path.read_text(encoding="utf-8").strip()
            except OSError as err:
                self.problem(f"{key_path}_file", f"cannot read {secret_path}: {err.strerror}")
                return None
        credentials = self.environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            # systemd names credentials loaded from a directory "<ID>_<file name>".
            for credential in (f"{credential_prefix}.{name}", f"{CREDENTIAL_ID}_{credential_prefix}.{name}"):
                candidate = Path(credentials) / credential
                if candidate.is_file():
                    return candidate.read_text(encoding="utf-8").strip()
        return None

    def _convert(self, key_path: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(hint)
        if origin is tuple:
            (item_type, _ellipsis) = typing.get_args(hint)
            if not isinstance(value, list):
                self.problem(key_path, f"must be a list of {_hint_name(item_type)}, not {_type_name(value)}")
                return _INVALID
            items = [self._convert(f"{key_path}[{i}]", item, item_type, {}) for i, item in enumerate(value)]
            return _INVALID if _INVALID in items else tuple(items)
        if origin in (types.UnionType, typing.Union):
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        converted = self._scalar(key_path, value, hint)
        if converted is _INVALID:
            return _INVALID
        return converted if self._check_bounds(key_path, converted, meta) else _INVALID

    def _scalar(self, key_path: str, value: Any, hint: Any) -> Any:
        if hint is bool:
            if isinstance(value, bool):
                return value
            self.problem(key_path, f"must be true or false, not {_type_name(value)}")
        elif hint is Duration:
            seconds = _parse_duration(value)
            if seconds is not None:
                return Duration(seconds)
            self.problem(key_path, f"must be a duration: seconds as a number or a string like \"30s\", \"5m\", \"1h\", not {value!r}")
        elif hint is ByteSize:
            size = _parse_size(value)
            if size is not None:
                return ByteSize(size)
            self.problem(key_path, f"must be a size: bytes as an integer or a string like \"500MB\", \"2GiB\", not {value!r}")
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            self.problem(key_path, f"must be an integer, not {_type_name(value)}")
        elif hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            self.problem(key_path, f"must be a number, not {_type_name(value)}")
        elif hint is Path:
            if isinstance(value, str):
                return Path(value)
            self.problem(key_path, f"must be a path string, not {_type_name(value)}")
        elif hint is str:
            if isinstance(value, str):
                return value
            self.problem(key_path, f"must be a string, not {_type_name(value)}")
        else:  # pragma: no cover - a field type the loader does not know is a bug in this module
            raise TypeError(f"unsupported config field type {hint!r}")
        return _INVALID

    def _check_bounds(self, key_path: str, value: Any, meta: Mapping[str, Any]) -> bool:
        low, high, choices, pattern = meta.get("min"), meta.get("max"), meta.get("choices"), meta.get("pattern")
        if choices is not None and value not in choices:
            self.problem(key_path, f"{value!r} is not allowed; expected one of {', '.join(map(repr, choices))}")
            return False
        if pattern is not None and not re.match(pattern, str(value)):
            self.problem(key_path, f"{value!r} does not look right; expected a value matching {pattern}")
            return False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"between {_num(low)} and {_num(high)}" if high is not None else f"at least {_num(low)}"
                self.problem(key_path, f"{_num(value)} is out of range; expected {bounds}")
                return False
        return True

    def _check_cross_section(self, built: dict[str, Any]) -> None:
        """Checks that span keys; each runs only when the sections it reads loaded cleanly."""
        gateway: GatewaySection | None = built["gateway"]
        api: ApiSection | None = built["api"]
        discovery: DiscoverySection | None = built["discovery"]
        if gateway is not None:
            if built["cloud"] is not None and not gateway.gateway_id:
                self.problem("gateway.gateway_id", "missing; the cloud's GatewayId is required when [cloud] is set")
            try:
                ZoneInfo(gateway.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                self.problem(
                    "gateway.timezone", f"unknown time zone {gateway.timezone!r}; expected an IANA name like \"Asia/Shanghai\""
                )
        if api is not None:
            try:
                _parse_listen(api.listen)
            except ValueError as err:
                self.problem("api.listen", f"{err}; expected HOST:PORT such as \"127.0.0.1:8640\"")
            if bool(api.secret_id) != bool(api.secret_key):
                missing = "api.secret_key" if api.secret_id else "api.secret_id"
                self.problem(missing, "api.secret_id and api.secret_key must be set together")
        if discovery is not None:
            for i, interface in enumerate(discovery.interfaces):
                try:
                    ipaddress.IPv4Address(interface)
                except ValueError:
                    self.problem(f"discovery.interfaces[{i}]", f"{interface!r} is not an IPv4 address of this box")
            for i, spec in enumerate(discovery.unicast_hosts):
                try:
                    expand_hosts([spec], limit=65536)
                except ValueError as err:
                    self.problem(f"discovery.unicast_hosts[{i}]", str(err))
        names = [camera.name for camera in built["camera"] if camera.name]
        for i, camera in enumerate(built["camera"]):
            if camera.name and names.count(camera.name) > 1:
                self.problem(f"camera[{i}].name", f"duplicate camera name {camera.name!r}; names must be unique")

    def _warn_world_readable(self) -> None:
        if not self.inline_secrets:
            return
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IROTH | stat.S_IRGRP):
            self.warnings.append(
                f"{self.path}: holds inline secrets ({', '.join(self.inline_secrets)}) but is readable by other "
                f"users (mode {stat.S_IMODE(mode):o}); run chmod 600 or move them to *_file keys or systemd credentials"
            )


_INVALID: Final = object()


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _hint_name(hint: Any) -> str:
    return {str: "strings", int: "integers", float: "numbers"}.get(hint, getattr(hint, "__name__", str(hint)))


def _parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match[1]) * _DURATION_UNITS[match[2]]
    return None


def _parse_size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            return int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])
    return None


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def parse_listen(listen: str) -> tuple[str, int]:
    """Split a validated ``HOST:PORT`` into its parts."""
    return _parse_listen(listen)


def expand_hosts(specs: Sequence[str], limit: int = 4096) -> list[str]:
    """Expand ``host``, ``a.b.c.d-a.b.c.e`` ranges and CIDRs into addresses, in order.

    ``limit`` guards against a typo such as ``/8`` turning discovery into a scan of millions.
    """
    hosts: list[str] = []
    for spec in specs:
        spec = spec.strip()
        if "/" in spec:
            try:
                network = ipaddress.ip_network(spec, strict=False)
            except ValueError:
                raise ValueError(f"{spec!r} is not a valid CIDR such as 192.168.1.0/24") from None
            if len(hosts) + network.num_addresses > limit + 2:
                raise ValueError(f"{spec!r} expands to more than {limit} hosts; narrow it down")
            addresses = [str(a) for a in (network.hosts() if network.num_addresses > 2 else network)]
        elif "-" in spec:
            first, _, last = spec.partition("-")
            try:
                start, end = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
            except ValueError:
                raise ValueError(f"{spec!r} is not a range such as 192.168.1.10-192.168.1.40") from None
            if end < start:
                raise ValueError(f"{spec!r} ends before it starts")
            if len(hosts) + int(end) - int(start) >= limit:
                raise ValueError(f"{spec!r} expands to more than {limit} hosts; narrow it down")
            addresses = [str(ipaddress.IPv4Address(n)) for n in range(int(start), int(end) + 1)]
        elif spec:
            addresses = [spec]
        else:
            raise ValueError("empty host")
        hosts.extend(addresses)
        if len(hosts) > limit:
            raise ValueError(f"{spec!r} expands to more than {limit} hosts; narrow it down")
    return hosts


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate ``path``; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1: (file): not found; pass --config PATH or set {CONFIG_ENV}"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}:1: (file): cannot read: {err}"]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        line = match[1] if match else "1"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err))
        raise ConfigError([f"{path}:{line}: (syntax): {message}; the file must be valid TOML"]) from None
    loader = _Loader(path, text, environ)
    config = loader.load(document)
    if config is None:
        raise ConfigError(loader.problems)
    return config


def config_path_from(argument: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config path: ``--config``, else ``$IVC_GATEWAY_CONFIG``, else the default."""
    environ = os.environ if environ is None else environ
    return Path(argument or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
