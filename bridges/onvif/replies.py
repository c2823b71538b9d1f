"""Plain values out of zeep replies, and the request fragments that go the other way.

zeep hands back objects whose optional elements are ``None`` or missing depending on the
firmware, so every reader here uses ``getattr`` with a default and returns ``None`` (or "") for
what the device did not say, instead of raising on a camera's omission. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .models import ImagingSettings, PtzPosition

REPLACEMENT_CHARACTER = "\ufffd"
"""What lenient XML parsing leaves in place of bytes that are not UTF-8."""

_MAC_DIGITS_RE = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The device clock as GetSystemDateAndTime reported it."""

    offset_s: float
    """Device clock minus ours, seconds (positive: the device is ahead)."""
    manual: bool
    """The device is on manual time (DateTimeType Manual), so setting its clock sticks."""
    daylight_savings: bool


def clock_reading(answer: Any, now: float) -> ClockReading | None:
    """Offset of the device clock from ``now``; None when the device gave no usable UTC time.

    Some cameras answer with zero dates or only local time; those count as unknown. Devices
    report whole seconds, so the offset is exact to about a second.
    """
    utc = getattr(answer, "UTCDateTime", None)
    date: Any = getattr(utc, "Date", None)
    time_of_day: Any = getattr(utc, "Time", None)
    try:
        moment = dt.datetime(
            int(date.Year),
            int(date.Month),
            int(date.Day),
            int(time_of_day.Hour),
            int(time_of_day.Minute),
            int(time_of_day.Second),
            tzinfo=dt.UTC,
        )
    except (AttributeError, TypeError, ValueError):
        return None
    if moment.year < 2000:
        return None
    return ClockReading(
        offset_s=moment.timestamp() - now,
        manual=str(getattr(answer, "DateTimeType", "")) == "Manual",
        daylight_savings=bool(getattr(answer, "DaylightSavings", False)),
    )


def utc_date_time(epoch_s: float) -> dict[str, Any]:
    """A tt:DateTime argument (SetSystemDateAndTime) for an epoch time."""
    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return {
        "Date": {"Year": moment.year, "Month": moment.month, "Day": moment.day},
        "Time": {"Hour": moment.hour, "Minute": moment.minute, "Second": moment.second},
    }


def normalised_mac(value: Any) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any common spelling; "" for missing, malformed or all-zero."""
    digits = re.sub(r"[^0-9a-f]", "", str(value or "").lower())
    if not _MAC_DIGITS_RE.match(digits) or digits == "0" * 12:
        return ""
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def first_enabled_mac(interfaces: Iterable[Any]) -> str:
    """The MAC of the first enabled network interface that reports a valid one, or ""."""
    for interface in interfaces or ():
        if getattr(interface, "Enabled", True) is False:
            continue
        mac = normalised_mac(getattr(getattr(interface, "Info", None), "HwAddress", None))
        if mac:
            return mac
    return ""


def without_replacement_characters(value: Any) -> str:
    """Text with U+FFFD removed and surrounding blanks stripped; None becomes ""."""
    return ("" if value is None else str(value)).replace(REPLACEMENT_CHARACTER, "").strip()


def optional_float(value: Any) -> float | None:
    """A finite float, or None for anything missing or unparsable."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def optional_text(value: Any) -> str | None:
    """Cleaned text, or None for missing or empty."""
    return without_replacement_characters(value) or None


def ptz_vector(pan: float | None, tilt: float | None, zoom: float | None) -> dict[str, Any]:
    """A PTZVector/PTZSpeed argument; omitted parts stay out (the device leaves those axes)."""
    vector: dict[str, Any] = {}
    if pan is not None and tilt is not None:
        vector["PanTilt"] = {"x": pan, "y": tilt}
    if zoom is not None:
        vector["Zoom"] = {"x": zoom}
    return vector


def ptz_position(status: Any) -> PtzPosition:
    """A GetStatus reply as a :class:`PtzPosition`."""
    position = getattr(status, "Position", None)
    pan_tilt = getattr(position, "PanTilt", None)
    zoom = getattr(position, "Zoom", None)
    move = getattr(status, "MoveStatus", None)
    return PtzPosition(
        pan=optional_float(getattr(pan_tilt, "x", None)),
        tilt=optional_float(getattr(pan_tilt, "y", None)),
        zoom=optional_float(getattr(zoom, "x", None)),
        pan_tilt_moving=str(getattr(move, "PanTilt", "") or "").upper() == "MOVING",
        zoom_moving=str(getattr(move, "Zoom", "") or "").upper() == "MOVING",
    )


def imaging_settings(settings: Any, options: Any) -> ImagingSettings:
    """GetImagingSettings (and, when available, GetOptions for the iris range) as dataclass."""
    exposure = getattr(settings, "Exposure", None)
    focus = getattr(settings, "Focus", None)
    iris_range = getattr(getattr(options, "Exposure", None), "Iris", None)
    return ImagingSettings(
        brightness=optional_float(getattr(settings, "Brightness", None)),
        color_saturation=optional_float(getattr(settings, "ColorSaturation", None)),
        contrast=optional_float(getattr(settings, "Contrast", None)),
        sharpness=optional_float(getattr(settings, "Sharpness", None)),
        exposure_mode=optional_text(getattr(exposure, "Mode", None)),
        iris=optional_float(getattr(exposure, "Iris", None)),
        iris_min=optional_float(getattr(iris_range, "Min", None)),
        iris_max=optional_float(getattr(iris_range, "Max", None)),
        focus_mode=optional_text(getattr(focus, "AutoFocusMode", None)),
        ir_cut_filter=optional_text(getattr(settings, "IrCutFilter", None)),
    )
