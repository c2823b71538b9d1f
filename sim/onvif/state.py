"""The live, mutable side of one simulated device: clock, PTZ heads, presets, imaging, counters.

Service handlers change it; tests and the site orchestrator read it through
``OnvifDeviceServer.state`` to assert what the daemon made the device do.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .model import DateTimeSource, DeviceDescription, MediaProfile, Quirk, build_media_profiles
from .motion import LinearAxis, MonotonicClock, PtzMechanism, PtzPosition
from .soap import FaultCode, SoapFault, invalid_arg
from .wsse import AuthRejection

WallClock = Callable[[], float]

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
PTZ_PATH = "/onvif/ptz_service"
IMAGING_PATH = "/onvif/imaging_service"
SNAPSHOT_PATH_PREFIX = "/onvif/snapshot/"

MAX_PRESETS = 256


@dataclass(frozen=True)
class ServiceAddresses:
    """URLs the device advertises; ``bad_xaddrs`` doubles the port only in service XAddrs."""

    host: str
    port: int
    malformed_xaddrs: bool

    @property
    def base_url(self) -> str:
        """``http://host:port`` as the device is really reachable."""
        return f"http://{self.host}:{self.port}"

    def xaddr(self, path: str) -> str:
        """A service address as GetCapabilities/GetServices print it."""
        if self.malformed_xaddrs:
            return f"http://{self.host}:{self.port}:{self.port}{path}"
        return f"{self.base_url}{path}"

    def snapshot_url(self, profile_token: str) -> str:
        """Where the snapshot of a profile is served."""
        return f"{self.base_url}{SNAPSHOT_PATH_PREFIX}{profile_token}"


@dataclass
class PtzPreset:
    """A stored position with its token and name."""

    token: str
    name: str
    position: PtzPosition


class PresetStore:
    """Presets of one PTZ node; shared by all profiles of that channel, as on real heads."""

    def __init__(self) -> None:
        self._presets: dict[str, PtzPreset] = {}

    def sorted_presets(self) -> list[PtzPreset]:
        """Presets in token order (numeric tokens sort numerically)."""
        return sorted(self._presets.values(), key=lambda p: (len(p.token), p.token))

    def get(self, token: str) -> PtzPreset:
        """The preset with this token, or the ``ter:NoToken`` fault."""
        preset = self._presets.get(token)
        if preset is None:
            raise invalid_arg("NoToken", f"preset token {token!r} does not exist")
        return preset

    def save(self, position: PtzPosition, name: str | None, token: str | None) -> PtzPreset:
        """Create or overwrite a preset; the given token is reused, else the lowest free number."""
        if name and any(p.name == name and p.token != token for p in self._presets.values()):
            raise invalid_arg("PresetExist", f"a preset named {name!r} already exists")
        existing = self._presets.get(token) if token else None
        if existing is not None:
            existing.position = position
            existing.name = name or existing.name
            return existing
        if len(self._presets) >= MAX_PRESETS:
            raise SoapFault(FaultCode.RECEIVER, ("Action", "TooManyPresets"), "preset list is full")
        token = token or self._free_token()
        preset = PtzPreset(token=token, name=name or f"Preset {token}", position=position)
        self._presets[token] = preset
        return preset

    def remove(self, token: str) -> None:
        """Delete a preset, or raise ``ter:NoToken``."""
        self.get(token)
        del self._presets[token]

    def _free_token(self) -> str:
        number = 1
        while str(number) in self._presets:
            number += 1
        return str(number)


@dataclass
class ImagingState:
    """Imaging settings of one video source, plus its focus motor."""

    focus: LinearAxis
    brightness: float = 50.0
    color_saturation: float = 50.0
    contrast: float = 50.0
    sharpness: float = 50.0
    exposure_mode: str = "AUTO"
    iris: float = 0.0
    exposure_time: float = 10000.0
    gain: float = 50.0
    ir_cut_filter: str = "AUTO"
    focus_mode: str = "AUTO"


IMAGING_PERCENT_RANGE = (0.0, 100.0)
IRIS_RANGE = (-22.0, 0.0)
EXPOSURE_TIME_RANGE = (10.0, 40000.0)
GAIN_RANGE = (0.0, 100.0)
FOCUS_RANGE = (0.0, 1.0)


@dataclass
class DeviceState:
    """Mutable state of one device, built from its description."""

    description: DeviceDescription
    clock: MonotonicClock
    wall_clock: WallClock
    profiles: tuple[MediaProfile, ...] = field(init=False)
    clock_offset_s: float = field(init=False)
    date_time_source: DateTimeSource = field(init=False)
    ptz: dict[int, PtzMechanism] = field(init=False)
    presets: dict[int, PresetStore] = field(init=False)
    imaging: dict[str, ImagingState] = field(init=False)
    request_counts: Counter[str] = field(init=False, default_factory=Counter)
    auth_failures: Counter[AuthRejection] = field(init=False, default_factory=Counter)
    snapshot_requests: Counter[str] = field(init=False, default_factory=Counter)
    _request_seen: asyncio.Condition | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        description = self.description
        self.profiles = build_media_profiles(description)
        self.clock_offset_s = description.initial_clock_offset_s
        self.date_time_source = description.date_time_source
        ptz_channels = [i for i, channel in enumerate(description.channels) if channel.has_ptz]
        self.ptz = {i: PtzMechanism(self.clock) for i in ptz_channels}
        self.presets = {i: PresetStore() for i in ptz_channels}
        self.imaging = {
            channel.video_source_token: ImagingState(focus=LinearAxis(*FOCUS_RANGE, self.clock, 0.5))
            for channel in description.channels
        }

    @property
    def quirks(self) -> frozenset[Quirk]:
        """The description's quirk switches."""
        return self.description.quirks

    def device_time(self) -> float:
        """The device's wall clock (epoch seconds), skew included."""
        return self.wall_clock() + self.clock_offset_s

    def profile(self, token: str) -> MediaProfile:
        """The profile with this token, or the ``ter:NoProfile`` fault."""
        for profile in self.profiles:
            if profile.token == token:
                return profile
        raise invalid_arg("NoProfile", f"profile token {token!r} does not exist")

    def imaging_for(self, video_source_token: str) -> ImagingState:
        """Imaging state of a video source, or the ``ter:NoSource`` fault."""
        imaging = self.imaging.get(video_source_token)
        if imaging is None:
            raise invalid_arg("NoSource", f"video source {video_source_token!r} does not exist")
        return imaging

    async def record_request(self, key: str) -> None:
        """Count a request (``service.Operation``) and wake ``wait_for_request`` callers."""
        self.request_counts[key] += 1
        condition = self._condition()
        async with condition:
            condition.notify_all()

    async def wait_for_request(self, key: str, count: int = 1) -> None:
        """Return once ``key`` has been requested ``count`` times; callers bound it with a timeout."""
        condition = self._condition()
        async with condition:
            await condition.wait_for(lambda: self.request_counts[key] >= count)

    def _condition(self) -> asyncio.Condition:
        if self._request_seen is None:
            self._request_seen = asyncio.Condition()
        return self._request_seen
