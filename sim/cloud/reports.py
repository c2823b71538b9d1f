"""What the device side tells the platform about channels (outside the iss API).

The real platform learns a device's channels from the device (GB catalog) or from its gateway;
the emulator gets them as reports, from tests or from a gateway relay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ReportedChannel:
    """A channel as the device side reports it.

    ``code`` (ChannelCode, e.g. an ONVIF video source token) identifies the channel across
    reports when given; otherwise ``index`` (1-based, default: position in the report) does.
    ``streaming`` sets the channel's stream ``Status`` (1 = transmitting); ``online`` False marks
    the channel offline (``State`` 0) although its device is online.
    """

    name: str
    index: int | None = None
    ptz: bool = False
    manufacturer: str = ""
    resolution: str = ""
    code: str | None = None
    streaming: bool | None = None
    online: bool | None = None

    def to_wire(self, position: int) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "Index": self.index or position,
            "Name": self.name,
            "PTZType": int(self.ptz),
            "Manufacturer": self.manufacturer,
            "Resolution": self.resolution,
        }
        if self.code:
            wire["ChannelCode"] = self.code
        if self.streaming is not None:
            wire["Status"] = int(self.streaming)
        if self.online is not None:
            wire["State"] = int(self.online)
        return wire

    @classmethod
    def from_wire(cls, document: Any) -> ReportedChannel:
        """Parse ``{"Name", "Index"?, "ChannelCode"?, "PTZType"?, "Status"?, "State"?, ...}``.

        Raises ValueError on a malformed channel.
        """
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("Name"), str)
            or not document["Name"]
        ):
            raise ValueError("each channel needs a non-empty string Name")
        unknown = set(document) - {
            "Name",
            "Index",
            "ChannelCode",
            "PTZType",
            "Status",
            "State",
            "Manufacturer",
            "Resolution",
        }
        if unknown:
            raise ValueError(f"unknown channel members: {sorted(unknown)}")
        index = document.get("Index")
        if index is not None and (not isinstance(index, int) or index < 1):
            raise ValueError("Index must be an integer >= 1")
        code = document.get("ChannelCode")
        if code is not None and (not isinstance(code, str) or not code):
            raise ValueError("ChannelCode must be a non-empty string")
        status, state = document.get("Status"), document.get("State")
        for name, value in (("PTZType", document.get("PTZType")), ("Status", status), ("State", state)):
            if value is not None and value not in (0, 1):
                raise ValueError(f"{name} must be 0 or 1")
        return cls(
            name=document["Name"],
            index=index,
            ptz=bool(document.get("PTZType", 0)),
            manufacturer=str(document.get("Manufacturer", "")),
            resolution=str(document.get("Resolution", "")),
            code=code,
            streaming=None if status is None else bool(status),
            online=None if state is None else bool(state),
        )


@dataclass(frozen=True, slots=True)
class ChannelQuery:
    """Which device's channels RefreshDeviceChannel wants from its gateway."""

    device_id: str
    gateway_id: str
    ip: str
    port: int


# Returns the device's channels as its gateway reports them, None for "no answer to give"
# (the stored report is then used), or raises gateway.iss.errors.IssError.
ChannelSource = Callable[[ChannelQuery], Awaitable[list[ReportedChannel] | None]]
