"""Builders for ``tt:`` schema types that more than one service returns.

Element order follows the xs:sequence in onvif.xsd exactly; zeep in strict mode rejects any other
order, and some clients are strict.
"""

from __future__ import annotations

from lxml import etree

from ..model import MediaProfile
from ..motion import PAN_TILT_RANGE, ZOOM_RANGE, PtzPosition
from ..soap import TT
from ..xmlvalues import xs_duration, xs_float

SPACE_PT_POSITION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
SPACE_ZOOM_POSITION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"
SPACE_PT_TRANSLATION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
SPACE_ZOOM_TRANSLATION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"
SPACE_PT_VELOCITY = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace"
SPACE_ZOOM_VELOCITY = "http://www.onvif.org/ver10/tptz/ZoomSpaces/VelocityGenericSpace"
SPACE_PT_SPEED = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/GenericSpeedSpace"
SPACE_ZOOM_SPEED = "http://www.onvif.org/ver10/tptz/ZoomSpaces/ZoomGenericSpeedSpace"

TRANSLATION_RANGE = (-1.0, 1.0)
VELOCITY_RANGE = (-1.0, 1.0)
SPEED_RANGE = (0.0, 1.0)
DEFAULT_PTZ_TIMEOUT_S = 5.0
PTZ_TIMEOUT_RANGE_S = (1.0, 60.0)


def float_range(name: str, bounds: tuple[float, float]) -> etree._Element:
    """A tt:FloatRange element."""
    return TT(name, TT.Min(xs_float(bounds[0])), TT.Max(xs_float(bounds[1])))


def space_2d(name: str, uri: str, bounds: tuple[float, float]) -> etree._Element:
    """A tt:Space2DDescription with the same range on both axes."""
    return TT(name, TT.URI(uri), float_range("XRange", bounds), float_range("YRange", bounds))


def space_1d(name: str, uri: str, bounds: tuple[float, float]) -> etree._Element:
    """A tt:Space1DDescription."""
    return TT(name, TT.URI(uri), float_range("XRange", bounds))


def ptz_spaces(name: str = "SupportedPTZSpaces") -> etree._Element:
    """tt:PTZSpaces listing the generic spaces this head supports, in schema order."""
    return TT(
        name,
        space_2d("AbsolutePanTiltPositionSpace", SPACE_PT_POSITION, PAN_TILT_RANGE),
        space_1d("AbsoluteZoomPositionSpace", SPACE_ZOOM_POSITION, ZOOM_RANGE),
        space_2d("RelativePanTiltTranslationSpace", SPACE_PT_TRANSLATION, TRANSLATION_RANGE),
        space_1d("RelativeZoomTranslationSpace", SPACE_ZOOM_TRANSLATION, TRANSLATION_RANGE),
        space_2d("ContinuousPanTiltVelocitySpace", SPACE_PT_VELOCITY, VELOCITY_RANGE),
        space_1d("ContinuousZoomVelocitySpace", SPACE_ZOOM_VELOCITY, VELOCITY_RANGE),
        space_1d("PanTiltSpeedSpace", SPACE_PT_SPEED, SPEED_RANGE),
        space_1d("ZoomSpeedSpace", SPACE_ZOOM_SPEED, SPEED_RANGE),
    )


def ptz_vector(name: str, position: PtzPosition) -> etree._Element:
    """A tt:PTZVector in the generic position spaces."""
    return TT(
        name,
        TT.PanTilt(x=xs_float(position.pan), y=xs_float(position.tilt), space=SPACE_PT_POSITION),
        TT.Zoom(x=xs_float(position.zoom), space=SPACE_ZOOM_POSITION),
    )


def ptz_node_token(channel_index: int) -> str:
    """Token of a channel's PTZ node."""
    return f"PTZNode_{channel_index + 1}"


def ptz_configuration_token(channel_index: int) -> str:
    """Token of a channel's PTZ configuration."""
    return f"PTZConfig_{channel_index + 1}"


def ptz_configuration(channel_index: int, use_count: int) -> etree._Element:
    """tt:PTZConfiguration of a channel's head, as GetProfiles and GetConfigurations show it."""
    return TT.PTZConfiguration(
        TT.Name(f"PTZ_{channel_index + 1}"),
        TT.UseCount(str(use_count)),
        TT.NodeToken(ptz_node_token(channel_index)),
        TT.DefaultAbsolutePantTiltPositionSpace(SPACE_PT_POSITION),
        TT.DefaultAbsoluteZoomPositionSpace(SPACE_ZOOM_POSITION),
        TT.DefaultRelativePanTiltTranslationSpace(SPACE_PT_TRANSLATION),
        TT.DefaultRelativeZoomTranslationSpace(SPACE_ZOOM_TRANSLATION),
        TT.DefaultContinuousPanTiltVelocitySpace(SPACE_PT_VELOCITY),
        TT.DefaultContinuousZoomVelocitySpace(SPACE_ZOOM_VELOCITY),
        TT.DefaultPTZSpeed(
            TT.PanTilt(x="1", y="1", space=SPACE_PT_SPEED),
            TT.Zoom(x="1", space=SPACE_ZOOM_SPEED),
        ),
        TT.DefaultPTZTimeout(xs_duration(DEFAULT_PTZ_TIMEOUT_S)),
        TT.PanTiltLimits(space_2d("Range", SPACE_PT_POSITION, PAN_TILT_RANGE)),
        TT.ZoomLimits(space_1d("Range", SPACE_ZOOM_POSITION, ZOOM_RANGE)),
        token=ptz_configuration_token(channel_index),
    )


def ptz_configuration_use_count(profiles: tuple[MediaProfile, ...], channel_index: int) -> int:
    """How many profiles reference a channel's PTZ configuration."""
    return sum(1 for p in profiles if p.channel_index == channel_index and p.has_ptz_configuration)
