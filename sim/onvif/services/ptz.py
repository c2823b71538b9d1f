"""PTZ service (ver20, ``/onvif/ptz_service``): nodes, configurations, moves, status and presets.

Moves act on the channel behind the profile token; the head's physics live in ``motion``.
Continuous moves run on the injected clock until Stop, their Timeout or an end stop; absolute,
relative, preset and home moves arrive instantly (see ``motion``). Only the generic spaces are
supported, as on most cameras; any other ``space`` is refused with ``ter:SpaceNotSupported``.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from ..model import MediaProfile, Quirk
from ..motion import PAN_TILT_RANGE, ZOOM_RANGE, PtzMechanism
from ..soap import NS_TPTZ, TPTZ, TT, invalid_arg
from ..state import MAX_PRESETS, PTZ_PATH, DeviceState, PresetStore
from ..xmlvalues import (
    child,
    float_attribute,
    optional_text,
    parse_xs_bool,
    parse_xs_duration,
    required_text,
    xs_datetime,
    xs_duration,
)
from .base import OperationHandler
from .elements import (
    PTZ_TIMEOUT_RANGE_S,
    SPACE_PT_POSITION,
    SPACE_PT_SPEED,
    SPACE_PT_TRANSLATION,
    SPACE_PT_VELOCITY,
    SPACE_ZOOM_POSITION,
    SPACE_ZOOM_SPEED,
    SPACE_ZOOM_TRANSLATION,
    SPACE_ZOOM_VELOCITY,
    SPEED_RANGE,
    TRANSLATION_RANGE,
    VELOCITY_RANGE,
    ptz_configuration,
    ptz_configuration_token,
    ptz_configuration_use_count,
    ptz_node_token,
    ptz_spaces,
    ptz_vector,
)

PTZ_VERSION = (2, 60)


def _in_range(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _check_space(element: etree._Element, allowed: str) -> None:
    space = element.get("space")
    if space is not None and space != allowed:
        raise invalid_arg("SpaceNotSupported", f"space {space!r} is not supported")


def _pan_tilt(
    vector: etree._Element | None, space: str, bounds: tuple[float, float], subcode: str
) -> tuple[float, float] | None:
    """(x, y) of a PanTilt child checked against a space and range, or None when absent."""
    element = None if vector is None else child(vector, "PanTilt")
    if element is None:
        return None
    _check_space(element, space)
    x, y = float_attribute(element, "x"), float_attribute(element, "y")
    if not (_in_range(x, bounds) and _in_range(y, bounds)):
        raise invalid_arg(subcode, f"pan/tilt ({x}, {y}) outside {bounds}")
    return x, y


def _zoom(
    vector: etree._Element | None, space: str, bounds: tuple[float, float], subcode: str
) -> float | None:
    """x of a Zoom child checked against a space and range, or None when absent."""
    element = None if vector is None else child(vector, "Zoom")
    if element is None:
        return None
    _check_space(element, space)
    x = float_attribute(element, "x")
    if not _in_range(x, bounds):
        raise invalid_arg(subcode, f"zoom {x} outside {bounds}")
    return x


def _check_speed(request: etree._Element) -> None:
    """Validate an optional Speed argument; moves are instant, so it is otherwise unused."""
    speed = child(request, "Speed")
    _pan_tilt(speed, SPACE_PT_SPEED, SPEED_RANGE, "InvalidSpeed")
    _zoom(speed, SPACE_ZOOM_SPEED, SPEED_RANGE, "InvalidSpeed")


class PtzService:
    """The PTZ endpoint."""

    name = "ptz"
    path = PTZ_PATH
    namespace = NS_TPTZ
    version = PTZ_VERSION

    def __init__(self, state: DeviceState) -> None:
        self._state = state

    def operations(self) -> Mapping[str, OperationHandler]:
        """PTZ operations; Stop vanishes under the ``no_stop`` quirk."""
        handlers: dict[str, OperationHandler] = {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetNodes": self.get_nodes,
            "GetNode": self.get_node,
            "GetConfigurations": self.get_configurations,
            "GetConfiguration": self.get_configuration,
            "GetConfigurationOptions": self.get_configuration_options,
            "GetStatus": self.get_status,
            "ContinuousMove": self.continuous_move,
            "RelativeMove": self.relative_move,
            "AbsoluteMove": self.absolute_move,
            "Stop": self.stop,
            "GetPresets": self.get_presets,
            "SetPreset": self.set_preset,
            "RemovePreset": self.remove_preset,
            "GotoPreset": self.goto_preset,
            "GotoHomePosition": self.goto_home_position,
            "SetHomePosition": self.set_home_position,
        }
        if self._state.description.has_quirk(Quirk.NO_STOP):
            del handlers["Stop"]
        return handlers

    def capabilities(self) -> etree._Element:
        """tptz:Capabilities: no EFlip/Reverse support."""
        return TPTZ.Capabilities(EFlip="false", Reverse="false", GetCompatibleConfigurations="false")

    def get_service_capabilities(self, _request: etree._Element) -> etree._Element:
        """The PTZ service's capabilities."""
        return TPTZ.GetServiceCapabilitiesResponse(self.capabilities())

    # --- nodes and configurations -------------------------------------------------------------

    def _node_channel(self, token: str) -> int:
        """Channel whose PTZ node has this token, or ``ter:NoEntity``."""
        for index in self._state.ptz:
            if ptz_node_token(index) == token:
                return index
        raise invalid_arg("NoEntity", f"PTZ node {token!r} does not exist")

    def _configuration_channel(self, token: str) -> int:
        """Channel whose PTZ configuration has this token, or ``ter:NoConfig``."""
        for index in self._state.ptz:
            if ptz_configuration_token(index) == token:
                return index
        raise invalid_arg("NoConfig", f"PTZ configuration {token!r} does not exist")

    def _node(self, tag: str, channel_index: int) -> etree._Element:
        return TPTZ(
            tag,
            TT.Name(f"PTZ_{channel_index + 1}"),
            ptz_spaces(),
            TT.MaximumNumberOfPresets(str(MAX_PRESETS)),
            TT.HomeSupported("true"),
            token=ptz_node_token(channel_index),
            FixedHomePosition="false",
        )

    def get_nodes(self, _request: etree._Element) -> etree._Element:
        """One node per channel with a head."""
        return TPTZ.GetNodesResponse(*(self._node("PTZNode", i) for i in self._state.ptz))

    def get_node(self, request: etree._Element) -> etree._Element:
        """One node by token."""
        index = self._node_channel(required_text(request, "NodeToken"))
        return TPTZ.GetNodeResponse(self._node("PTZNode", index))

    def _configuration(self, tag: str, channel_index: int) -> etree._Element:
        element = ptz_configuration(
            channel_index, ptz_configuration_use_count(self._state.profiles, channel_index)
        )
        element.tag = f"{{{NS_TPTZ}}}{tag}"
        return element

    def get_configurations(self, _request: etree._Element) -> etree._Element:
        """One configuration per channel with a head."""
        return TPTZ.GetConfigurationsResponse(
            *(self._configuration("PTZConfiguration", i) for i in self._state.ptz)
        )

    def get_configuration(self, request: etree._Element) -> etree._Element:
        """One configuration by token."""
        index = self._configuration_channel(required_text(request, "PTZConfigurationToken"))
        return TPTZ.GetConfigurationResponse(self._configuration("PTZConfiguration", index))

    def get_configuration_options(self, request: etree._Element) -> etree._Element:
        """Supported spaces and the allowed ContinuousMove timeout range."""
        self._configuration_channel(required_text(request, "ConfigurationToken"))
        return TPTZ.GetConfigurationOptionsResponse(
            TPTZ.PTZConfigurationOptions(
                ptz_spaces("Spaces"),
                TT.PTZTimeout(
                    TT.Min(xs_duration(PTZ_TIMEOUT_RANGE_S[0])), TT.Max(xs_duration(PTZ_TIMEOUT_RANGE_S[1]))
                ),
            )
        )

    # --- moves -------------------------------------------------------------------------------

    def _head(self, request: etree._Element) -> tuple[MediaProfile, PtzMechanism]:
        """The profile and head a request addresses; a profile without PTZ is ``ter:NoPTZProfile``."""
        profile = self._state.profile(required_text(request, "ProfileToken"))
        head = self._state.ptz.get(profile.channel_index)
        if head is None or not profile.has_ptz_configuration:
            raise invalid_arg(
                "NoPTZProfile", "The requested profile token does not reference a PTZ configuration"
            )
        return profile, head

    def _presets(self, profile: MediaProfile) -> PresetStore:
        return self._state.presets[profile.channel_index]

    def get_status(self, request: etree._Element) -> etree._Element:
        """Present position and whether each part is moving, stamped with the device clock."""
        _, head = self._head(request)
        return TPTZ.GetStatusResponse(
            TPTZ.PTZStatus(
                ptz_vector("Position", head.position()),
                TT.MoveStatus(
                    TT.PanTilt("MOVING" if head.pan_tilt_moving() else "IDLE"),
                    TT.Zoom("MOVING" if head.zoom_moving() else "IDLE"),
                ),
                TT.UtcTime(xs_datetime(self._state.device_time())),
            )
        )

    def continuous_move(self, request: etree._Element) -> etree._Element:
        """Start moving at Velocity; a zero velocity stops (the only stop under ``no_stop``)."""
        _, head = self._head(request)
        velocity = child(request, "Velocity")
        if velocity is None:
            raise invalid_arg("InvalidVelocity", "Velocity is required")
        pan_tilt = _pan_tilt(velocity, SPACE_PT_VELOCITY, VELOCITY_RANGE, "InvalidVelocity")
        zoom = _zoom(velocity, SPACE_ZOOM_VELOCITY, VELOCITY_RANGE, "InvalidVelocity")
        timeout_text = optional_text(request, "Timeout")
        timeout_s = None if timeout_text is None else parse_xs_duration(timeout_text)
        if timeout_s is not None and timeout_s <= 0:
            raise invalid_arg("TimeoutNotSupported", f"timeout {timeout_text} must be positive")
        head.continuous_move(pan_tilt, zoom, timeout_s)
        return TPTZ.ContinuousMoveResponse()

    def relative_move(self, request: etree._Element) -> etree._Element:
        """Move by Translation, clamped at the end stops."""
        _, head = self._head(request)
        translation = child(request, "Translation")
        pan_tilt = _pan_tilt(translation, SPACE_PT_TRANSLATION, TRANSLATION_RANGE, "InvalidTranslation")
        zoom = _zoom(translation, SPACE_ZOOM_TRANSLATION, TRANSLATION_RANGE, "InvalidTranslation")
        _check_speed(request)
        pan, tilt = pan_tilt if pan_tilt is not None else (0.0, 0.0)
        head.move_by(pan, tilt, zoom or 0.0)
        return TPTZ.RelativeMoveResponse()

    def absolute_move(self, request: etree._Element) -> etree._Element:
        """Go to Position; omitted parts stay where they are."""
        _, head = self._head(request)
        position = child(request, "Position")
        pan_tilt = _pan_tilt(position, SPACE_PT_POSITION, PAN_TILT_RANGE, "InvalidPosition")
        zoom = _zoom(position, SPACE_ZOOM_POSITION, ZOOM_RANGE, "InvalidPosition")
        _check_speed(request)
        pan, tilt = pan_tilt if pan_tilt is not None else (None, None)
        head.move_to(pan, tilt, zoom)
        return TPTZ.AbsoluteMoveResponse()

    def stop(self, request: etree._Element) -> etree._Element:
        """Freeze pan/tilt and/or zoom where they are; both when the flags are omitted."""
        _, head = self._head(request)
        pan_tilt_text = optional_text(request, "PanTilt")
        zoom_text = optional_text(request, "Zoom")
        head.stop(
            pan_tilt=True if pan_tilt_text is None else parse_xs_bool(pan_tilt_text),
            zoom=True if zoom_text is None else parse_xs_bool(zoom_text),
        )
        return TPTZ.StopResponse()

    # --- presets -----------------------------------------------------------------------------

    def get_presets(self, request: etree._Element) -> etree._Element:
        """The channel's presets with names and positions."""
        profile, _ = self._head(request)
        return TPTZ.GetPresetsResponse(
            *(
                TPTZ.Preset(
                    TT.Name(preset.name), ptz_vector("PTZPosition", preset.position), token=preset.token
                )
                for preset in self._presets(profile).sorted_presets()
            )
        )

    def set_preset(self, request: etree._Element) -> etree._Element:
        """Store the present position; reuses a given PresetToken, else allocates one."""
        profile, head = self._head(request)
        preset = self._presets(profile).save(
            head.position(),
            name=optional_text(request, "PresetName") or None,
            token=optional_text(request, "PresetToken") or None,
        )
        return TPTZ.SetPresetResponse(TPTZ.PresetToken(preset.token))

    def remove_preset(self, request: etree._Element) -> etree._Element:
        """Delete a preset; an unknown token is ``ter:InvalidArgVal/ter:NoToken``."""
        profile, _ = self._head(request)
        self._presets(profile).remove(required_text(request, "PresetToken"))
        return TPTZ.RemovePresetResponse()

    def goto_preset(self, request: etree._Element) -> etree._Element:
        """Jump to a stored preset."""
        profile, head = self._head(request)
        preset = self._presets(profile).get(required_text(request, "PresetToken"))
        _check_speed(request)
        head.move_to(preset.position.pan, preset.position.tilt, preset.position.zoom)
        return TPTZ.GotoPresetResponse()

    def goto_home_position(self, request: etree._Element) -> etree._Element:
        """Jump to the home position."""
        _, head = self._head(request)
        _check_speed(request)
        head.move_to(head.home.pan, head.home.tilt, head.home.zoom)
        return TPTZ.GotoHomePositionResponse()

    def set_home_position(self, request: etree._Element) -> etree._Element:
        """Make the present position home."""
        _, head = self._head(request)
        head.home = head.position()
        return TPTZ.SetHomePositionResponse()
