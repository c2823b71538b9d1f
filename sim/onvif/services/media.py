"""Media service (ver10, ``/onvif/media_service``): profiles, video sources, stream and snapshot URIs.

Every channel has a main and a sub profile; both share the channel's video source configuration
and (unless the ``ptz_one_profile`` quirk says otherwise) its PTZ configuration. Stream URIs are
the RTSP URLs the site passed in; snapshot URIs point back at this server.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from ..model import MediaProfile, Quirk, StreamKind
from ..soap import NS_TRT, TRT, TT, action_not_supported, invalid_arg
from ..state import MEDIA_PATH, DeviceState, ServiceAddresses
from ..xmlvalues import child, optional_text, required_text, xs_bool
from .base import OperationHandler
from .elements import ptz_configuration, ptz_configuration_use_count

MEDIA_VERSION = (2, 60)
_UNICAST_TRANSPORTS = ("RTSP", "UDP", "TCP", "HTTP")


def _bitrate_kbps(profile: MediaProfile) -> int:
    """A plausible H.264 bitrate for the profile's size (about 2 bits per pixel-second at 25 fps)."""
    resolution = profile.channel.resolution(profile.kind)
    return max(256, resolution.width * resolution.height * 2 // 1000)


def video_source_configuration(profile: MediaProfile, use_count: int) -> etree._Element:
    """tt:VideoSourceConfiguration of the profile's channel (full sensor bounds)."""
    channel = profile.channel
    return TT.VideoSourceConfiguration(
        TT.Name(f"VideoSourceConfig_{profile.channel_number}"),
        TT.UseCount(str(use_count)),
        TT.SourceToken(channel.video_source_token),
        TT.Bounds(
            x="0", y="0", width=str(channel.main_resolution.width), height=str(channel.main_resolution.height)
        ),
        token=f"VideoSourceConfig_{profile.channel_number}",
    )


def video_encoder_configuration(profile: MediaProfile) -> etree._Element:
    """tt:VideoEncoderConfiguration: H.264 at the profile's resolution and the channel's rate."""
    resolution = profile.channel.resolution(profile.kind)
    return TT.VideoEncoderConfiguration(
        TT.Name(f"VideoEncoder_{profile.token}"),
        TT.UseCount("1"),
        TT.Encoding("H264"),
        TT.Resolution(TT.Width(str(resolution.width)), TT.Height(str(resolution.height))),
        TT.Quality("5"),
        TT.RateControl(
            TT.FrameRateLimit(str(profile.channel.framerate)),
            TT.EncodingInterval("1"),
            TT.BitrateLimit(str(_bitrate_kbps(profile))),
        ),
        TT.H264(TT.GovLength(str(profile.channel.framerate * 2)), TT.H264Profile("Main")),
        TT.Multicast(
            TT.Address(TT.Type("IPv4"), TT.IPv4Address("0.0.0.0")),
            TT.Port("0"),
            TT.TTL("0"),
            TT.AutoStart("false"),
        ),
        TT.SessionTimeout("PT60S"),
        token=f"VideoEncoder_{profile.token}",
    )


def _media_uri(uri: str) -> etree._Element:
    return TRT.MediaUri(
        TT.Uri(uri),
        TT.InvalidAfterConnect("false"),
        TT.InvalidAfterReboot("false"),
        TT.Timeout("PT0S"),
    )


class MediaService:
    """The media endpoint."""

    name = "media"
    path = MEDIA_PATH
    namespace = NS_TRT
    version = MEDIA_VERSION

    def __init__(self, state: DeviceState, addresses: ServiceAddresses) -> None:
        self._state = state
        self._addresses = addresses

    @property
    def snapshots_supported(self) -> bool:
        """False under the ``no_snapshot`` quirk."""
        return not self._state.description.has_quirk(Quirk.NO_SNAPSHOT)

    def operations(self) -> Mapping[str, OperationHandler]:
        """Media operations this simulator answers; GetSnapshotUri vanishes under ``no_snapshot``."""
        handlers: dict[str, OperationHandler] = {
            "GetServiceCapabilities": self.get_service_capabilities,
            "GetProfiles": self.get_profiles,
            "GetProfile": self.get_profile,
            "GetVideoSources": self.get_video_sources,
            "GetStreamUri": self.get_stream_uri,
        }
        if self.snapshots_supported:
            handlers["GetSnapshotUri"] = self.get_snapshot_uri
        return handlers

    def capabilities(self) -> etree._Element:
        """trt:Capabilities; SnapshotUri tells clients whether to ask for snapshots at all."""
        return TRT.Capabilities(
            TRT.ProfileCapabilities(MaximumNumberOfProfiles=str(len(self._state.profiles))),
            TRT.StreamingCapabilities(RTPMulticast="false", RTP_TCP="true", RTP_RTSP_TCP="true"),
            SnapshotUri=xs_bool(self.snapshots_supported),
            Rotation="false",
            VideoSourceMode="false",
            OSD="false",
        )

    def get_service_capabilities(self, _request: etree._Element) -> etree._Element:
        """The media service's capabilities."""
        return TRT.GetServiceCapabilitiesResponse(self.capabilities())

    def _profile_element(self, tag: str, profile: MediaProfile) -> etree._Element:
        channel_profiles = sum(1 for p in self._state.profiles if p.channel_index == profile.channel_index)
        parts = [
            TT.Name(profile.name),
            video_source_configuration(profile, channel_profiles),
            video_encoder_configuration(profile),
        ]
        if profile.has_ptz_configuration:
            use_count = ptz_configuration_use_count(self._state.profiles, profile.channel_index)
            parts.append(ptz_configuration(profile.channel_index, use_count))
        return TRT(tag, *parts, token=profile.token, fixed="true")

    def get_profiles(self, _request: etree._Element) -> etree._Element:
        """All profiles, per channel main then sub."""
        return TRT.GetProfilesResponse(*(self._profile_element("Profiles", p) for p in self._state.profiles))

    def get_profile(self, request: etree._Element) -> etree._Element:
        """One profile by token."""
        profile = self._state.profile(required_text(request, "ProfileToken"))
        return TRT.GetProfileResponse(self._profile_element("Profile", profile))

    def get_video_sources(self, _request: etree._Element) -> etree._Element:
        """One video source per channel at the main stream's resolution."""
        sources = []
        for channel in self._state.description.channels:
            resolution = channel.resolution(StreamKind.MAIN)
            sources.append(
                TRT.VideoSources(
                    TT.Framerate(str(channel.framerate)),
                    TT.Resolution(TT.Width(str(resolution.width)), TT.Height(str(resolution.height))),
                    token=channel.video_source_token,
                )
            )
        return TRT.GetVideoSourcesResponse(*sources)

    def get_stream_uri(self, request: etree._Element) -> etree._Element:
        """The channel's main or sub RTSP URL; multicast setups are refused."""
        profile = self._state.profile(required_text(request, "ProfileToken"))
        setup = child(request, "StreamSetup")
        if setup is not None:
            stream = optional_text(setup, "Stream")
            transport = child(setup, "Transport")
            protocol = optional_text(transport, "Protocol") if transport is not None else None
            if stream not in (None, "RTP-Unicast") or protocol not in (None, *_UNICAST_TRANSPORTS):
                raise invalid_arg("InvalidStreamSetup", f"unsupported stream setup {stream}/{protocol}")
        return TRT.GetStreamUriResponse(_media_uri(profile.channel.stream_uri(profile.kind)))

    def get_snapshot_uri(self, request: etree._Element) -> etree._Element:
        """An HTTP URL on this server serving a JPEG of the profile's channel."""
        if not self.snapshots_supported:
            raise action_not_supported("GetSnapshotUri")
        profile = self._state.profile(required_text(request, "ProfileToken"))
        return TRT.GetSnapshotUriResponse(_media_uri(self._addresses.snapshot_url(profile.token)))
