"""Playing back local recordings: stitching segments into one MP4, and playback sessions.

Segments (``bridges.media``) are fragmented MP4 files whose timestamps start again in every
file; the index knows each file's wall-clock start. :func:`remux_range` reads the segments that
cover ``[start, end)`` in order, maps every packet to wall-clock time (segment start + packet
time relative to the segment's first packet), and writes one fragmented MP4 whose timeline is
continuous: packet time = (wall time - first written packet's wall time) / scale. Nothing is
decoded; a cut can only begin on a keyframe, so the output starts at the last keyframe at or
before ``start`` (at most one GOP early) and ends at the first video packet at or after ``end``.
A gap between segments is closed up (the output has no hole); ControlRecordTimeline tells the
player where the gaps are.

The muxer writes fragments to a sink as they complete, so memory stays at one fragment plus
the GOP kept while looking for the start. PyAV blocks: the remux always runs in a thread.

A *playback session* (PlayRecord) is the range a player asked for plus what ControlRecord set:
a seek position, a speed and a paused flag. HTTP playback is pulled by the player, so the
server cannot hold a response still: ``pause`` ends the responses in progress and remembers how
far they got; reads are refused (409) while paused; ``play`` allows them again, from that
position or from a new ``Position``; ``Scale`` retimes the next read (audio is dropped when the
scale is not 1); ``stop`` closes the session (its URL is 404 from then on).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

import av

from bridges.media.writer import MOVFLAGS

from .recordings import Segment

_LOGGER = logging.getLogger(__name__)

OUTPUT_TIME_BASE: Final = Fraction(1, 90_000)
STREAM_QUEUE_CHUNKS: Final = 16
"""Chunks (one muxer write each, about a fragment) buffered between the remux thread and the
HTTP response: the thread waits when the player reads slower than the file is produced."""
SINK_POLL_SECONDS: Final = 0.5
PLAYBACK_SCALES: Final = frozenset({0.25, 0.5, 1, 2, 4, 8})
SESSION_IDLE_SECONDS: Final = 3600.0
"""A session nobody read or controlled for this long is forgotten."""


class RemuxStopped(Exception):
    """The consumer went away (player disconnected, session paused, task deleted)."""


class RangeEmpty(Exception):
    """No video packet of the segments falls in the range."""


ProgressCallback = Callable[[float], None]
"""Called with the wall-clock time of each video packet written."""


@dataclass(frozen=True, slots=True)
class RemuxResult:
    """What was written: wall-clock times of the first and last video packet, packet count."""

    first: float
    last: float
    packets: int


class _RangeWriter:
    """One output container fed packets in wall-clock time (video always, audio at scale 1)."""

    def __init__(self, sink: Any, template: av.container.InputContainer, scale: float) -> None:
        self._output = av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS, "flush_packets": "1"})
        self._scale = scale
        self._streams: dict[str, Any] = {}
        video = template.streams.video[0]
        self._streams["video"] = self._output.add_stream_from_template(video)
        if scale == 1 and template.streams.audio:
            self._streams["audio"] = self._output.add_stream_from_template(template.streams.audio[0])
        for stream in self._streams.values():
            stream.time_base = OUTPUT_TIME_BASE
        self.origin: float | None = None
        self._last_dts: dict[str, int] = {}

    def wants(self, kind: str) -> bool:
        return kind in self._streams

    def write(self, kind: str, packet: av.Packet, wall: float, wall_dts: float) -> None:
        if self.origin is None:
            self.origin = wall_dts
        pts = round((wall - self.origin) / self._scale / OUTPUT_TIME_BASE)
        dts = round((wall_dts - self.origin) / self._scale / OUTPUT_TIME_BASE)
        previous = self._last_dts.get(kind)
        if previous is not None and dts <= previous:
            # A segment boundary can place two packets on one tick: keep DTS increasing.
            shift = previous + 1 - dts
            dts, pts = dts + shift, pts + shift
        self._last_dts[kind] = dts
        packet.stream = self._streams[kind]
        packet.time_base = OUTPUT_TIME_BASE
        packet.pts, packet.dts = max(pts, dts), dts
        self._output.mux(packet)

    def close(self) -> None:
        self._output.close()


def _packet_times(packet: av.Packet, first_dts: int) -> tuple[float, float]:
    """(pts, dts) of a packet in seconds relative to its segment's first packet."""
    base = packet.time_base
    dts = packet.dts if packet.dts is not None else packet.pts
    pts = packet.pts if packet.pts is not None else dts
    return float((pts - first_dts) * base), float((dts - first_dts) * base)


def remux_range(
    segments: Sequence[Segment],
    start: float,
    end: float,
    sink: Any,
    *,
    scale: float = 1.0,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> RemuxResult:
    """Write ``[start, end)`` of ``segments`` (oldest first) to ``sink`` as one fragmented MP4.

    Blocking (PyAV): call it in a thread. Raises :class:`RangeEmpty` when no video falls in the
    range, :class:`RemuxStopped` when ``stop`` is set, ``av.FFmpegError`` on unreadable input.
    """
    writer: _RangeWriter | None = None
    written, first_wall, last_wall = 0, 0.0, 0.0
    pending: list[tuple[str, av.Packet, float, float]] = []  # the GOP before ``start``
    finished = False
    try:
        for segment in segments:
            if finished:
                break
            with av.open(str(segment.path)) as source:
                if not source.streams.video:
                    continue
                if writer is None:
                    writer = _RangeWriter(sink, source, scale)
                kinds = {source.streams.video[0].index: "video"}
                if source.streams.audio:
                    kinds[source.streams.audio[0].index] = "audio"
                first_dts: dict[int, int] = {}
                for packet in source.demux(*[source.streams[i] for i in kinds]):
                    if stop is not None and stop.is_set():
                        raise RemuxStopped()
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's end-of-stream flush packet
                    kind = kinds[packet.stream.index]
                    if not writer.wants(kind):
                        continue
                    origin = first_dts.setdefault(packet.stream.index, packet.dts if packet.dts is not None else packet.pts)
                    relative_pts, relative_dts = _packet_times(packet, origin)
                    wall, wall_dts = segment.start + relative_pts, segment.start + relative_dts
                    if kind == "video" and wall_dts >= end:
                        finished = True
                        break
                    if writer.origin is None and wall_dts < start:
                        if kind == "video" and packet.is_keyframe:
                            pending.clear()
                        if pending or (kind == "video" and packet.is_keyframe):
                            pending.append((kind, packet, wall, wall_dts))
                        continue
                    if writer.origin is None:
                        if not pending and not (kind == "video" and packet.is_keyframe):
                            continue  # wait for a keyframe when the range starts in a gap
                        for held in pending:
                            writer.write(*held)
                        pending.clear()
                        first_wall = writer.origin or wall_dts
                    writer.write(kind, packet, wall, wall_dts)
                    if kind == "video":
                        written += 1
                        last_wall = wall_dts
                        if progress is not None:
                            progress(wall_dts)
        if writer is None or writer.origin is None:
            raise RangeEmpty(f"no video between {start:.3f} and {end:.3f}")
    finally:
        if writer is not None:
            try:
                writer.close()
            except (av.FFmpegError, RemuxStopped, OSError):
                _LOGGER.debug("closing a stopped remux output failed", exc_info=True)
    return RemuxResult(first_wall, last_wall, written)


class QueueSink:
    """A file-like sink for the muxer that hands each write to a bounded asyncio queue.

    Called on the remux thread; it blocks while the queue is full (the player reads slower than
    the file is produced) and raises :class:`RemuxStopped` once ``stop`` is set, so an abandoned
    stream frees its thread. The consumer learns the end from the remux finishing, not from a
    sentinel, since a stopped remux could not deliver one to a full queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes], stop: threading.Event) -> None:
        self._loop = loop
        self._queue = queue
        self._stop = stop

    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise RemuxStopped()
        future = asyncio.run_coroutine_threadsafe(self._queue.put(bytes(data)), self._loop)
        while True:
            try:
                future.result(timeout=SINK_POLL_SECONDS)
                return len(data)
            except concurrent.futures.TimeoutError:
                if self._stop.is_set():
                    future.cancel()
                    raise RemuxStopped() from None


@dataclass(slots=True)
class PlaybackSession:
    """One PlayRecord answer: a channel's range plus the ControlRecord state."""

    session_id: str
    channel_id: str
    channel_key: str
    start: float
    end: float
    position: float = 0.0
    """Seconds from ``start`` where the next read begins (seek, or where a pause stopped)."""
    scale: float = 1.0
    paused: bool = False
    touched: float = 0.0
    streams: set[threading.Event] = field(default_factory=set)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def interrupt(self) -> None:
        """End the responses in progress (pause, stop)."""
        for stop in self.streams:
            stop.set()


class PlaybackSessions:
    """The open playback sessions, by id (in memory: a restart ends every playback)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, PlaybackSession] = {}

    def open(self, channel_id: str, channel_key: str, start: float, end: float) -> PlaybackSession:
        self._forget_idle()
        session = PlaybackSession(str(uuid.uuid4()), channel_id, channel_key, start, end, touched=self._clock())
        self._sessions[session.session_id] = session
        _LOGGER.info("channel %s: playback session %s for %.0f-%.0f", channel_key, session.session_id, start, end)
        return session

    def get(self, session_id: str) -> PlaybackSession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.touched = self._clock()
        return session

    def close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.interrupt()
            _LOGGER.info("channel %s: playback session %s closed", session.channel_key, session_id)

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)

    def _forget_idle(self) -> None:
        now = self._clock()
        for session_id, session in list(self._sessions.items()):
            if not session.streams and now - session.touched > SESSION_IDLE_SECONDS:
                self.close(session_id)


__all__ = [
    "PLAYBACK_SCALES",
    "PlaybackSession",
    "PlaybackSessions",
    "QueueSink",
    "RangeEmpty",
    "RemuxResult",
    "RemuxStopped",
    "remux_range",
]
