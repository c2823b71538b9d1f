"""What the ONVIF bridge tells the daemon about a device, as plain frozen dataclasses.

zeep objects never leave ``bridges.onvif``: a :class:`CameraSession` turns them into these at
the boundary, so the rest of the gateway (inventory, registration, dispatch) is testable
without SOAP and cannot be broken by a camera's odd XML.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DeviceKind(enum.StrEnum):
    """The cloud's device ``Type``: 1 = IPC, 2 = NVR."""

    IPC = "ipc"
    NVR = "nvr"

    @property
    def cloud_type(self) -> int:
        """The ``Type`` value of AddUserDevice."""
        return 1 if self is DeviceKind.IPC else 2


class DeviceFault(enum.StrEnum):
    """Why a device is isolated; empty string = healthy."""

    NONE = ""
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    BAD_RESPONSE = "bad_response"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Where the gateway reached a device's ONVIF device service."""

    host: str
    port: int = 80
    https: bool = False

    @property
    def url(self) -> str:
        """The device service URL."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{self.host}:{self.port}/onvif/device_service"


@dataclass(frozen=True, slots=True)
class Discovered:
    """A device that answered a probe: where it is and what its WS-Discovery scopes say."""

    address: DeviceAddress
    xaddrs: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    endpoint_reference: str = ""
    source: str = "multicast"  # multicast | unicast | static

    def scope_value(self, kind: str) -> str:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope, or ``""``."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix.lower()):
                return scope[len(prefix) :]
        return ""


@dataclass(frozen=True, slots=True)
class ChannelDescription:
    """One video channel (a video source) with its main and sub stream."""

    source_token: str
    position: int
    name: str
    main_profile: str = ""
    sub_profile: str = ""
    main_uri: str = ""
    sub_uri: str = ""
    width: int = 0
    height: int = 0
    ptz: bool = False
    imaging: bool = False

    @property
    def code(self) -> str:
        """The channel code reported to the cloud (``ChannelCode``): stable across restarts."""
        return self.source_token


@dataclass(frozen=True, slots=True)
class DeviceDescription:
    """Everything the probe learned about one device."""

    identity: str
    kind: DeviceKind
    address: DeviceAddress
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    mac: str = ""
    channels: tuple[ChannelDescription, ...] = field(default_factory=tuple)
    clock_skew: float = 0.0
    auth_ok: bool = True

    @property
    def display_name(self) -> str:
        """A default name: model and address."""
        label = self.model or self.manufacturer or self.kind.value.upper()
        return f"{label} {self.address.host}"


@dataclass(frozen=True, slots=True)
class PtzPosition:
    """Where a channel's head is, in the ONVIF generic spaces (pan/tilt -1..1, zoom 0..1).

    A component the device did not report is ``None``; the moving flags are False when the
    device did not report a move status.
    """

    pan: float | None
    tilt: float | None
    zoom: float | None
    pan_tilt_moving: bool = False
    zoom_moving: bool = False


@dataclass(frozen=True, slots=True)
class Preset:
    """A stored PTZ position of one channel."""

    token: str
    name: str


@dataclass(frozen=True, slots=True)
class ImagingSettings:
    """The imaging settings of one channel's video source; ``None`` = not reported by the device."""

    brightness: float | None = None
    color_saturation: float | None = None
    contrast: float | None = None
    sharpness: float | None = None
    exposure_mode: str | None = None
    iris: float | None = None
    iris_min: float | None = None
    iris_max: float | None = None
    focus_mode: str | None = None
    ir_cut_filter: str | None = None
