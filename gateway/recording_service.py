"""The daemon's recording: one recorder pool, its indexer, start-up recovery and who may record.

:class:`RecordingService` is the single owner of the :class:`~bridges.media.RecorderPool`.
Entering it first runs start-up crash recovery (segments a crash left open are salvaged and
indexed, gaps noted) and only then opens the pool, so recovery never races a recorder writing
into the same directory.  Leaving it stops every recorder, which closes the current segments and
delivers their last events to the index; the daemon leaves it before device sessions and the
database close.

The scheduler says *which* channels should record (:meth:`record`/:meth:`stop`); the service
decides whether they *can*: the channel must be known (its main RTSP URI resolved by the
daemon from the device index), its device not disabled by the cloud, and writes not paused by
the disk guard (``deny_new``).  What the scheduler wanted is remembered, so that a pause and
its resume restart exactly those channels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Self

from bridges.media import RecorderPool, RecorderSettings, RecordingGap, SegmentInfo, recover
from bridges.media.recorder import RecorderState

from .metrics import RecorderCounters
from .recordings import RecordingIndex, RecordingIndexer, Span

_LOGGER = logging.getLogger(__name__)

StreamUrlLookup = Callable[[str], Awaitable[str | None]]
"""``channel_id -> RTSP URL with credentials`` or None while the channel is unknown."""


class MeteredIndexer(RecordingIndexer):
    """The recorder pool's events into the index and the recorder metrics."""

    def __init__(self, index: RecordingIndex, counters: RecorderCounters | None) -> None:
        super().__init__(index)
        self._counters = counters

    async def segment_closed(self, segment: SegmentInfo) -> None:
        await super().segment_closed(segment)
        if self._counters is not None:
            self._counters.add_bytes(segment.channel, segment.bytes)
            if segment.dropped_packets:
                self._counters.add_dropped(segment.channel, segment.dropped_packets)

    async def gap_recorded(self, gap: RecordingGap) -> None:
        await super().gap_recorded(gap)
        if self._counters is not None:
            self._counters.add_gap(gap.channel)


class RecordingService:
    """Records the channels it is asked to, when they can be; an async context manager."""

    def __init__(
        self,
        index: RecordingIndex,
        *,
        stream_url_for: StreamUrlLookup,
        settings: RecorderSettings | None = None,
        counters: RecorderCounters | None = None,
        is_disabled: Callable[[str], bool] = lambda channel_id: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.recordings_dir = index.recordings_dir
        self._stream_url_for = stream_url_for
        self._is_disabled = is_disabled
        self._clock = clock
        self._pool = RecorderPool(
            self.recordings_dir, MeteredIndexer(index, counters), settings=settings, clock=clock
        )
        self._wanted: set[str] = set()
        self._paused_reason = ""

    async def __aenter__(self) -> Self:
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        report = await recover(self.recordings_dir, self.index, clock=self._clock)
        if report.recovered or report.quarantined:
            _LOGGER.warning(
                "recording recovery: %d segment(s) salvaged, %d unplayable moved aside",
                len(report.recovered),
                len(report.quarantined),
            )
        await self._pool.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every recorder (closing its segment, indexing it); idempotent."""
        await self._pool.close()
        _LOGGER.info("recording stopped, current segments closed")

    # -- what the scheduler asks -----------------------------------------------------------------

    async def record(self, channel_id: str) -> bool:
        """Want ``channel_id`` recorded; True if its recorder runs, False if it cannot yet."""
        self._wanted.add(channel_id)
        if self._paused_reason:
            return False
        if self._is_disabled(channel_id):
            _LOGGER.debug("channel %s: device disabled, not recording", channel_id)
            await self._pool.stop(channel_id)
            return False
        url = await self._stream_url_for(channel_id)
        if not url:
            _LOGGER.debug("channel %s: stream not known yet, not recording", channel_id)
            return False
        if channel_id not in self._pool.channels:
            _LOGGER.info("channel %s: recording", channel_id)
        await self._pool.start(channel_id, url)
        return True

    async def stop(self, channel_id: str) -> None:
        """No longer want ``channel_id`` recorded; its current segment is closed and indexed."""
        self._wanted.discard(channel_id)
        if channel_id in self._pool.channels:
            _LOGGER.info("channel %s: recording stops", channel_id)
            await self._pool.stop(channel_id)

    # -- what the disk guard asks ------------------------------------------------------------------

    @property
    def paused(self) -> str:
        """Why new writes are refused ("" while recording is allowed)."""
        return self._paused_reason

    async def pause(self, reason: str) -> None:
        """Stop every recorder and refuse new ones until :meth:`resume` (the wanted set is kept)."""
        if self._paused_reason:
            return
        self._paused_reason = reason
        await self._pool.stop_all()

    async def resume(self) -> list[str]:
        """Allow writes again and restart the wanted channels; returns those restarted."""
        if not self._paused_reason:
            return []
        self._paused_reason = ""
        return [channel_id for channel_id in sorted(self._wanted) if await self.record(channel_id)]

    # -- what status pages ask ---------------------------------------------------------------------

    @property
    def wanted(self) -> frozenset[str]:
        return frozenset(self._wanted)

    def is_recording(self, channel_id: str) -> bool:
        """Whether the channel's recorder is connected and writing (not retrying, not stopped)."""
        if channel_id not in self._pool.channels:
            return False
        return self._pool.status(channel_id).state is RecorderState.RECORDING

    async def spans(self, channel_id: str, start: float, end: float) -> list[Span]:
        """Stretches of ``[start, end]`` with indexed footage."""
        return await self.index.timeline(channel_id, start, end)


__all__ = ["MeteredIndexer", "RecordingService", "StreamUrlLookup"]
