"""Scheduling, the recording service and the disk floor against the real GStreamer RTSP server.

Small frames (320x240) and 5 s segments.  A plan's section cannot be made short on the cloud
(the API wants sections of at least 10 minutes), so these tests drive the scheduler with a
``StaticPlanSource`` whose section starts ~2 s from now and lasts 20 s, on the real clock: the
schedule's pure function, the APScheduler jobs and the recorder are all the real ones (the cloud
plan source is tested on its own against the emulator).  Where a test lets time pass (the planned
span), the passing time is the experiment; every wait for a consequence is bounded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from bridges.media import RecorderSettings, WriterSettings
from gateway.metrics import GatewayMetrics
from gateway.recording_service import RecordingService
from gateway.recordings import RecordingIndex, Segment
from gateway.retention import DiskGuard, DiskState
from gateway.schedule import ChannelPlan, RecordingScheduler, StaticPlanSource, WeeklySchedule
from gateway.store import StateStore
from tests.media.media_checks import decode_with_pyav

if TYPE_CHECKING:
    from sim.rtsp import RtspSource
    from tests.sim.conftest import StartRtspSource

pytestmark = pytest.mark.slow

SEGMENT_SECONDS = 5.0
# The full-disk tests need several closed segments; shorter ones keep them quick.
SHORT_SEGMENT_SECONDS = 2.0
ZONE = ZoneInfo("Asia/Shanghai")
WAIT = 30.0
FAR = 10**10


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = WAIT
) -> None:
    """Check ``condition`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


def section_around(start: float, end: float) -> WeeklySchedule:
    """One weekly section from ``start`` to ``end`` (POSIX seconds, whole seconds) in ZONE."""
    first = dt.datetime.fromtimestamp(start, ZONE)
    last = dt.datetime.fromtimestamp(end, ZONE)
    return WeeklySchedule.from_wire(
        [{"DayOfWeek": first.isoweekday(), "StartTime": f"{first:%H:%M:%S}", "EndTime": f"{last:%H:%M:%S}"}]
    )


@asynccontextmanager
async def recording_service(
    index: RecordingIndex,
    source: RtspSource,
    metrics: GatewayMetrics | None = None,
    segment_seconds: float = SEGMENT_SECONDS,
) -> AsyncIterator[RecordingService]:
    async def stream_url_for(channel_id: str) -> str | None:
        return source.url(channel_id)

    settings = RecorderSettings(writer=WriterSettings(segment_seconds=segment_seconds), backoff=(0.2,))
    counters = metrics.recorder if metrics is not None else None
    async with RecordingService(
        index, stream_url_for=stream_url_for, settings=settings, counters=counters
    ) as service:
        yield service


async def all_segments(index: RecordingIndex, channel: str) -> list[Segment]:
    return await index.segments_between(channel, 0, FAR)


async def test_a_planned_section_is_recorded_for_exactly_its_span(
    start_rtsp_source: StartRtspSource, index: RecordingIndex
) -> None:
    source = await start_rtsp_source(["cam1"])
    begin = float(int(time.time()) + 3)
    end = begin + 20
    plan = ChannelPlan("cam1", section_around(begin, end))
    metrics = GatewayMetrics()
    async with (
        recording_service(index, source, metrics) as service,
        RecordingScheduler(service, StaticPlanSource([plan]), ZONE),
    ):
        assert not service.is_recording("cam1")
        await eventually(lambda: service.is_recording("cam1"), "recording to start", timeout=10)
        started = time.time()
        await eventually(lambda: not service.is_recording("cam1") and time.time() > end, "recording to stop")
        stopped = time.time()
        segments = await all_segments(index, "cam1")
        spans = await service.spans("cam1", 0, FAR)

    assert begin <= started < begin + 2, "the recorder starts when the section does"
    assert end <= stopped < end + 2, "and stops when it ends"
    assert len(spans) == 1, spans
    assert begin <= spans[0].start <= begin + SEGMENT_SECONDS
    assert end - SEGMENT_SECONDS <= spans[0].end <= end + SEGMENT_SECONDS
    assert len(segments) >= 4
    for segment in segments:
        decoded = decode_with_pyav(segment.path)
        assert decoded.video_frames > 0, segment.path
    assert metrics.recorder.bytes.value(channel="cam1") == sum(segment.bytes for segment in segments)


async def test_a_scheduler_started_mid_section_records_at_once(
    start_rtsp_source: StartRtspSource, index: RecordingIndex
) -> None:
    source = await start_rtsp_source(["cam1", "cam2"])
    now = int(time.time())
    plans = [
        ChannelPlan("cam1", section_around(now - 3600, now + 3600)),
        ChannelPlan("cam2", section_around(now + 3600, now + 7200)),  # later: not now
    ]
    async with recording_service(index, source) as service:
        async with RecordingScheduler(service, StaticPlanSource(plans), ZONE):
            assert service.wanted == {"cam1"}
            await eventually(lambda: service.is_recording("cam1"), "cam1 recording", timeout=10)
        assert not service.is_recording("cam2")
    # Closing the service closed the current segment and indexed it.
    assert await all_segments(index, "cam1")
    assert await all_segments(index, "cam2") == []


@pytest.fixture
async def disk_index(small_disk: Path, tmp_path: Path) -> AsyncIterator[tuple[RecordingIndex, StateStore]]:
    recordings = small_disk / "recordings"
    recordings.mkdir()
    async with StateStore(tmp_path / "disk-state") as store:
        yield RecordingIndex(store, recordings), store


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


async def test_delete_oldest_on_a_full_small_disk_evicts_old_segments_and_keeps_recording(
    start_rtsp_source: StartRtspSource, disk_index: tuple[RecordingIndex, StateStore]
) -> None:
    index, store = disk_index
    source = await start_rtsp_source(["cam1"])
    async with recording_service(index, source, segment_seconds=SHORT_SEGMENT_SECONDS) as service:
        await service.record("cam1")
        await eventually(lambda: _count(index, "cam1", 3), "three closed segments")
        first, second = (await all_segments(index, "cam1"))[:2]
        await index.set_protected([first.id], True)
        await index.pin([second.id])
        # The floor sits just under today's free space: what is recorded from now on must be
        # paid for by deleting older footage.
        floor = free_bytes(index.recordings_dir) - 1000
        async with DiskGuard(
            index, store, service, min_free_bytes=floor, min_free_percent=0, interval=0.2
        ) as guard:
            await eventually(lambda: guard.evicted >= 2, "two evictions", timeout=40)
            evicted_at = time.time()
            await eventually(
                lambda: _closed_after(index, "cam1", evicted_at), "a segment closed after the eviction"
            )
        assert service.is_recording("cam1")
        assert guard.state is not DiskState.FULL
    remaining = await all_segments(index, "cam1")
    assert [segment.id for segment in remaining[:2]] == [first.id, second.id]
    assert first.path.exists() and second.path.exists()
    assert all(segment.path.exists() for segment in remaining)


async def test_deny_new_on_a_full_small_disk_stops_writing_and_resumes_when_space_returns(
    start_rtsp_source: StartRtspSource,
    disk_index: tuple[RecordingIndex, StateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    index, store = disk_index
    source = await start_rtsp_source(["cam1"])
    ballast = index.recordings_dir.parent / "ballast"
    metrics = GatewayMetrics()
    async with recording_service(index, source, segment_seconds=SHORT_SEGMENT_SECONDS) as service:
        await service.record("cam1")
        await eventually(lambda: _count(index, "cam1", 1), "a closed segment")
        ballast.write_bytes(b"\0" * 4 * 2**20)
        floor = free_bytes(index.recordings_dir) + 2**20  # under the floor now
        async with DiskGuard(
            index, store, service, min_free_bytes=floor, min_free_percent=0, policy="deny_new",
            interval=0.2, registry=metrics.registry,
        ) as guard:  # fmt: skip
            await eventually(lambda: guard.state is DiskState.DENYING, "writes denied")
            assert not service.is_recording("cam1") and service.paused
            assert "ivc_gateway_recording_disk_alarm 1" in await metrics.render()
            assert any(
                record.levelname == "ERROR" and "new recording denied" in record.getMessage()
                for record in caplog.records
            )
            kept = await all_segments(index, "cam1")
            assert await service.record("cam1") is False, "no new recorder while denied"

            ballast.unlink()
            await eventually(lambda: guard.state is DiskState.OK, "space back")
            await eventually(lambda: service.is_recording("cam1"), "recording resumed")
            assert "ivc_gateway_recording_disk_alarm 0" in await metrics.render()
    assert [s.id for s in await all_segments(index, "cam1")][: len(kept)] == [s.id for s in kept]


async def _count(index: RecordingIndex, channel: str, count: int) -> bool:
    return len(await all_segments(index, channel)) >= count


async def _closed_after(index: RecordingIndex, channel: str, moment: float) -> bool:
    return any(segment.end > moment for segment in await all_segments(index, channel))


class ChangingPlans:
    """A plan source the test edits between refreshes (the cloud's plans changing)."""

    def __init__(self, plans: dict[str, ChannelPlan]) -> None:
        self.plans = plans

    async def fetch(self) -> dict[str, ChannelPlan]:
        return dict(self.plans)


async def test_a_channel_not_yet_discovered_is_retried_and_one_leaving_its_plan_stops(
    start_rtsp_source: StartRtspSource, index: RecordingIndex
) -> None:
    source = await start_rtsp_source(["cam1"])
    discovered: set[str] = set()

    async def stream_url_for(channel_id: str) -> str | None:
        return source.url(channel_id) if channel_id in discovered else None

    plans = ChangingPlans({"cam1": ChannelPlan("cam1", WeeklySchedule.always())})
    settings = RecorderSettings(writer=WriterSettings(segment_seconds=SEGMENT_SECONDS), backoff=(0.2,))
    service = RecordingService(index, stream_url_for=stream_url_for, settings=settings)
    async with service, RecordingScheduler(service, plans, ZONE, retry_seconds=0.2) as scheduler:
        assert service.wanted == {"cam1"} and not service.is_recording("cam1")
        discovered.add("cam1")
        await eventually(lambda: service.is_recording("cam1"), "the retry to start it", timeout=10)
        plans.plans = {}
        await scheduler.refresh()
        assert service.wanted == frozenset() and not service.is_recording("cam1")
        assert scheduler.plans == {}
