"""The recording index: which segments exist for which channel and time, and the gaps between.

The recorder (``bridges.media``) writes segment files; this module enters them in SQLite when
they *close* (``RecordingIndexer`` receives the recorder pool's events) and answers the
questions scheduling, retention and playback ask: what spans of a channel have footage
(``timeline``), which files cover a period (``segments_between``), how many bytes that is
(``bytes_between``), and what interrupted recording (``gaps_between``).

The disk is the truth and this index a cache of it: every row can be rebuilt from the segment
file names and by probing the files (``bridges.media.recovery.recover(..., full_scan=True)``).
Paths are stored relative to the recordings directory so the directory can move.

``protected`` (kept by retention until cleared, e.g. an alarm clip) and ``pins`` (a reference
count held while an export or upload reads the file) are for retention and export; eviction
must skip rows with either set.

All queries run on the ``StateStore`` thread; the event loop only awaits them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, NamedTuple

from bridges.media.events import RecordingGap, SegmentInfo, SegmentOpened
from gateway.store import StateStore

_LOGGER = logging.getLogger(__name__)

DEFAULT_MERGE_TOLERANCE: Final = 0.5
_SEGMENT_COLUMNS: Final = (
    "id, channel, start, end, path, bytes, codec, has_audio, dropped, state, protected, pins"
)


class Span(NamedTuple):
    """A stretch of time with footage, in POSIX seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Segment:
    """One indexed segment file."""

    id: int
    channel: str
    start: float
    end: float
    path: Path
    bytes: int
    codec: str
    has_audio: bool
    dropped: int
    state: str
    protected: bool
    pins: int

    @property
    def duration(self) -> float:
        return self.end - self.start


def merge_spans(
    intervals: Iterable[tuple[float, float]], start: float, end: float, tolerance: float
) -> list[Span]:
    """Merge intervals sorted by start into spans, joining those within ``tolerance`` seconds,
    clipped to ``[start, end]``."""
    spans: list[Span] = []
    for interval_start, interval_end in intervals:
        clipped_start, clipped_end = max(interval_start, start), min(interval_end, end)
        if clipped_end <= clipped_start:
            continue
        if spans and clipped_start <= spans[-1].end + tolerance:
            if clipped_end > spans[-1].end:
                spans[-1] = Span(spans[-1].start, clipped_end)
        else:
            spans.append(Span(clipped_start, clipped_end))
    return spans


class RecordingIndex:
    """Segments and gaps in the gateway's SQLite database (schema migration 2)."""

    def __init__(
        self, store: StateStore, recordings_dir: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.recordings_dir = recordings_dir
        self._clock = clock

    # -- writing ---------------------------------------------------------------------------------

    async def add_segment(self, segment: SegmentInfo) -> bool:
        """Enter a closed (or recovered) segment; False if its path was already indexed."""
        state = "recovered" if segment.recovered else "complete"
        changed = await self._store.execute(
            "INSERT INTO segments (channel, start, end, path, bytes, codec, has_audio, dropped, state, indexed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO NOTHING",
            (
                segment.channel,
                segment.start,
                max(segment.start, segment.end),
                self._relative(segment.path),
                segment.bytes,
                segment.codec,
                int(segment.has_audio),
                segment.dropped_packets,
                state,
                self._clock(),
            ),
        )
        if not changed:
            _LOGGER.warning("channel %s: segment %s was already indexed", segment.channel, segment.path)
        return bool(changed)

    async def add_gap(self, gap: RecordingGap) -> None:
        await self._store.execute(
            "INSERT INTO gaps (channel, start, end, reason) VALUES (?, ?, ?, ?)",
            (gap.channel, gap.start, max(gap.start, gap.end), gap.reason),
        )

    async def set_protected(self, segment_ids: Sequence[int], protected: bool) -> int:
        """Mark segments as kept by retention (or release them); returns rows changed."""
        return await self._update_many(
            "UPDATE segments SET protected = ? WHERE id = ?", int(protected), segment_ids
        )

    async def pin(self, segment_ids: Sequence[int]) -> int:
        """Take a reference on segments an export/upload is reading; eviction skips pinned rows."""
        return await self._update_many("UPDATE segments SET pins = pins + ? WHERE id = ?", 1, segment_ids)

    async def unpin(self, segment_ids: Sequence[int]) -> int:
        """Drop a reference taken by ``pin`` (never below zero)."""
        return await self._update_many(
            "UPDATE segments SET pins = pins - ? WHERE id = ? AND pins > 0", 1, segment_ids
        )

    async def _update_many(self, sql: str, value: int, segment_ids: Sequence[int]) -> int:
        def update(connection: sqlite3.Connection) -> int:
            return sum(connection.execute(sql, (value, segment_id)).rowcount for segment_id in segment_ids)

        return await self._store.transaction(update)

    # -- reading ---------------------------------------------------------------------------------

    async def segments_between(self, channel: str, start: float, end: float) -> list[Segment]:
        """Segments of ``channel`` overlapping ``[start, end)``, oldest first."""
        rows = await self._store.fetchall(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE channel = ? AND end > ? AND start < ? ORDER BY start",
            (channel, start, end),
        )
        return [self._segment(row) for row in rows]

    async def timeline(
        self, channel: str, start: float, end: float, *, tolerance: float = DEFAULT_MERGE_TOLERANCE
    ) -> list[Span]:
        """Spans of ``[start, end]`` that have footage, adjacent segments merged within ``tolerance``."""

        def query(connection: sqlite3.Connection) -> list[Span]:
            rows = connection.execute(
                "SELECT start, end FROM segments WHERE channel = ? AND end > ? AND start < ? ORDER BY start",
                (channel, start, end),
            )
            return merge_spans(((row[0], row[1]) for row in rows), start, end, tolerance)

        return await self._store.run(query)

    async def bytes_between(self, channel: str | None, start: float, end: float) -> int:
        """Bytes of the segments overlapping ``[start, end)``, for one channel or all (None)."""
        if channel is None:
            row = await self._store.fetchone(
                "SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE end > ? AND start < ?", (start, end)
            )
        else:
            row = await self._store.fetchone(
                "SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE channel = ? AND end > ? AND start < ?",
                (channel, start, end),
            )
        return int(row[0]) if row is not None else 0

    async def gaps_between(self, channel: str, start: float, end: float) -> list[RecordingGap]:
        """Recorded interruptions of ``channel`` overlapping ``[start, end)``, oldest first."""
        rows = await self._store.fetchall(
            "SELECT channel, start, end, reason FROM gaps WHERE channel = ? AND end > ? AND start < ? ORDER BY start",
            (channel, start, end),
        )
        return [RecordingGap(row["channel"], row["start"], row["end"], row["reason"]) for row in rows]

    async def latest_segment(self, channel: str) -> tuple[float, float] | None:
        """(start, end) of the channel's newest segment (by start), if any."""
        row = await self._store.fetchone(
            "SELECT start, end FROM segments WHERE channel = ? ORDER BY start DESC LIMIT 1", (channel,)
        )
        return (row["start"], row["end"]) if row is not None else None

    async def indexed_paths(self, channel: str, since: float) -> set[Path]:
        """Absolute paths of the channel's segments starting at or after ``since``."""
        rows = await self._store.fetchall(
            "SELECT path FROM segments WHERE channel = ? AND start >= ?", (channel, since)
        )
        return {self.recordings_dir / row["path"] for row in rows}

    # -- rows and paths --------------------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        try:
            return PurePosixPath(path.relative_to(self.recordings_dir)).as_posix()
        except ValueError:
            raise ValueError(f"{path} is not under the recordings directory {self.recordings_dir}") from None

    def _segment(self, row: sqlite3.Row) -> Segment:
        return Segment(
            id=row["id"],
            channel=row["channel"],
            start=row["start"],
            end=row["end"],
            path=self.recordings_dir / row["path"],
            bytes=row["bytes"],
            codec=row["codec"],
            has_audio=bool(row["has_audio"]),
            dropped=row["dropped"],
            state=row["state"],
            protected=bool(row["protected"]),
            pins=row["pins"],
        )


class RecordingIndexer:
    """Receives the recorder pool's events on the loop and enters closed segments and gaps.

    Segments are entered when they close, never when they open: an open file's end is unknown,
    and a crash leaves it to start-up recovery.
    """

    def __init__(self, index: RecordingIndex) -> None:
        self._index = index

    async def segment_opened(self, event: SegmentOpened) -> None:
        _LOGGER.debug("channel %s: recording into %s", event.channel, event.path)

    async def segment_closed(self, segment: SegmentInfo) -> None:
        await self._index.add_segment(segment)

    async def gap_recorded(self, gap: RecordingGap) -> None:
        await self._index.add_gap(gap)


__all__ = ["DEFAULT_MERGE_TOLERANCE", "RecordingIndex", "RecordingIndexer", "Segment", "Span", "merge_spans"]
