"""From media profiles and video sources to channels: which profile is main, which is sub.

An ONVIF device has video sources (sensors, or an NVR's inputs) and media profiles that encode a
source at some resolution. A channel is one video source; its main stream is the profile of that
source with the most pixels, its sub stream the one with the fewest. PTZ commands go through a
profile that carries a PTZConfiguration (the main one when it has it). The functions here read
zeep objects defensively (``getattr`` with defaults) because firmwares omit optional elements
freely, and return plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MediaProfileInfo:
    """What we need from one media profile."""

    token: str
    name: str
    source_token: str
    width: int
    height: int
    has_ptz: bool

    @property
    def pixels(self) -> int:
        """Encoded picture size, to rank profiles of one source."""
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """One channel: its source, main and sub profile, and the profile PTZ commands use."""

    source_token: str
    position: int
    main: MediaProfileInfo
    sub: MediaProfileInfo | None
    ptz_profile: str
    """Token of a profile with a PTZConfiguration, or "" when no profile of the source has one."""

    @property
    def profiles(self) -> tuple[MediaProfileInfo, ...]:
        """Main, then sub when there is one."""
        return (self.main,) if self.sub is None else (self.main, self.sub)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def profile_info(profile: Any) -> MediaProfileInfo | None:
    """A profile's token, source, encoded size and PTZ attachment; None if it names no source."""
    token = getattr(profile, "token", None)
    source_configuration = getattr(profile, "VideoSourceConfiguration", None)
    source_token = getattr(source_configuration, "SourceToken", None)
    if not token or not source_token:
        return None
    encoder = getattr(profile, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    width, height = _int(getattr(resolution, "Width", 0)), _int(getattr(resolution, "Height", 0))
    if not (width and height):
        bounds = getattr(source_configuration, "Bounds", None)
        width, height = _int(getattr(bounds, "width", 0)), _int(getattr(bounds, "height", 0))
    return MediaProfileInfo(
        token=str(token),
        name=str(getattr(profile, "Name", "") or ""),
        source_token=str(source_token),
        width=width,
        height=height,
        has_ptz=getattr(profile, "PTZConfiguration", None) is not None,
    )


def source_tokens(video_sources: Iterable[Any]) -> list[str]:
    """Tokens of the device's video sources in the order it lists them."""
    tokens: list[str] = []
    for source in video_sources or ():
        token = getattr(source, "token", None)
        if token and str(token) not in tokens:
            tokens.append(str(token))
    return tokens


def plan_channels(profiles: Sequence[MediaProfileInfo], sources: Sequence[str]) -> list[ChannelLayout]:
    """One channel per video source that has at least one profile, in the device's source order.

    Sources missing from ``sources`` (GetVideoSources failed or forgot one) follow in the order
    their first profile appears. Ties in size keep the device's profile order, so the main stream
    is the first of the largest profiles.
    """
    order = list(sources)
    for profile in profiles:
        if profile.source_token not in order:
            order.append(profile.source_token)
    channels: list[ChannelLayout] = []
    for source in order:
        own = [p for p in profiles if p.source_token == source]
        if not own:
            continue
        main = max(own, key=lambda p: p.pixels)
        others = [p for p in own if p.token != main.token]
        sub = min(others, key=lambda p: p.pixels) if others else None
        ptz = main if main.has_ptz else next((p for p in own if p.has_ptz), None)
        channels.append(
            ChannelLayout(
                source_token=source,
                position=len(channels) + 1,
                main=main,
                sub=sub,
                ptz_profile=ptz.token if ptz is not None else "",
            )
        )
    return channels
