"""Getting rid of recordings: by age (:class:`RetentionSweeper`) and for space (:class:`DiskGuard`).

Two components, as in Frigate's cleanup and storage maintainers, each with its own loop that
waits on a stop event with a timeout (so shutdown is prompt) and logs a failed pass without
ending.  Both share one eviction step, :func:`evict_segments`: unlink the files off the loop
(a file already gone is fine: the disk is the truth), then delete their index rows in batches.
Neither ever deletes a segment that is ``protected`` or ``pinned`` (an unfinished export or
upload is reading it): those rows are excluded by the queries themselves.

Age: a channel keeps its footage for its record plan's lifecycle (hot + cold days, see
``gateway.schedule.life_cycle_days``), else ``[recording] retention_days``.

Space: the floor is the *larger* of ``min_free_bytes`` and ``min_free_percent`` of the disk.
Under it, ``delete_oldest`` evicts the oldest evictable segments of any channel until the floor
is met again; ``deny_new`` evicts nothing, pauses recording and raises an alarm (an error log
line, the ``ivc_gateway_recording_disk_alarm`` gauge and :attr:`DiskGuard.state`), and resumes
recording once free space is back above the floor.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, Self

from .metrics import MetricsRegistry
from .recordings import RecordingIndex, Segment
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

DAY_SECONDS: Final = 86400
DELETE_BATCH: Final = 200
EVICTION_BATCH: Final = 50
_EVICTABLE = "protected = 0 AND pins = 0"
_COLUMNS = "id, channel, start, end, path, bytes, codec, has_audio, dropped, state, protected, pins"


class FullDiskPolicy(enum.StrEnum):
    DELETE_OLDEST = "delete_oldest"
    DENY_NEW = "deny_new"


class DiskState(enum.StrEnum):
    """What the disk guard last found (shown by status pages)."""

    OK = "ok"
    EVICTING = "evicting"  # delete_oldest: under the floor, old footage being deleted
    FULL = "full"  # under the floor and nothing left that may be deleted
    DENYING = "denying"  # deny_new: recording paused until space returns


@dataclass(frozen=True, slots=True)
class DiskUsage:
    total: int
    free: int


class WritePause(Protocol):
    """The recording side of ``deny_new`` (``gateway.recording_service.RecordingService``)."""

    async def pause(self, reason: str) -> None: ...

    async def resume(self) -> list[str]: ...


def disk_usage(path: Path) -> DiskUsage:
    """Total and available bytes of the file system holding ``path`` (blocking: off the loop)."""
    stats = os.statvfs(path)
    return DiskUsage(stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize)


def free_space_floor(total: int, min_free_bytes: int, min_free_percent: float) -> int:
    """The free-space floor: the larger of the absolute and the relative limit."""
    return max(int(min_free_bytes), int(total * min_free_percent / 100))


def unlink_files(paths: Sequence[Path]) -> set[Path]:
    """Remove files (blocking: off the loop); returns those that could not be removed.

    A file already gone counts as removed: the disk is the truth and the row is stale anyway.
    """
    failed: set[Path] = set()
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            _LOGGER.exception("cannot delete recording %s", path)
            failed.add(path)
    return failed


async def evict_segments(store: StateStore, segments: Sequence[Segment]) -> int:
    """Unlink segment files, then delete their rows in batches; returns rows deleted.

    A file that cannot be removed (permissions, I/O error) keeps its row, so the index never
    forgets footage that is still on disk.
    """
    failed = await asyncio.to_thread(unlink_files, [segment.path for segment in segments])
    deletable = [segment.id for segment in segments if segment.path not in failed]
    for first in range(0, len(deletable), DELETE_BATCH):
        batch = [(segment_id,) for segment_id in deletable[first : first + DELETE_BATCH]]

        def delete(connection: sqlite3.Connection, rows: Sequence[tuple[int]] = batch) -> None:
            connection.executemany("DELETE FROM segments WHERE id = ?", rows)

        await store.transaction(delete)
    return len(deletable)


def segment_from_row(recordings_dir: Path, row: sqlite3.Row) -> Segment:
    """A ``segments`` row (selected with ``_COLUMNS``) as the index's ``Segment``."""
    return Segment(
        id=row["id"],
        channel=row["channel"],
        start=row["start"],
        end=row["end"],
        path=recordings_dir / row["path"],
        bytes=row["bytes"],
        codec=row["codec"],
        has_audio=bool(row["has_audio"]),
        dropped=row["dropped"],
        state=row["state"],
        protected=bool(row["protected"]),
        pins=row["pins"],
    )


class _Loop(abc.ABC):
    """A pass repeated every ``interval`` until stopped; waits on the stop event, not sleep."""

    def __init__(self, name: str, interval: float) -> None:
        self._name = name
        self._interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self._passed = asyncio.Condition()

    @abc.abstractmethod
    async def run_pass(self) -> None:
        """One sweep; a subclass says what it does."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        _LOGGER.info("%s stopped", self._name)

    async def wait_for_passes(self, count: int) -> None:
        """Wait until ``count`` passes have run since start (tests bound this with a timeout)."""
        async with self._passed:
            await self._passed.wait_for(lambda: self.passes >= count)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_pass()
            except Exception:  # a failed pass is logged; the next one may work
                _LOGGER.exception("%s pass failed", self._name)
            self.passes += 1
            async with self._passed:
                self._passed.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)


class RetentionSweeper(_Loop):
    """Deletes segments older than their channel's retention."""

    def __init__(
        self,
        index: RecordingIndex,
        store: StateStore,
        *,
        default_days: int,
        plan_days: Callable[[str], int | None] = lambda channel_id: None,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("retention sweeper", interval)
        self._index = index
        self._store = store
        self._default_days = default_days
        self._plan_days = plan_days
        self._clock = clock
        self.deleted = 0

    def retention_days(self, channel_id: str) -> int:
        return self._plan_days(channel_id) or self._default_days

    async def run_pass(self) -> None:
        now = self._clock()
        rows = await self._store.fetchall("SELECT DISTINCT channel FROM segments")
        for row in rows:
            channel_id = row["channel"]
            cutoff = now - self.retention_days(channel_id) * DAY_SECONDS
            expired = await self._expired(channel_id, cutoff)
            if expired:
                deleted = await evict_segments(self._store, expired)
                self.deleted += deleted
                _LOGGER.info(
                    "channel %s: %d segment(s) older than %d day(s) deleted",
                    channel_id,
                    deleted,
                    self.retention_days(channel_id),
                )

    async def _expired(self, channel_id: str, cutoff: float) -> list[Segment]:
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM segments WHERE channel = ? AND end < ? AND {_EVICTABLE} ORDER BY start",
            (channel_id, cutoff),
        )
        return [segment_from_row(self._index.recordings_dir, row) for row in rows]


class DiskGuard(_Loop):
    """Keeps free space on the recording disk above the floor, by policy."""

    def __init__(
        self,
        index: RecordingIndex,
        store: StateStore,
        recording: WritePause,
        *,
        min_free_bytes: int,
        min_free_percent: float,
        policy: FullDiskPolicy | str = FullDiskPolicy.DELETE_OLDEST,
        interval: float = 30.0,
        registry: MetricsRegistry | None = None,
        usage: Callable[[Path], DiskUsage] = disk_usage,
    ) -> None:
        super().__init__("disk guard", interval)
        self._index = index
        self._store = store
        self._recording = recording
        self._min_free_bytes = min_free_bytes
        self._min_free_percent = min_free_percent
        self.policy = FullDiskPolicy(policy)
        self._usage = usage
        self.state = DiskState.OK
        self.evicted = 0
        self._alarm = (
            registry.gauge(
                "ivc_gateway_recording_disk_alarm",
                "1 while the recording disk is under its free-space floor.",
            )
            if registry is not None
            else None
        )
        self._evicted_counter = (
            registry.counter(
                "ivc_gateway_recording_evicted_total", "Segments deleted to keep the disk floor."
            )
            if registry is not None
            else None
        )

    async def measure(self) -> tuple[DiskUsage, int]:
        """Current usage of the recording disk and the floor that applies to it."""
        usage = await asyncio.to_thread(self._usage, self._index.recordings_dir)
        return usage, free_space_floor(usage.total, self._min_free_bytes, self._min_free_percent)

    async def run_pass(self) -> None:
        usage, floor = await self.measure()
        if usage.free >= floor:
            await self._space_is_back(usage, floor)
        elif self.policy is FullDiskPolicy.DENY_NEW:
            await self._deny(usage, floor)
        else:
            await self._evict_until(floor, usage)

    async def _space_is_back(self, usage: DiskUsage, floor: int) -> None:
        if self.state is not DiskState.OK:
            restarted = await self._recording.resume() if self.state is DiskState.DENYING else []
            _LOGGER.warning(
                "recording disk back above its floor (%d bytes free, floor %d); %d channel(s) resumed",
                usage.free,
                floor,
                len(restarted),
            )
        self._set_state(DiskState.OK)

    async def _deny(self, usage: DiskUsage, floor: int) -> None:
        if self.state is not DiskState.DENYING:
            _LOGGER.error(
                "recording disk under its floor (%d bytes free, floor %d): new recording denied",
                usage.free,
                floor,
            )
            await self._recording.pause(f"disk under its free-space floor ({usage.free} < {floor} bytes)")
        self._set_state(DiskState.DENYING)

    async def _evict_until(self, floor: int, usage: DiskUsage) -> None:
        """Delete the oldest evictable segments, a batch at a time, until the floor is met."""
        self._set_state(DiskState.EVICTING)
        while usage.free < floor:
            oldest = await self._oldest_evictable(EVICTION_BATCH)
            if not oldest:
                if self.state is not DiskState.FULL:
                    _LOGGER.error(
                        "recording disk under its floor (%d bytes free, floor %d) and nothing may be deleted",
                        usage.free,
                        floor,
                    )
                self._set_state(DiskState.FULL)
                return
            needed = floor - usage.free
            chosen = _enough(oldest, needed)
            deleted = await evict_segments(self._store, chosen)
            self.evicted += deleted
            if self._evicted_counter is not None:
                self._evicted_counter.inc(deleted)
            _LOGGER.warning(
                "recording disk under its floor: %d oldest segment(s) deleted, from %s",
                deleted,
                chosen[0].channel,
            )
            usage, floor = await self.measure()
        self._set_state(DiskState.OK)

    async def _oldest_evictable(self, limit: int) -> list[Segment]:
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM segments WHERE {_EVICTABLE} ORDER BY start LIMIT ?", (limit,)
        )
        return [segment_from_row(self._index.recordings_dir, row) for row in rows]

    def _set_state(self, state: DiskState) -> None:
        self.state = state
        if self._alarm is not None:
            self._alarm.set(0 if state in (DiskState.OK, DiskState.EVICTING) else 1)


def _enough(oldest: Sequence[Segment], needed: int) -> list[Segment]:
    """The shortest prefix of ``oldest`` whose bytes cover ``needed`` (at least one segment)."""
    chosen: list[Segment] = []
    total = 0
    for segment in oldest:
        chosen.append(segment)
        total += segment.bytes
        if total >= needed:
            break
    return chosen


__all__ = [
    "DiskGuard",
    "DiskState",
    "DiskUsage",
    "FullDiskPolicy",
    "RetentionSweeper",
    "WritePause",
    "disk_usage",
    "evict_segments",
    "free_space_floor",
    "segment_from_row",
    "unlink_files",
]
