"""What the recorder tells the rest of the gateway: three kinds of facts, as frozen dataclasses.

The recorder's only coupling to the gateway is these events (MediaMTX's two hooks, plus gaps):
the indexer enters closed segments and gaps in SQLite, and nothing else in the gateway needs to
know how a segment was written.  Times are POSIX seconds (UTC) as floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SegmentOpened:
    """A segment file was created: its first packet is on disk (it is a keyframe)."""

    channel: str
    path: Path
    start: float


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A finished segment file: closed by its writer, or salvaged by recovery (``recovered``).

    ``dropped_packets`` counts packets thrown away because their DTS did not increase (duplicate
    audio, small backward steps) or the muxer refused them; ``merged_packets`` counts video
    packets that repeated the previous packet's DTS and were joined to it as slices of the same
    picture; ``timestamp_jumps`` counts discontinuities the writer rebased across.
    """

    channel: str
    path: Path
    start: float
    end: float
    bytes: int
    codec: str
    has_audio: bool
    dropped_packets: int = 0
    merged_packets: int = 0
    timestamp_jumps: int = 0
    recovered: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RecordingGap:
    """A span a channel should have been recording but was not, and why (a fact for the index)."""

    channel: str
    start: float
    end: float
    reason: str

    @property
    def duration(self) -> float:
        return self.end - self.start


RecordingEvent = SegmentOpened | SegmentInfo | RecordingGap


class RecordingEvents(Protocol):
    """Who receives the recorder's events on the event loop (the gateway's indexer)."""

    async def segment_opened(self, event: SegmentOpened) -> None: ...

    async def segment_closed(self, segment: SegmentInfo) -> None: ...

    async def gap_recorded(self, gap: RecordingGap) -> None: ...


__all__ = ["RecordingEvent", "RecordingEvents", "RecordingGap", "SegmentInfo", "SegmentOpened"]
