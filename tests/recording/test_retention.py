"""Age retention and the disk floor's eviction logic over a real index, with the clock and the
disk's usage injected (the full-disk behaviour on a real small file system is in
``test_recording_media.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridges.media import SegmentInfo, SegmentName
from gateway.metrics import MetricsRegistry
from gateway.recordings import RecordingIndex
from gateway.retention import DiskGuard, DiskState, DiskUsage, RetentionSweeper, free_space_floor
from gateway.store import StateStore

DAY = 86400.0
NOW = 1_800_000_000.0
SEGMENT_BYTES = 1000


async def add_file_segment(index: RecordingIndex, channel: str, start: float, length: float = 60.0) -> Path:
    """A segment file of ``SEGMENT_BYTES`` on disk, entered in the index; returns its path."""
    path = index.recordings_dir / SegmentName.at(channel, start).relative_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * SEGMENT_BYTES)
    await index.add_segment(SegmentInfo(channel, path, start, start + length, SEGMENT_BYTES, "h264", False))
    return path


async def segment_ids(index: RecordingIndex, channel: str, path: Path) -> list[int]:
    return [
        segment.id for segment in await index.segments_between(channel, 0, 2 * NOW) if segment.path == path
    ]


async def starts(index: RecordingIndex, channel: str) -> list[float]:
    return [segment.start for segment in await index.segments_between(channel, 0, 2 * NOW)]


async def test_segments_older_than_the_channels_retention_go_and_kept_ones_stay(
    index: RecordingIndex, store: StateStore
) -> None:
    old = await add_file_segment(index, "cam1", NOW - 40 * DAY)
    protected = await add_file_segment(index, "cam1", NOW - 39 * DAY)
    pinned = await add_file_segment(index, "cam1", NOW - 38 * DAY)
    already_gone = await add_file_segment(index, "cam1", NOW - 37 * DAY)
    young = await add_file_segment(index, "cam1", NOW - 29 * DAY)
    planned_old = await add_file_segment(index, "cam2", NOW - 8 * DAY)
    planned_young = await add_file_segment(index, "cam2", NOW - 6 * DAY)
    await index.set_protected(await segment_ids(index, "cam1", protected), True)
    await index.pin(await segment_ids(index, "cam1", pinned))
    already_gone.unlink()

    sweeper = RetentionSweeper(index, store, default_days=30, plan_days={"cam2": 7}.get, clock=lambda: NOW)
    await sweeper.run_pass()

    assert await starts(index, "cam1") == [NOW - 39 * DAY, NOW - 38 * DAY, NOW - 29 * DAY]
    assert await starts(index, "cam2") == [NOW - 6 * DAY]
    assert not old.exists() and not planned_old.exists()
    assert protected.exists() and pinned.exists() and young.exists() and planned_young.exists()
    assert sweeper.deleted == 3


async def test_the_sweeper_loop_runs_passes_until_stopped(index: RecordingIndex, store: StateStore) -> None:
    clock = [NOW]
    await add_file_segment(index, "cam1", NOW - 2 * DAY)
    async with RetentionSweeper(
        index, store, default_days=1, interval=0.05, clock=lambda: clock[0]
    ) as sweeper:
        await sweeper.wait_for_passes(2)
    assert await starts(index, "cam1") == []


def test_the_floor_is_the_larger_of_bytes_and_percent() -> None:
    assert free_space_floor(1000, 100, 5.0) == 100
    assert free_space_floor(1000, 10, 5.0) == 50


class FakeDisk:
    """Usage derived from the files in the recordings directory: free = capacity - their bytes."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity

    def __call__(self, path: Path) -> DiskUsage:
        used = sum(file.stat().st_size for file in self.root.rglob("*.mp4"))
        return DiskUsage(total=self.capacity, free=self.capacity - used)


class Pauses:
    """The recording side of ``deny_new``: records what it was told."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.resumed = 0

    async def pause(self, reason: str) -> None:
        self.reasons.append(reason)

    async def resume(self) -> list[str]:
        self.resumed += 1
        return []


async def test_delete_oldest_evicts_oldest_first_across_channels_sparing_protected_and_pinned(
    index: RecordingIndex, store: StateStore, recordings_dir: Path
) -> None:
    protected = await add_file_segment(index, "cam1", NOW - 10)
    pinned = await add_file_segment(index, "cam2", NOW - 9)
    for offset in range(8, 0, -1):
        await add_file_segment(index, "cam1" if offset % 2 else "cam2", NOW - offset)
    await index.set_protected(await segment_ids(index, "cam1", protected), True)
    await index.pin(await segment_ids(index, "cam2", pinned))
    # 10 files of 1000 bytes on a 13000-byte disk with a 6000-byte floor: 3 must go.
    disk = FakeDisk(recordings_dir, 13 * SEGMENT_BYTES)
    registry = MetricsRegistry()
    guard = DiskGuard(
        index,
        store,
        Pauses(),
        min_free_bytes=6 * SEGMENT_BYTES,
        min_free_percent=0,
        usage=disk,
        registry=registry,
    )
    await guard.run_pass()

    remaining = sorted(await starts(index, "cam1") + await starts(index, "cam2"))
    assert remaining == [NOW - 10, NOW - 9] + [NOW - offset for offset in range(5, 0, -1)]
    assert protected.exists() and pinned.exists()
    assert guard.state is DiskState.OK and guard.evicted == 3


async def test_delete_oldest_with_nothing_evictable_raises_the_alarm(
    index: RecordingIndex, store: StateStore, recordings_dir: Path
) -> None:
    kept = await add_file_segment(index, "cam1", NOW - 10)
    await index.set_protected(await segment_ids(index, "cam1", kept), True)
    registry = MetricsRegistry()
    guard = DiskGuard(
        index, store, Pauses(), min_free_bytes=SEGMENT_BYTES, min_free_percent=0,
        usage=FakeDisk(recordings_dir, SEGMENT_BYTES), registry=registry,
    )  # fmt: skip
    await guard.run_pass()
    assert guard.state is DiskState.FULL and kept.exists()
    assert "ivc_gateway_recording_disk_alarm 1" in await registry.render()


async def test_deny_new_pauses_without_deleting_and_resumes_when_space_returns(
    index: RecordingIndex, store: StateStore, recordings_dir: Path
) -> None:
    first = await add_file_segment(index, "cam1", NOW - 10)
    await add_file_segment(index, "cam1", NOW - 9)
    disk = FakeDisk(recordings_dir, 3 * SEGMENT_BYTES)
    pauses = Pauses()
    registry = MetricsRegistry()
    guard = DiskGuard(
        index, store, pauses, min_free_bytes=2 * SEGMENT_BYTES, min_free_percent=0, policy="deny_new",
        usage=disk, registry=registry,
    )  # fmt: skip
    await guard.run_pass()
    await guard.run_pass()
    assert guard.state is DiskState.DENYING and len(pauses.reasons) == 1
    assert len(await starts(index, "cam1")) == 2
    assert "ivc_gateway_recording_disk_alarm 1" in await registry.render()

    disk.capacity = 10 * SEGMENT_BYTES
    await guard.run_pass()
    assert guard.state is DiskState.OK and pauses.resumed == 1 and first.exists()
    assert "ivc_gateway_recording_disk_alarm 0" in await registry.render()


async def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    index: RecordingIndex, store: StateStore, recordings_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def flaky_usage(path: Path) -> DiskUsage:
        calls.append(path)
        if len(calls) == 1:
            raise OSError("statvfs failed")
        return DiskUsage(total=100, free=100)

    async with DiskGuard(
        index, store, Pauses(), min_free_bytes=10, min_free_percent=0, interval=0.01, usage=flaky_usage
    ) as guard:
        await asyncio.wait_for(guard.wait_for_passes(2), 5)
    assert guard.state is DiskState.OK
    assert any("disk guard pass failed" in record.getMessage() for record in caplog.records)
