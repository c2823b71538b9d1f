"""``CameraSession``: the one object that owns the connection to one ONVIF camera or NVR.

Everything the gateway does to a device goes through its session: set-up and description for the
inventory, PTZ, imaging and snapshots for the command dispatcher. The session owns the device's
HTTP session, its zeep clients and the little state a device needs (clock offset, password mode,
what it turned out not to support), and turns every answer into the dataclasses of
:mod:`bridges.onvif.models` and every failure into one :mod:`bridges.errors` type.

Set-up follows Home Assistant's ``ONVIFDevice`` order, adapted:

1. read the device clock *unauthenticated* (GetSystemDateAndTime) and sign every later request
   with that offset, because WS-Security fails on a skewed camera otherwise;
2. GetDeviceInformation, the first signed call (mandatory). It also settles PasswordDigest versus
   PasswordText: if the device refuses the digest we retry once with the plain password;
3. service addresses from GetServices, else GetCapabilities, rebased on the host:port we
   reached (see :mod:`bridges.onvif.xaddrs`);
4. warn about the clock skew, or set the camera's clock when asked (``sync_clock=True``) and the
   camera is on manual time;
5. optional probes: MAC (GetNetworkInterfaces), snapshot capability, video sources, stream URIs,
   PTZ service, imaging per source. A probe failing with an expected error switches its feature
   off with one log line; only device information and media profiles fail set-up.

Commands to one device are serialised by a lock: a camera executing a PTZ stop while the next
move is already on the wire behaves unpredictably, and cheap firmwares handle one request at a
time anyway. Sessions share nothing mutable, so a slow device only delays its own commands.

Only transport errors before the request reached the device are retried (bounded, with backoff);
every operation, and the wait for the lock, has a time limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

from ..errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceBusy,
    DeviceError,
    DeviceRequestRejected,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)
from .channels import ChannelLayout, MediaProfileInfo, plan_channels, profile_info, source_tokens
from .models import (
    ChannelDescription,
    DeviceAddress,
    DeviceDescription,
    DeviceFault,
    DeviceKind,
    ImagingSettings,
    Preset,
    PtzPosition,
)
from .replies import (
    REPLACEMENT_CHARACTER,
    ClockReading,
    clock_reading,
    first_enabled_mac,
    imaging_settings,
    ptz_position,
    ptz_vector,
    utc_date_time,
    without_replacement_characters,
)
from .snapshot import HttpAuthScheme, SnapshotFetcher
from .soap import PasswordMode, SkewedUsernameToken, SoapClient, WallClock, translate_soap_error
from .transport import build_http_session, retry_connection_error
from .wsdl import WsdlCatalog, shared_wsdl_catalog
from .xaddrs import repair_url, xaddrs_from_capabilities, xaddrs_from_services

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
CLOCK_SKEW_TOLERANCE_S = 5.0
"""Skew below this is normal drift and not worth a log line (HA uses the same bound)."""

_STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}

# Expected failures, per step. Anything else (Unreachable, Timeout, Busy) means the device is not
# usable right now and propagates; an exception that is not a DeviceError is a bug and propagates.
_CLOCK_READ_FAILURES: tuple[type[DeviceError], ...] = (
    DeviceAuthFailed,
    DeviceUnsupported,
    DeviceRequestRejected,
    DeviceBadResponse,
)
"""Reading the clock is a courtesy: without it we sign with our own time and hope it is close."""
_SERVICE_LIST_FAILURES: tuple[type[DeviceError], ...] = (
    DeviceUnsupported,
    DeviceRequestRejected,
    DeviceBadResponse,
)
"""GetServices is optional for old devices; GetCapabilities is the fallback."""
_OPTIONAL_PROBE_FAILURES: tuple[type[DeviceError], ...] = (
    DeviceUnsupported,
    DeviceRequestRejected,
    DeviceBadResponse,
    DeviceAuthFailed,
)
"""A feature probe failing like this switches the feature off. An auth fault counts: the
account passed GetDeviceInformation, so it lacks the privilege for this feature only."""
_STOP_FALLBACK_FAILURES: tuple[type[DeviceError], ...] = (DeviceUnsupported,)
"""PTZ Stop answered ActionNotSupported: stop with a zero-velocity ContinuousMove instead."""

_FAULT_BY_ERROR: tuple[tuple[type[DeviceError], DeviceFault], ...] = (
    (DeviceUnreachable, DeviceFault.UNREACHABLE),
    (DeviceTimeout, DeviceFault.UNREACHABLE),
    (DeviceAuthFailed, DeviceFault.AUTH_FAILED),
    (DeviceBadResponse, DeviceFault.BAD_RESPONSE),
)
"""Failures that make the device unusable (and so isolated) until a command succeeds again."""


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class _Inventory:
    """What set-up learned; the description and the command routing are derived from it."""

    manufacturer: str
    model: str
    firmware: str
    serial: str
    mac: str
    source_count: int
    channels: tuple[ChannelDescription, ...]
    layouts: Mapping[str, ChannelLayout]

    def channel(self, token: str) -> ChannelDescription | None:
        """The channel with this source token, if the device has it."""
        return next((channel for channel in self.channels if channel.source_token == token), None)


@dataclass(frozen=True, slots=True)
class _ChannelFeatures:
    """What the probes found, to turn channel layouts into descriptions."""

    model: str
    multi_source: bool
    uris: Mapping[str, str]
    ptz: bool
    imaging_sources: frozenset[str]

    def channel_description(self, layout: ChannelLayout) -> ChannelDescription:
        """Channel names: an NVR's are "<model> ch<N>", a camera's its model (else its source)."""
        if self.multi_source:
            name = f"{self.model} ch{layout.position}" if self.model else f"ch{layout.position}"
        else:
            name = self.model or layout.source_token
        sub = layout.sub
        return ChannelDescription(
            source_token=layout.source_token,
            position=layout.position,
            name=name,
            main_profile=layout.main.token,
            sub_profile=sub.token if sub is not None else "",
            main_uri=self.uris.get(layout.main.token, ""),
            sub_uri=self.uris.get(sub.token, "") if sub is not None else "",
            width=layout.main.width,
            height=layout.main.height,
            ptz=self.ptz and bool(layout.ptz_profile),
            imaging=layout.source_token in self.imaging_sources,
        )


class CameraSession:
    """The connection to one ONVIF device, from set-up to close.

    ``address`` is where the device service answered; ``configured_id`` is the operator's id for
    the device, the identity of last resort. ``timeout`` bounds every operation (and the wait
    for a busy device), ``connect_timeout`` the TCP/TLS connect within it. ``clock`` is the wall
    clock (epoch seconds) requests are signed with; ``sync_clock=True`` lets set-up set a
    skewed camera's clock when the camera is on manual time (otherwise it is never changed).
    TLS certificates are verified unless ``verify_tls=False``. ``wsdl`` defaults to the
    process-wide catalog, so WSDLs are parsed once for all sessions.

    Use as ``async with CameraSession(...) as session:``; ``open`` and ``close`` are
    idempotent, and a closed session stays closed (make a new one to reconnect). Channels are
    addressed by their video source token (``ChannelDescription.source_token``).
    """

    def __init__(
        self,
        address: DeviceAddress,
        username: str,
        password: str,
        *,
        verify_tls: bool = True,
        configured_id: str = "",
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        clock: WallClock = time.time,
        sync_clock: bool = False,
        wsdl: WsdlCatalog | None = None,
    ) -> None:
        if not (timeout > 0 and connect_timeout > 0):
            raise ValueError("timeouts must be positive")
        self._address = address
        self._username = username
        self._password = password
        self._verify_tls = verify_tls
        self._configured_id = configured_id
        self._timeout = timeout
        self._connect_timeout = min(connect_timeout, timeout)
        self._clock = clock
        self._sync_clock = sync_clock
        self._catalog = wsdl or shared_wsdl_catalog()
        self._token = SkewedUsernameToken(username, password, clock)
        self._lock = asyncio.Lock()
        self._state = _State.NEW
        self._http: aiohttp.ClientSession | None = None
        self._soap: SoapClient | None = None
        self._snapshots: SnapshotFetcher | None = None
        self._inventory: _Inventory | None = None
        self._device_id = configured_id
        self._clock_offset_s = 0.0
        self._stop_unsupported = False
        self._snapshot_supported: bool | None = None
        self._snapshot_uris: dict[str, str] = {}
        self._cleaned_fields: set[str] = set()
        self._fault = DeviceFault.NONE

    # --- what callers read -------------------------------------------------------------------

    @property
    def address(self) -> DeviceAddress:
        """Where the device service is reached."""
        return self._address

    @property
    def label(self) -> str:
        """How logs name the device: its identity once known, else the configured id or host."""
        return self._device_id or f"{self._address.host}:{self._address.port}"

    @property
    def is_open(self) -> bool:
        """Whether set-up completed and the session takes commands."""
        return self._state is _State.OPEN

    @property
    def fault(self) -> DeviceFault:
        """Why the device is isolated right now: set by a failure that makes it unusable
        (unreachable, timeout, auth, bad response), cleared by the next success."""
        return self._fault

    @property
    def clock_offset_s(self) -> float:
        """Device clock minus our clock, as measured at set-up (0 when unknown)."""
        return self._clock_offset_s

    @property
    def password_mode(self) -> PasswordMode:
        """How the UsernameToken carries the password for this device."""
        return self._token.mode

    @property
    def verifies_tls(self) -> bool:
        """Whether the device's TLS certificate is checked (always, unless configured off)."""
        return self._verify_tls

    @property
    def snapshot_auth(self) -> HttpAuthScheme | None:
        """The HTTP authentication the snapshot endpoint accepted last (None when not open)."""
        return self._snapshots.scheme if self._snapshots is not None else None

    @property
    def service_addresses(self) -> Mapping[str, str]:
        """Service name (``devicemgmt``, ``media``, ``ptz``, ``imaging``) to the URL we use."""
        return dict(self._soap.xaddrs) if self._soap is not None else {}

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and run set-up; a failed set-up leaves nothing open and may be retried."""
        if self._state is _State.OPEN:
            return
        if self._state is _State.CLOSED:
            raise RuntimeError("a closed CameraSession cannot be reopened; create a new one")
        http = build_http_session(verify_tls=self._verify_tls, connect_timeout_s=self._connect_timeout)
        self._http = http
        self._soap = SoapClient(http, self._catalog, self._token, self._address.url)
        self._snapshots = SnapshotFetcher(
            http, self._username, self._password, host=self._address.host, timeout_s=self._timeout
        )
        try:
            async with self._lock, self._tracking_fault("set-up"):
                await self._set_up()
        except BaseException:
            await self._release_transport()
            raise
        self._state = _State.OPEN
        _LOGGER.info(
            "device %s: session open at %s (%d channel(s), clock offset %+.1f s, %s)",
            self.label,
            self._address.url,
            len(self._require_inventory().channels),
            self._clock_offset_s,
            self._token.mode.value,
        )

    async def close(self) -> None:
        """Refuse new commands, let a running one finish (up to the timeout), close the transport."""
        if self._state is _State.CLOSED:
            return
        was_open = self._state is _State.OPEN
        self._state = _State.CLOSED
        acquired = False
        try:
            async with asyncio.timeout(self._timeout):
                await self._lock.acquire()
            acquired = True
        except TimeoutError:
            _LOGGER.warning("device %s: closing while a command is still running", self.label)
        try:
            await self._release_transport()
        finally:
            if acquired:
                self._lock.release()
        if was_open:
            _LOGGER.info("device %s: session closed", self.label)

    async def _release_transport(self) -> None:
        http, self._http = self._http, None
        self._soap = None
        self._snapshots = None
        if http is not None:
            await http.close()

    # --- set-up --------------------------------------------------------------------------------

    async def _set_up(self) -> None:
        reading = await self._read_clock()
        information = await self._read_device_information()
        await self._discover_services()
        if reading is not None:
            await self._check_clock(reading)
        self._inventory = await self._take_inventory(information)
        self._device_id = self._identity(self._inventory) or self._configured_id

    async def _read_clock(self) -> ClockReading | None:
        """Measure the device clock and sign with its offset from now on.

        Unauthenticated first, as ONVIF allows for exactly this purpose; devices that insist on
        credentials get a signed request with our own time (which works if the skew is small).
        """
        try:
            try:
                answer = await self._call("devicemgmt", "GetSystemDateAndTime", signed=False)
            except DeviceAuthFailed:
                answer = await self._call("devicemgmt", "GetSystemDateAndTime")
        except _CLOCK_READ_FAILURES as error:
            _LOGGER.warning("device %s: cannot read its clock (%s); signing with our time", self.label, error)
            return None
        reading = clock_reading(answer, self._clock())
        if reading is None:
            _LOGGER.warning("device %s: reports no usable UTC time; signing with our time", self.label)
            return None
        self._clock_offset_s = reading.offset_s
        self._token.offset_s = reading.offset_s
        return reading

    async def _read_device_information(self) -> Any:
        """GetDeviceInformation, trying PasswordDigest and then, if refused, PasswordText."""
        try:
            return await self._call("devicemgmt", "GetDeviceInformation")
        except DeviceAuthFailed as refused:
            _LOGGER.debug("device %s: PasswordDigest refused (%s), trying PasswordText", self.label, refused)
        self._token.mode = PasswordMode.TEXT
        try:
            information = await self._call("devicemgmt", "GetDeviceInformation")
        except DeviceAuthFailed:
            self._token.mode = PasswordMode.DIGEST
            raise
        _LOGGER.warning(
            "device %s: refuses PasswordDigest but accepts PasswordText; its password now crosses "
            "the network %s",
            self.label,
            "inside TLS" if self._address.https else "unencrypted",
        )
        return information

    async def _discover_services(self) -> None:
        """XAddrs from GetServices, else GetCapabilities; the media service is mandatory."""
        xaddrs: dict[str, str] = {}
        try:
            services = await self._call("devicemgmt", "GetServices", {"IncludeCapability": False})
            xaddrs = xaddrs_from_services(services, self._address)
        except _SERVICE_LIST_FAILURES as error:
            _LOGGER.debug("device %s: GetServices failed (%s), using GetCapabilities", self.label, error)
        if "media" not in xaddrs:
            try:
                capabilities = await self._call("devicemgmt", "GetCapabilities", {"Category": "All"})
                xaddrs = {**xaddrs_from_capabilities(capabilities, self._address), **xaddrs}
            except _SERVICE_LIST_FAILURES as error:
                _LOGGER.debug("device %s: GetCapabilities failed (%s)", self.label, error)
        if "media" not in xaddrs:
            raise self._error(DeviceUnsupported, "advertises no media service")
        xaddrs["devicemgmt"] = self._address.url
        self._require_soap().set_xaddrs(xaddrs)

    async def _check_clock(self, reading: ClockReading) -> None:
        """Warn about a skewed camera clock, or set it when allowed and the camera is on manual time."""
        if abs(reading.offset_s) <= CLOCK_SKEW_TOLERANCE_S:
            return
        if self._sync_clock and reading.manual:
            await self._set_device_clock(reading)
            return
        _LOGGER.warning(
            "device %s: clock is %+.0f s off ours; signing requests with that offset and leaving "
            "the camera's clock alone (%s)",
            self.label,
            reading.offset_s,
            "sync_clock is off" if reading.manual else "it is on NTP",
        )

    async def _set_device_clock(self, reading: ClockReading) -> None:
        request = {
            "DateTimeType": "Manual",
            "DaylightSavings": reading.daylight_savings,
            "UTCDateTime": utc_date_time(self._clock()),
        }
        try:
            await self._call("devicemgmt", "SetSystemDateAndTime", request)
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.warning("device %s: could not set its clock (%s); keeping the offset", self.label, error)
            return
        _LOGGER.info("device %s: clock was %+.0f s off, set it to ours", self.label, reading.offset_s)
        await self._read_clock()

    async def _take_inventory(self, information: Any) -> _Inventory:
        """Everything describe() reports; media profiles are mandatory, the rest optional."""
        mac = await self._read_mac()
        self._snapshot_supported = await self._probe_snapshot_capability()
        answer = await self._call("media", "GetProfiles")
        profiles = [info for info in map(profile_info, answer or ()) if info is not None]
        if not profiles:
            raise self._error(DeviceUnsupported, "has no media profile with a video source")
        sources = await self._read_video_sources()
        layouts = plan_channels(profiles, sources)
        source_count = max(len(sources), len(layouts))
        model = self._cleaned("Model", getattr(information, "Model", ""))
        features = _ChannelFeatures(
            model=model,
            multi_source=source_count > 1,
            uris=await self._read_stream_uris(layouts),
            ptz=await self._probe_ptz(),
            imaging_sources=await self._probe_imaging(layouts),
        )
        return _Inventory(
            manufacturer=self._cleaned("Manufacturer", getattr(information, "Manufacturer", "")),
            model=model,
            firmware=self._cleaned("FirmwareVersion", getattr(information, "FirmwareVersion", "")),
            serial=self._cleaned("SerialNumber", getattr(information, "SerialNumber", "")),
            mac=mac,
            source_count=source_count,
            channels=tuple(features.channel_description(layout) for layout in layouts),
            layouts={layout.source_token: layout for layout in layouts},
        )

    async def _read_mac(self) -> str:
        try:
            interfaces = await self._call("devicemgmt", "GetNetworkInterfaces")
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.info("device %s: no network interfaces reported (%s)", self.label, error)
            return ""
        return first_enabled_mac(interfaces)

    async def _probe_snapshot_capability(self) -> bool | None:
        """The media service's SnapshotUri capability; None when the device does not say."""
        try:
            capabilities = await self._call("media", "GetServiceCapabilities")
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.debug("device %s: media capabilities unavailable (%s)", self.label, error)
            return None
        value = getattr(capabilities, "SnapshotUri", None)
        return None if value is None else bool(value)

    async def _read_video_sources(self) -> list[str]:
        try:
            return source_tokens(await self._call("media", "GetVideoSources"))
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.info("device %s: video sources unavailable (%s); using the profiles'", self.label, error)
            return []

    async def _read_stream_uris(self, layouts: Iterable[ChannelLayout]) -> dict[str, str]:
        """RTSP URI per profile token; a profile whose URI cannot be read is left out."""
        uris: dict[str, str] = {}
        for layout in layouts:
            for profile in layout.profiles:
                uri = await self._read_stream_uri(profile)
                if uri:
                    uris[profile.token] = uri
        return uris

    async def _read_stream_uri(self, profile: MediaProfileInfo) -> str:
        request = {"ProfileToken": profile.token, "StreamSetup": _STREAM_SETUP}
        try:
            answer = await self._call("media", "GetStreamUri", request)
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.warning("device %s: no stream URI for profile %s (%s)", self.label, profile.token, error)
            return ""
        uri = getattr(answer, "Uri", None)
        return repair_url(uri) if isinstance(uri, str) and uri.strip() else ""

    async def _probe_ptz(self) -> bool:
        """Whether the PTZ service exists and answers GetNodes."""
        if not self._require_soap().has_service("ptz"):
            return False
        try:
            await self._call("ptz", "GetNodes")
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.warning("device %s: PTZ service does not work (%s); PTZ switched off", self.label, error)
            return False
        return True

    async def _probe_imaging(self, layouts: Iterable[ChannelLayout]) -> frozenset[str]:
        """Video sources whose imaging settings can be read."""
        if not self._require_soap().has_service("imaging"):
            return frozenset()
        usable: set[str] = set()
        for layout in layouts:
            try:
                await self._call("imaging", "GetImagingSettings", {"VideoSourceToken": layout.source_token})
            except _OPTIONAL_PROBE_FAILURES as error:
                _LOGGER.info(
                    "device %s: no imaging for %s (%s); switched off", self.label, layout.source_token, error
                )
                continue
            usable.add(layout.source_token)
        return frozenset(usable)

    def _cleaned(self, field: str, value: Any) -> str:
        """A device string without U+FFFD, which lenient XML parsing leaves for bytes that are
        not UTF-8 (firmwares writing Latin-1 or garbage into their model name); logged once."""
        text = "" if value is None else str(value)
        cleaned = without_replacement_characters(text)
        if REPLACEMENT_CHARACTER in text and field not in self._cleaned_fields:
            self._cleaned_fields.add(field)
            _LOGGER.warning(
                "device %s: %s held bytes that are not valid UTF-8; dropped them, keeping %r",
                self.label,
                field,
                cleaned,
            )
        return cleaned

    # --- description -------------------------------------------------------------------------

    def _identity(self, inventory: _Inventory) -> str:
        if inventory.mac:
            return f"mac:{inventory.mac}"
        if inventory.serial:
            return f"sn:{inventory.serial}"
        if self._configured_id:
            return f"id:{self._configured_id}"
        return ""

    async def describe(self, *, refresh: bool = False) -> DeviceDescription:
        """What the device is, as learned at set-up (or now, with ``refresh=True``).

        Identity: ``mac:<MAC of the first enabled interface>``, else ``sn:<serial number>``, else
        ``id:<configured id>``; a device offering none of these raises DeviceUnsupported.

        Kind: an NVR when the device has more than one video source (as GetVideoSources lists
        them, or as its profiles reference them), else an IPC. A multi-sensor camera is thereby
        an NVR too, which is what the cloud needs: one device with several channels either way.

        Channels: one per video source that has a media profile, in the device's order.
        """
        if refresh:
            async with self._exclusive("describe"):
                information = await self._call("devicemgmt", "GetDeviceInformation")
                self._inventory = await self._take_inventory(information)
        inventory = self._require_inventory()
        identity = self._identity(inventory)
        if not identity:
            raise self._error(
                DeviceUnsupported, "reports neither MAC nor serial number and has no configured id"
            )
        return DeviceDescription(
            identity=identity,
            kind=DeviceKind.NVR if inventory.source_count > 1 else DeviceKind.IPC,
            address=self._address,
            manufacturer=inventory.manufacturer,
            model=inventory.model,
            firmware=inventory.firmware,
            serial=inventory.serial,
            mac=inventory.mac,
            channels=inventory.channels,
            clock_skew=self._clock_offset_s,
            auth_ok=True,
        )

    # --- PTZ ---------------------------------------------------------------------------------

    async def continuous_move(
        self, token: str, pan: float, tilt: float, zoom: float, timeout: float | None = None
    ) -> None:
        """Move at a velocity (generic space, -1..1 per axis) until stopped or ``timeout`` s pass."""
        for axis, value in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
            self._check_range(f"{axis} velocity", value, -1.0, 1.0)
        if timeout is not None:
            self._check_range("move timeout", timeout, 0.001, 3600.0)
        async with self._exclusive("continuous_move"):
            request: dict[str, Any] = {
                "ProfileToken": self._ptz_profile(token),
                "Velocity": ptz_vector(pan, tilt, zoom),
            }
            if timeout is not None:
                request["Timeout"] = dt.timedelta(seconds=timeout)
            await self._call("ptz", "ContinuousMove", request)

    async def stop(self, token: str) -> None:
        """Stop pan, tilt and zoom.

        Some devices do not implement Stop (ActionNotSupported); like Home Assistant we then
        stop with a zero-velocity ContinuousMove, and remember to go straight there next time.
        """
        async with self._exclusive("stop"):
            profile = self._ptz_profile(token)
            if not self._stop_unsupported:
                try:
                    await self._call("ptz", "Stop", {"ProfileToken": profile, "PanTilt": True, "Zoom": True})
                    return
                except _STOP_FALLBACK_FAILURES:
                    self._stop_unsupported = True
                    _LOGGER.info(
                        "device %s: PTZ Stop not implemented; stopping with a zero-velocity move", self.label
                    )
            zero = ptz_vector(0.0, 0.0, 0.0)
            await self._call("ptz", "ContinuousMove", {"ProfileToken": profile, "Velocity": zero})

    async def relative_move(self, token: str, pan: float = 0.0, tilt: float = 0.0, zoom: float = 0.0) -> None:
        """Move by a translation (generic space, -1..1 per axis)."""
        for axis, value in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
            self._check_range(f"{axis} translation", value, -1.0, 1.0)
        async with self._exclusive("relative_move"):
            request = {"ProfileToken": self._ptz_profile(token), "Translation": ptz_vector(pan, tilt, zoom)}
            await self._call("ptz", "RelativeMove", request)

    async def absolute_move(
        self, token: str, pan: float | None = None, tilt: float | None = None, zoom: float | None = None
    ) -> None:
        """Go to a position (pan/tilt -1..1, zoom 0..1); omitted axes stay where they are."""
        if (pan is None) != (tilt is None):
            raise self._error(DeviceRequestRejected, "absolute_move needs both pan and tilt, or neither")
        if pan is None and zoom is None:
            raise self._error(DeviceRequestRejected, "absolute_move without a target")
        for axis, value, low in (("pan", pan, -1.0), ("tilt", tilt, -1.0), ("zoom", zoom, 0.0)):
            if value is not None:
                self._check_range(f"{axis} position", value, low, 1.0)
        async with self._exclusive("absolute_move"):
            request = {"ProfileToken": self._ptz_profile(token), "Position": ptz_vector(pan, tilt, zoom)}
            await self._call("ptz", "AbsoluteMove", request)

    async def goto_home(self, token: str) -> None:
        """Go to the home position."""
        async with self._exclusive("goto_home"):
            await self._call("ptz", "GotoHomePosition", {"ProfileToken": self._ptz_profile(token)})

    async def ptz_status(self, token: str) -> PtzPosition:
        """Where the head is and whether it moves."""
        async with self._exclusive("ptz_status"):
            status = await self._call("ptz", "GetStatus", {"ProfileToken": self._ptz_profile(token)})
        return ptz_position(status)

    async def get_presets(self, token: str) -> list[Preset]:
        """The channel's presets in the device's order."""
        async with self._exclusive("get_presets"):
            answer = await self._call("ptz", "GetPresets", {"ProfileToken": self._ptz_profile(token)})
        return [
            Preset(token=str(preset.token), name=without_replacement_characters(getattr(preset, "Name", "")))
            for preset in answer or ()
            if getattr(preset, "token", None)
        ]

    async def set_preset(self, token: str, name: str, preset_token: str | None = None) -> str:
        """Store the present position as a preset (overwriting ``preset_token`` if given);
        returns the preset's token."""
        async with self._exclusive("set_preset"):
            request: dict[str, Any] = {"ProfileToken": self._ptz_profile(token), "PresetName": name}
            if preset_token:
                request["PresetToken"] = preset_token
            answer = await self._call("ptz", "SetPreset", request)
        stored = answer if isinstance(answer, str) else getattr(answer, "PresetToken", None)
        if not stored:
            raise self._error(DeviceBadResponse, "SetPreset returned no token")
        return str(stored)

    async def remove_preset(self, token: str, preset_token: str) -> None:
        """Delete a preset."""
        async with self._exclusive("remove_preset"):
            request = {"ProfileToken": self._ptz_profile(token), "PresetToken": preset_token}
            await self._call("ptz", "RemovePreset", request)

    async def goto_preset(self, token: str, preset_token: str) -> None:
        """Move to a preset."""
        async with self._exclusive("goto_preset"):
            request = {"ProfileToken": self._ptz_profile(token), "PresetToken": preset_token}
            await self._call("ptz", "GotoPreset", request)

    # --- imaging -----------------------------------------------------------------------------

    async def focus_move(self, token: str, speed: float) -> None:
        """Drive the focus continuously (-1 near .. 1 far) until :meth:`focus_stop`."""
        self._check_range("focus speed", speed, -1.0, 1.0)
        async with self._exclusive("focus_move"):
            focus = {"Continuous": {"Speed": speed}}
            await self._call(
                "imaging", "Move", {"VideoSourceToken": self._imaging_source(token), "Focus": focus}
            )

    async def focus_stop(self, token: str) -> None:
        """Stop the focus motor."""
        async with self._exclusive("focus_stop"):
            await self._call("imaging", "Stop", {"VideoSourceToken": self._imaging_source(token)})

    async def imaging_settings(self, token: str) -> ImagingSettings:
        """The channel's imaging settings, with the iris range when the device reports it."""
        async with self._exclusive("imaging_settings"):
            return await self._read_imaging_settings(self._imaging_source(token))

    async def iris_step(self, token: str, delta: float) -> float:
        """Open (positive ``delta``) or close the iris by ``delta`` and return the new value.

        The iris is part of the exposure settings and most devices only honour it in manual
        exposure, so this also switches the exposure mode to MANUAL. The value is clamped to
        the range the device reports.
        """
        self._check_range("iris step", delta, -math.inf, math.inf)
        async with self._exclusive("iris_step"):
            source = self._imaging_source(token)
            settings = await self._read_imaging_settings(source)
            if settings.iris is None:
                raise self._error(DeviceUnsupported, f"{token}: the device reports no iris setting")
            target = settings.iris + delta
            if settings.iris_min is not None:
                target = max(target, settings.iris_min)
            if settings.iris_max is not None:
                target = min(target, settings.iris_max)
            exposure = {"Mode": "MANUAL", "Iris": target}
            request = {"VideoSourceToken": source, "ImagingSettings": {"Exposure": exposure}}
            await self._call("imaging", "SetImagingSettings", request)
        return target

    async def _read_imaging_settings(self, source: str) -> ImagingSettings:
        settings = await self._call("imaging", "GetImagingSettings", {"VideoSourceToken": source})
        try:
            options = await self._call("imaging", "GetOptions", {"VideoSourceToken": source})
        except _OPTIONAL_PROBE_FAILURES as error:
            _LOGGER.debug("device %s: no imaging options for %s (%s)", self.label, source, error)
            options = None
        return imaging_settings(settings, options)

    # --- snapshot ----------------------------------------------------------------------------

    async def snapshot(self, token: str) -> bytes:
        """A JPEG of the channel's main profile (GetSnapshotUri, then HTTP Digest or Basic).

        DeviceUnsupported when the device has no snapshots; the media layer then decodes a
        keyframe from RTSP instead.
        """
        async with self._exclusive("snapshot"):
            layout = self._layout(token)
            if self._snapshot_supported is False:
                raise self._error(DeviceUnsupported, "offers no snapshots")
            try:
                uri = await self._snapshot_uri(layout.main.token)
                return await self._require_snapshots().fetch(uri)
            except DeviceUnsupported:
                self._snapshot_supported = False
                raise

    async def _snapshot_uri(self, profile_token: str) -> str:
        cached = self._snapshot_uris.get(profile_token)
        if cached is not None:
            return cached
        answer = await self._call("media", "GetSnapshotUri", {"ProfileToken": profile_token})
        uri = getattr(answer, "Uri", None)
        if not isinstance(uri, str) or not uri.strip():
            raise self._error(DeviceBadResponse, "GetSnapshotUri returned no URI")
        self._snapshot_uris[profile_token] = repair_url(uri)
        return self._snapshot_uris[profile_token]

    # --- plumbing ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _exclusive(self, what: str) -> AsyncIterator[None]:
        """Run one command alone on this device; a device still busy after the timeout is Busy."""
        if self._state is _State.CLOSED:
            raise self._error(DeviceUnreachable, "session is closed")
        if self._state is not _State.OPEN:
            raise RuntimeError("CameraSession used before open()")
        try:
            async with asyncio.timeout(self._timeout):
                await self._lock.acquire()
        except TimeoutError:
            raise self._error(DeviceBusy, f"{what}: still busy with an earlier command") from None
        try:
            async with self._tracking_fault(what):
                yield
        finally:
            self._lock.release()

    @asynccontextmanager
    async def _tracking_fault(self, what: str) -> AsyncIterator[None]:
        """Keep :attr:`fault` current: set by an isolating failure, cleared by any success."""
        try:
            yield
        except DeviceError as error:
            fault = next((fault for kind, fault in _FAULT_BY_ERROR if isinstance(error, kind)), None)
            if fault is not None:
                self._set_fault(fault, f"{what}: {error.message}")
            raise
        self._set_fault(DeviceFault.NONE, what)

    def _set_fault(self, fault: DeviceFault, reason: str) -> None:
        if fault is self._fault:
            return
        previous, self._fault = self._fault, fault
        if fault is DeviceFault.NONE:
            _LOGGER.info("device %s: answering again (was %s)", self.label, previous.value)
        else:
            _LOGGER.warning("device %s: isolated as %s (%s)", self.label, fault.value, reason)

    @retry_connection_error()
    async def _send(self, service: str, operation: str, params: dict[str, Any], signed: bool) -> Any:
        """One SOAP request within the operation timeout; connect failures are retried."""
        soap = self._require_soap()
        async with asyncio.timeout(self._timeout):
            return await soap.call(service, operation, params, signed=signed)

    async def _call(
        self, service: str, operation: str, params: Mapping[str, Any] | None = None, *, signed: bool = True
    ) -> Any:
        """A SOAP operation whose every expected failure comes out as a DeviceError."""
        what = f"{service}.{operation}"
        try:
            return await self._send(service, operation, dict(params or {}), signed)
        except Exception as error:
            translated = translate_soap_error(error, host=self._address.host, device=self.label, what=what)
            if translated is None:
                raise
            _LOGGER.debug("device %s: %s failed: %s", self.label, what, error, exc_info=True)
            raise translated from error

    def _error(self, kind: type[DeviceError], message: str) -> DeviceError:
        """A bridge error about this device."""
        return kind(message, host=self._address.host, device=self.label)

    def _check_range(self, what: str, value: float, low: float, high: float) -> None:
        if not (math.isfinite(value) and low <= value <= high):
            raise self._error(DeviceRequestRejected, f"{what} {value} outside [{low}, {high}]")

    def _layout(self, token: str) -> ChannelLayout:
        layout = self._require_inventory().layouts.get(token)
        if layout is None:
            raise self._error(DeviceRequestRejected, f"no channel {token!r}")
        return layout

    def _channel(self, token: str) -> ChannelDescription:
        channel = self._require_inventory().channel(token)
        if channel is None:
            raise self._error(DeviceRequestRejected, f"no channel {token!r}")
        return channel

    def _ptz_profile(self, token: str) -> str:
        """The profile PTZ commands for a channel go through; DeviceUnsupported without PTZ."""
        if not self._channel(token).ptz:
            raise self._error(DeviceUnsupported, f"{token}: channel has no PTZ")
        return self._layout(token).ptz_profile

    def _imaging_source(self, token: str) -> str:
        """The video source imaging commands address; DeviceUnsupported without imaging."""
        if not self._channel(token).imaging:
            raise self._error(DeviceUnsupported, f"{token}: channel has no imaging")
        return token

    def _require_inventory(self) -> _Inventory:
        if self._inventory is None:
            raise RuntimeError("CameraSession used before open()")
        return self._inventory

    def _require_soap(self) -> SoapClient:
        if self._soap is None:
            raise self._error(DeviceUnreachable, "session is closed")
        return self._soap

    def _require_snapshots(self) -> SnapshotFetcher:
        if self._snapshots is None:
            raise self._error(DeviceUnreachable, "session is closed")
        self._snapshots.device = self.label
        return self._snapshots
