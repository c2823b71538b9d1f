"""Simulated ONVIF cameras and NVRs for the site simulator and the daemon's tests.

The site builds a ``DeviceDescription`` per device (RTSP URLs come from its real RTSP server)
and runs each in an ``OnvifDeviceServer`` on loopback.
"""

from .model import (
    ChannelDescription,
    DateTimeSource,
    DeviceDescription,
    DeviceKind,
    MediaProfile,
    Quirk,
    Resolution,
    SnapshotAuthMode,
    StreamKind,
    build_media_profiles,
    profile_token,
)
from .motion import PtzPosition
from .server import OnvifDeviceServer
from .state import PtzPreset
from .wsse import AuthRejection

__all__ = [
    "AuthRejection",
    "ChannelDescription",
    "DateTimeSource",
    "DeviceDescription",
    "DeviceKind",
    "MediaProfile",
    "OnvifDeviceServer",
    "PtzPosition",
    "PtzPreset",
    "Quirk",
    "Resolution",
    "SnapshotAuthMode",
    "StreamKind",
    "build_media_profiles",
    "profile_token",
]
