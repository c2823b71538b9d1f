"""Imaging service (ver20, ``/onvif/imaging_service``): settings, options and the focus motor.

Settings are stored per video source and read back by GetImagingSettings. The focus lens is one
``LinearAxis`` on [0, 1]: Continuous moves run on the injected clock until Stop or an end stop,
Relative and Absolute moves arrive at once. Focus moves are accepted in either focus mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxml import etree

from ..soap import NS_TIMG, TIMG, TT, invalid_arg, invalid_args
from ..state import (
    EXPOSURE_TIME_RANGE,
    FOCUS_RANGE,
    GAIN_RANGE,
    IMAGING_PATH,
    IMAGING_PERCENT_RANGE,
    IRIS_RANGE,
    DeviceState,
    ImagingState,
)
from ..xmlvalues import child, optional_float, optional_text, required_text, xs_float
from .base import OperationHandler
from .elements import float_range

IMAGING_VERSION = (2, 60)
FOCUS_DISTANCE_RANGE = (-1.0, 1.0)
FOCUS_SPEED_RANGE = (-1.0, 1.0)
FOCUS_ABSOLUTE_SPEED_RANGE = (0.0, 1.0)
_MODES = ("AUTO", "MANUAL")
_IR_CUT_MODES = ("ON", "OFF", "AUTO")


def _in_bounds(value: float, bounds: tuple[float, float], what: str) -> float:
    if not bounds[0] <= value <= bounds[1]:
        raise invalid_arg("SettingsInvalid", f"{what} {value} outside {bounds}")
    return value


def _checked(value: float | None, bounds: tuple[float, float], what: str) -> float | None:
    return None if value is None else _in_bounds(value, bounds, what)


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise invalid_arg("SettingsInvalid", f"{what} {value!r} not one of {allowed}")
    return value


@dataclass(frozen=True)
class _SettingChange:
    """One validated field of a SetImagingSettings request."""

    attribute: str
    value: float | str


def _setting_changes(settings: etree._Element) -> list[_SettingChange]:
    """Validate every field of tt:ImagingSettings20 before anything is applied."""
    changes: list[_SettingChange] = []

    def add(attribute: str, value: float | str | None) -> None:
        if value is not None:
            changes.append(_SettingChange(attribute, value))

    for tag, attribute in (
        ("Brightness", "brightness"),
        ("ColorSaturation", "color_saturation"),
        ("Contrast", "contrast"),
        ("Sharpness", "sharpness"),
    ):
        add(attribute, _checked(optional_float(settings, tag), IMAGING_PERCENT_RANGE, tag))
    add("ir_cut_filter", _choice(optional_text(settings, "IrCutFilter"), _IR_CUT_MODES, "IrCutFilter"))
    exposure = child(settings, "Exposure")
    if exposure is not None:
        add("exposure_mode", _choice(optional_text(exposure, "Mode"), _MODES, "Exposure mode"))
        add("iris", _checked(optional_float(exposure, "Iris"), IRIS_RANGE, "Iris"))
        add(
            "exposure_time",
            _checked(optional_float(exposure, "ExposureTime"), EXPOSURE_TIME_RANGE, "ExposureTime"),
        )
        add("gain", _checked(optional_float(exposure, "Gain"), GAIN_RANGE, "Gain"))
    focus = child(settings, "Focus")
    if focus is not None:
        add("focus_mode", _choice(optional_text(focus, "AutoFocusMode"), _MODES, "AutoFocusMode"))
    return changes


class ImagingService:
    """The imaging endpoint."""

    name = "imaging"
    path = IMAGING_PATH
    namespace = NS_TIMG
    version = IMAGING_VERSION

    def __init__(self, state: DeviceState) -> None:
        self._state = state

    def operations(self) -> Mapping[str, OperationHandler]:
        """Imaging operations this simulator answers."""
        return {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetImagingSettings": self.get_imaging_settings,
            "SetImagingSettings": self.set_imaging_settings,
            "GetOptions": self.get_options,
            "Move": self.move,
            "GetMoveOptions": self.get_move_options,
            "Stop": self.stop,
            "GetStatus": self.get_status,
        }

    def capabilities(self) -> etree._Element:
        """timg:Capabilities: no image stabilisation."""
        return TIMG.Capabilities(ImageStabilization="false")

    def get_service_capabilities(self, _request: etree._Element) -> etree._Element:
        """The imaging service's capabilities."""
        return TIMG.GetServiceCapabilitiesResponse(self.capabilities())

    def _source(self, request: etree._Element) -> ImagingState:
        return self._state.imaging_for(required_text(request, "VideoSourceToken"))

    def get_imaging_settings(self, request: etree._Element) -> etree._Element:
        """Stored settings in tt:ImagingSettings20 order."""
        imaging = self._source(request)
        return TIMG.GetImagingSettingsResponse(
            TIMG.ImagingSettings(
                TT.Brightness(xs_float(imaging.brightness)),
                TT.ColorSaturation(xs_float(imaging.color_saturation)),
                TT.Contrast(xs_float(imaging.contrast)),
                TT.Exposure(
                    TT.Mode(imaging.exposure_mode),
                    TT.MinExposureTime(xs_float(EXPOSURE_TIME_RANGE[0])),
                    TT.MaxExposureTime(xs_float(EXPOSURE_TIME_RANGE[1])),
                    TT.MinGain(xs_float(GAIN_RANGE[0])),
                    TT.MaxGain(xs_float(GAIN_RANGE[1])),
                    TT.MinIris(xs_float(IRIS_RANGE[0])),
                    TT.MaxIris(xs_float(IRIS_RANGE[1])),
                    TT.ExposureTime(xs_float(imaging.exposure_time)),
                    TT.Gain(xs_float(imaging.gain)),
                    TT.Iris(xs_float(imaging.iris)),
                ),
                TT.Focus(
                    TT.AutoFocusMode(imaging.focus_mode),
                    TT.DefaultSpeed("1"),
                    TT.NearLimit("0"),
                    TT.FarLimit("0"),
                ),
                TT.IrCutFilter(imaging.ir_cut_filter),
                TT.Sharpness(xs_float(imaging.sharpness)),
            )
        )

    def set_imaging_settings(self, request: etree._Element) -> etree._Element:
        """Apply all given settings, or none when any is invalid (``ter:SettingsInvalid``)."""
        imaging = self._source(request)
        settings = child(request, "ImagingSettings")
        if settings is None:
            raise invalid_arg("SettingsInvalid", "ImagingSettings is required")
        for change in _setting_changes(settings):
            setattr(imaging, change.attribute, change.value)
        return TIMG.SetImagingSettingsResponse()

    def get_options(self, request: etree._Element) -> etree._Element:
        """Ranges and modes SetImagingSettings accepts."""
        self._source(request)
        return TIMG.GetOptionsResponse(
            TIMG.ImagingOptions(
                float_range("Brightness", IMAGING_PERCENT_RANGE),
                float_range("ColorSaturation", IMAGING_PERCENT_RANGE),
                float_range("Contrast", IMAGING_PERCENT_RANGE),
                TT.Exposure(
                    *(TT.Mode(mode) for mode in _MODES),
                    float_range("ExposureTime", EXPOSURE_TIME_RANGE),
                    float_range("Gain", GAIN_RANGE),
                    float_range("Iris", IRIS_RANGE),
                ),
                TT.Focus(
                    *(TT.AutoFocusModes(mode) for mode in _MODES),
                    float_range("DefaultSpeed", FOCUS_ABSOLUTE_SPEED_RANGE),
                ),
                *(TT.IrCutFilterModes(mode) for mode in _IR_CUT_MODES),
                float_range("Sharpness", IMAGING_PERCENT_RANGE),
            )
        )

    def get_move_options(self, request: etree._Element) -> etree._Element:
        """Focus move ranges."""
        self._source(request)
        return TIMG.GetMoveOptionsResponse(
            TIMG.MoveOptions(
                TT.Absolute(
                    float_range("Position", FOCUS_RANGE), float_range("Speed", FOCUS_ABSOLUTE_SPEED_RANGE)
                ),
                TT.Relative(
                    float_range("Distance", FOCUS_DISTANCE_RANGE),
                    float_range("Speed", FOCUS_ABSOLUTE_SPEED_RANGE),
                ),
                TT.Continuous(float_range("Speed", FOCUS_SPEED_RANGE)),
            )
        )

    def move(self, request: etree._Element) -> etree._Element:
        """Drive the focus motor: Absolute position, Relative distance or Continuous speed."""
        imaging = self._source(request)
        focus = child(request, "Focus")
        if focus is None:
            raise invalid_args("Focus is required")
        moves: dict[str, Callable[[etree._Element], None]] = {
            "Absolute": lambda e: imaging.focus.jump_to(self._focus_value(e, "Position", FOCUS_RANGE)),
            "Relative": lambda e: imaging.focus.jump_to(
                imaging.focus.position() + self._focus_value(e, "Distance", FOCUS_DISTANCE_RANGE)
            ),
            "Continuous": lambda e: imaging.focus.move_continuously(
                self._focus_value(e, "Speed", FOCUS_SPEED_RANGE)
            ),
        }
        for tag, apply in moves.items():
            element = child(focus, tag)
            if element is not None:
                apply(element)
                return TIMG.MoveResponse()
        raise invalid_arg("SettingsInvalid", "Focus holds no Absolute, Relative or Continuous move")

    @staticmethod
    def _focus_value(element: etree._Element, tag: str, bounds: tuple[float, float]) -> float:
        value = optional_float(element, tag)
        if value is None:
            raise invalid_arg("SettingsInvalid", f"focus move lacks {tag}")
        return _in_bounds(value, bounds, tag)

    def stop(self, request: etree._Element) -> etree._Element:
        """Stop the focus motor where it is."""
        self._source(request).focus.stop()
        return TIMG.StopResponse()

    def get_status(self, request: etree._Element) -> etree._Element:
        """Focus position and whether it is moving."""
        focus = self._source(request).focus
        return TIMG.GetStatusResponse(
            TIMG.Status(
                TT.FocusStatus20(
                    TT.Position(xs_float(focus.position())),
                    TT.MoveStatus("MOVING" if focus.is_moving() else "IDLE"),
                )
            )
        )
