"""What a simulated ONVIF device is: identity, credentials, channels and quirk switches.

The site orchestrator describes every camera and NVR with one frozen ``DeviceDescription``; the
server derives its media profiles from it with ``build_media_profiles`` so profile tokens and PTZ
attachment follow one rule everywhere (server, tests, discovery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote


class DeviceKind(StrEnum):
    """A single-sensor IP camera or a multi-channel network video recorder."""

    CAMERA = "camera"
    NVR = "nvr"


class Quirk(StrEnum):
    """Misbehaviours seen on real cameras, switched on per device so the daemon's handling is tested."""

    CLOCK_SKEW = "clock_skew"
    """Device clock is off by ``DeviceDescription.clock_offset_s``; unadjusted WS-Security fails."""
    NO_SNAPSHOT = "no_snapshot"
    """GetSnapshotUri answers ActionNotSupported and the snapshot path 404s."""
    NO_STOP = "no_stop"
    """PTZ Stop answers ActionNotSupported; only a zero-velocity ContinuousMove stops."""
    BAD_XADDRS = "bad_xaddrs"
    """XAddrs in GetCapabilities/GetServices carry a doubled port: ``http://host:port:port/...``."""
    PTZ_ONE_PROFILE = "ptz_one_profile"
    """Only the first channel's main profile carries a PTZConfiguration."""
    BAD_UTF8 = "bad_utf8"
    """GetDeviceInformation's Model holds bytes that are not valid UTF-8."""
    SLOW = "slow"
    """Every HTTP response is delayed by ``DeviceDescription.slow_delay_s``."""
    NO_NETWORK_INTERFACES = "no_network_interfaces"
    """GetNetworkInterfaces answers ActionNotSupported (seen on NVR firmwares): no MAC from it."""


class SnapshotAuthMode(StrEnum):
    """Which HTTP authentication schemes the snapshot endpoint offers and accepts."""

    DIGEST = "digest"
    BASIC = "basic"
    BOTH = "both"


class DateTimeSource(StrEnum):
    """Value of ``DateTimeType`` in GetSystemDateAndTime (tt:SetDateTimeType)."""

    MANUAL = "Manual"
    NTP = "NTP"


class StreamKind(StrEnum):
    """Each channel has a main (full resolution) and a sub (low resolution) stream."""

    MAIN = "main"
    SUB = "sub"


_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Resolution:
    """Pixel size of a video stream."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"resolution must be positive and even, got {self.width}x{self.height}")


@dataclass(frozen=True)
class ChannelDescription:
    """One video input: its source token, the RTSP URLs the site serves for it, and its sizes.

    The stream URLs come from outside because the site runs the real RTSP server; the ONVIF
    device only advertises them.
    """

    video_source_token: str
    main_stream_uri: str
    sub_stream_uri: str
    main_resolution: Resolution = Resolution(1920, 1080)
    sub_resolution: Resolution = Resolution(640, 360)
    framerate: int = 25
    has_ptz: bool = True

    def stream_uri(self, kind: StreamKind) -> str:
        """The RTSP URL of the main or sub stream."""
        return self.main_stream_uri if kind is StreamKind.MAIN else self.sub_stream_uri

    def resolution(self, kind: StreamKind) -> Resolution:
        """The encoder resolution of the main or sub stream."""
        return self.main_resolution if kind is StreamKind.MAIN else self.sub_resolution


@dataclass(frozen=True)
class DeviceDescription:
    """Everything that makes one simulated device distinct.

    ``clock_offset_s`` only takes effect with the ``clock_skew`` quirk: without it the device
    clock is in sync with the host, as with a camera on working NTP.
    ``wsse_clock_tolerance_s`` defaults to 300 s, the freshness window gSOAP's WS-Security
    plugin (used by most camera firmwares) applies to a UsernameToken's ``Created``.
    ``wsse_digest_only`` refuses PasswordText tokens; ``wsse_text_only`` refuses PasswordDigest
    ones (firmwares that only compare the plain password), so clients must fall back to text.
    """

    kind: DeviceKind
    name: str
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    mac_address: str
    hardware_id: str
    username: str
    password: str
    channels: tuple[ChannelDescription, ...]
    quirks: frozenset[Quirk] = frozenset()
    clock_offset_s: float = 3600.0
    date_time_source: DateTimeSource = DateTimeSource.NTP
    snapshot_auth: SnapshotAuthMode = SnapshotAuthMode.BOTH
    wsse_digest_only: bool = False
    wsse_text_only: bool = False
    wsse_clock_tolerance_s: float = 300.0
    slow_delay_s: float = 3.0
    location: str = "site"
    extra_scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DeviceKind(self.kind))
        object.__setattr__(self, "quirks", frozenset(Quirk(q) for q in self.quirks))
        object.__setattr__(self, "date_time_source", DateTimeSource(self.date_time_source))
        object.__setattr__(self, "snapshot_auth", SnapshotAuthMode(self.snapshot_auth))
        object.__setattr__(self, "mac_address", self.mac_address.lower())
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels:
            raise ValueError(f"device {self.name!r} needs at least one channel")
        if self.kind is DeviceKind.CAMERA and len(self.channels) != 1:
            raise ValueError(f"camera {self.name!r} must have exactly one channel")
        if not _MAC_RE.match(self.mac_address):
            raise ValueError(f"device {self.name!r}: MAC must look like aa:bb:cc:dd:ee:ff")
        tokens = [channel.video_source_token for channel in self.channels]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"device {self.name!r}: video source tokens must be unique")
        if self.wsse_digest_only and self.wsse_text_only:
            raise ValueError(f"device {self.name!r}: wsse_digest_only and wsse_text_only exclude each other")
        if self.slow_delay_s < 0 or self.wsse_clock_tolerance_s < 0:
            raise ValueError("delays and tolerances cannot be negative")

    def has_quirk(self, quirk: Quirk) -> bool:
        """Whether this device misbehaves in the given way."""
        return quirk in self.quirks

    @property
    def initial_clock_offset_s(self) -> float:
        """Seconds the device clock runs ahead of the host at start (negative: behind)."""
        return self.clock_offset_s if self.has_quirk(Quirk.CLOCK_SKEW) else 0.0

    @property
    def has_ptz(self) -> bool:
        """Whether any channel has a pan/tilt/zoom head (and so the PTZ service exists)."""
        return any(channel.has_ptz for channel in self.channels)

    @property
    def scopes(self) -> tuple[str, ...]:
        """ONVIF scope URIs, shared by GetScopes and a WS-Discovery responder."""
        base = "onvif://www.onvif.org"
        device_type = "video_encoder" if self.kind is DeviceKind.CAMERA else "Network_Video_Recorder"
        scopes = [
            f"{base}/type/{device_type}",
            f"{base}/Profile/Streaming",
            f"{base}/hardware/{quote(self.model, safe='')}",
            f"{base}/name/{quote(self.name, safe='')}",
            f"{base}/location/{quote(self.location, safe='')}",
            f"{base}/MAC/{self.mac_address}",
        ]
        if self.has_ptz:
            scopes.insert(1, f"{base}/type/ptz")
        return (*scopes, *self.extra_scopes)


@dataclass(frozen=True)
class MediaProfile:
    """One media profile: a stream of one channel, and whether PTZ is reachable through it."""

    token: str
    name: str
    channel_index: int
    kind: StreamKind
    channel: ChannelDescription
    has_ptz_configuration: bool

    @property
    def channel_number(self) -> int:
        """1-based channel number, as devices print it."""
        return self.channel_index + 1


def profile_token(channel_index: int, kind: StreamKind) -> str:
    """Token of a channel's main or sub profile: ``Profile_101``/``Profile_102`` for channel 1.

    The scheme follows common NVR firmware (channel number, then 01 main / 02 sub) so tokens are
    predictable for tests and the orchestrator.
    """
    suffix = "01" if kind is StreamKind.MAIN else "02"
    return f"Profile_{channel_index + 1}{suffix}"


def build_media_profiles(description: DeviceDescription) -> tuple[MediaProfile, ...]:
    """The profiles GetProfiles lists, in order: per channel main then sub."""
    one_ptz_profile = description.has_quirk(Quirk.PTZ_ONE_PROFILE)
    profiles: list[MediaProfile] = []
    for index, channel in enumerate(description.channels):
        for kind in (StreamKind.MAIN, StreamKind.SUB):
            if one_ptz_profile:
                with_ptz = channel.has_ptz and index == 0 and kind is StreamKind.MAIN
            else:
                with_ptz = channel.has_ptz
            profiles.append(
                MediaProfile(
                    token=profile_token(index, kind),
                    name=f"Channel{index + 1}_{'MainStream' if kind is StreamKind.MAIN else 'SubStream'}",
                    channel_index=index,
                    kind=kind,
                    channel=channel,
                    has_ptz_configuration=with_ptz,
                )
            )
    return tuple(profiles)
