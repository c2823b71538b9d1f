"""ChannelRecorder and RecorderPool against the real GStreamer RTSP server (320x240).

Each test records for a few seconds, so this file takes about 55 s; the waits are bounded and
event-driven.  Where a test must let time pass (a camera off the air for N seconds, recording for
a planned span) it says so: the passing time is the experiment, not a guess at readiness.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bridges.media import RecorderPool, RecorderSettings, WriterSettings
from bridges.media.recorder import redact_url
from bridges.media.segment_path import decode_segment_path
from gateway.recordings import RecordingIndex

from .conftest import RecordedEvents
from .media_checks import assert_sound, top_level_boxes
from .tcp_relay import FreezableRelay

if TYPE_CHECKING:
    from tests.sim.conftest import StartRtspSource

pytestmark = pytest.mark.slow

FAST_RETRY = (0.2,)


def settings(segment_seconds: float, **overrides: object) -> RecorderSettings:
    return RecorderSettings(
        writer=WriterSettings(segment_seconds=segment_seconds, **overrides.pop("writer", {})),  # type: ignore[arg-type]
        backoff=FAST_RETRY,
        **overrides,  # type: ignore[arg-type]
    )


async def record_for(
    events: RecordedEvents, pool: RecorderPool, channels: list[str], seconds: float
) -> tuple[float, float]:
    """Wait until every channel has a segment open, then let ``seconds`` of recording pass.

    Returns (first segment start, wall time at the stop).
    """
    await events.wait_until(lambda: all(events.opened_for(channel) for channel in channels), "first segments")
    first = min(event.start for event in events.opened)
    await asyncio.sleep(max(0.0, first + seconds - time.time()))
    stopped = time.time()
    await pool.stop_all()
    return first, stopped


def files_on_disk(root: Path, channel: str) -> set[Path]:
    return {
        path
        for path in root.glob("*/*/*/*.mp4")
        if decode_segment_path(path.relative_to(root)).channel == channel
    }


async def test_two_channels_record_contiguous_keyframe_aligned_segments_matching_the_index(
    start_rtsp_source: StartRtspSource,
    recorded_events: RecordedEvents,
    recording_index: RecordingIndex,
    recordings_dir: Path,
) -> None:
    channels = ["cam1", "cam2"]
    source = await start_rtsp_source(channels)
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(5.0)) as pool:
        for channel in channels:
            await pool.start(channel, source.url(channel))
        await recorded_events.wait_until(
            lambda: all(len(recorded_events.closed_for(channel)) >= 2 for channel in channels),
            "two closed segments each",
        )
        _, stopped = await record_for(recorded_events, pool, channels, 12.0)

    assert recorded_events.delivery_threads == {threading.get_ident()}, (
        "events must arrive on the loop's thread"
    )
    assert recorded_events.gaps == []
    for channel in channels:
        segments = recorded_events.closed_for(channel)
        assert len(segments) >= 3  # two by time, the third closed by the stop
        span = segments[-1].end - segments[0].start
        assert sum(segment.duration for segment in segments) == pytest.approx(span, abs=1.0)
        assert span == pytest.approx(stopped - segments[0].start, abs=1.0)
        for segment in segments[:-1]:
            assert 4.99 <= segment.duration < 6.1  # cut at the first keyframe (1 s GOP) after 5 s
        for segment in segments:
            decoded = assert_sound(segment.path)
            assert decoded.video_duration == pytest.approx(segment.duration, abs=0.05)
            assert segment.codec == "h264" and not segment.has_audio and segment.dropped_packets == 0
        assert top_level_boxes(segments[-1].path)[-1][0] == "mfra", "the stop closed the last segment cleanly"
        rows = await recording_index.segments_between(channel, 0, time.time() + 60)
        assert (
            {row.path for row in rows} == files_on_disk(recordings_dir, channel) == {s.path for s in segments}
        )
        for row in rows:
            assert row.state == "complete" and row.bytes == row.path.stat().st_size
            assert row.start == decode_segment_path(row.path.relative_to(recordings_dir)).start
        assert len(await recording_index.timeline(channel, 0, time.time())) == 1


async def test_audio_is_kept_when_the_mount_has_audio(
    start_rtsp_source: StartRtspSource, recorded_events: RecordedEvents, recordings_dir: Path
) -> None:
    source = await start_rtsp_source(["cam1"], audio=True)
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(2.0)) as pool:
        await pool.start("cam1", source.url("cam1"))
        await recorded_events.wait_until(lambda: len(recorded_events.closed) >= 1, "a closed segment")
        await record_for(recorded_events, pool, ["cam1"], 4.0)

    for segment in recorded_events.closed_for("cam1"):
        decoded = assert_sound(segment.path)
        assert segment.has_audio and decoded.codecs == ("h264", "aac")
        # 16 kHz AAC: 15.6 frames a second; allow the few around the cut that went to a neighbour.
        assert decoded.audio_frames >= 15.6 * segment.duration - 4


async def test_sliced_pictures_with_duplicate_dts_are_merged_and_recording_goes_on(
    start_rtsp_source: StartRtspSource, recorded_events: RecordedEvents, recordings_dir: Path
) -> None:
    """The x264 ``slices=4`` trap: one packet per slice, all with the picture's DTS.

    Dropping the repeats would keep a quarter of every picture; they are joined back into whole
    pictures instead (counted as merged), and the muxer never sees a repeated DTS.
    """
    source = await start_rtsp_source(["cam1"])
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(2.0)) as pool:
        await pool.start("cam1", source.url("cam1"))
        await recorded_events.wait_until(lambda: len(recorded_events.opened) >= 1, "the first segment")
        await source.set_sliced("cam1", True)  # from the next keyframe on
        await recorded_events.wait_until(
            lambda: sum(s.merged_packets for s in recorded_events.closed) >= 150,
            "two seconds of sliced video",
        )
        await record_for(recorded_events, pool, ["cam1"], 0.0)

    segments = recorded_events.closed_for("cam1")
    assert recorded_events.gaps == [], "the recording was not interrupted"
    for segment in segments:
        decoded = assert_sound(segment.path)  # ffmpeg decodes every slice without a complaint
        assert decoded.video_frames == pytest.approx(25 * segment.duration, abs=1.5), "one frame per picture"
        assert segment.dropped_packets == 0
    sliced = [segment for segment in segments if segment.merged_packets]
    assert sliced and all(s.merged_packets == pytest.approx(3 * 25 * s.duration, abs=6) for s in sliced[:-1])


async def test_timestamp_jumps_are_rebased_within_the_segment(
    start_rtsp_source: StartRtspSource,
    recorded_events: RecordedEvents,
    recordings_dir: Path,
    recording_index: RecordingIndex,
) -> None:
    source = await start_rtsp_source(["cam1"], audio=True)
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(60.0)) as pool:
        await pool.start("cam1", source.url("cam1"))
        await recorded_events.wait_until(lambda: len(recorded_events.opened) >= 1, "the first segment")
        await asyncio.sleep(1.5)  # recording before the camera's clock leaps
        await source.jump("cam1", 30)
        await asyncio.sleep(1.5)
        await source.jump("cam1", -30)  # and back
        first, stopped = await record_for(recorded_events, pool, ["cam1"], 5.0)

    (segment,) = recorded_events.closed_for("cam1")
    assert segment.timestamp_jumps >= 2, segment
    assert segment.duration == pytest.approx(stopped - first, abs=1.0), "no 30 s hole, no overlap"
    decoded = assert_sound(segment.path)
    assert decoded.video_frames == pytest.approx(25 * segment.duration, abs=3)
    assert recorded_events.gaps == []
    assert len(await recording_index.timeline("cam1", 0, time.time())) == 1


async def test_a_camera_off_the_air_leaves_exactly_one_gap_and_recording_resumes(
    start_rtsp_source: StartRtspSource,
    recorded_events: RecordedEvents,
    recordings_dir: Path,
    recording_index: RecordingIndex,
) -> None:
    off_air = 3.0
    source = await start_rtsp_source(["cam1", "cam2"])
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(60.0)) as pool:
        await pool.start("cam1", source.url("cam1"))
        await pool.start("cam2", source.url("cam2"))
        await recorded_events.wait_until(lambda: len(recorded_events.opened) >= 2, "first segments")
        await asyncio.sleep(1.0)
        await source.stop_mount("cam1")
        stopped_at = time.time()
        await recorded_events.wait_until(
            lambda: len(recorded_events.closed_for("cam1")) == 1, "cam1's segment closed"
        )
        await asyncio.sleep(stopped_at + off_air - time.time())  # the camera stays off the air
        await source.start_mount("cam1")
        await recorded_events.wait_until(
            lambda: len(recorded_events.opened_for("cam1")) == 2, "cam1 recording again"
        )
        await asyncio.sleep(1.0)
        assert pool.status("cam1").attempts >= 5  # it kept knocking (0.2 s backoff)

    (gap,) = await recording_index.gaps_between("cam1", 0, time.time())
    assert off_air - 0.1 <= gap.duration <= off_air + 1.5, gap  # + reconnect (0.2 s backoff, connect)
    assert "ended" in gap.reason or "404" in gap.reason or "failed" in gap.reason, gap.reason
    before, after = recorded_events.closed_for("cam1")
    assert (gap.start, gap.end) == (before.end, after.start)
    spans = await recording_index.timeline("cam1", 0, time.time())
    assert len(spans) == 2 and spans[1].start - spans[0].end == pytest.approx(gap.duration, abs=0.01)
    assert recorded_events.gaps == [gap] and recorded_events.closed_for("cam2")[0].duration > off_air + 1
    for segment in recorded_events.closed:
        assert_sound(segment.path)


async def test_watchdog_restarts_a_stream_that_stalls_with_the_connection_open(
    start_rtsp_source: StartRtspSource, recorded_events: RecordedEvents, recordings_dir: Path
) -> None:
    """A camera that keeps the TCP connection but sends nothing: the read timeout fires."""
    watchdog = 1.5
    source = await start_rtsp_source(["cam1"])
    async with FreezableRelay(source.port) as relay:
        async with RecorderPool(
            recordings_dir, recorded_events, settings=settings(60.0, watchdog_seconds=watchdog)
        ) as pool:
            await pool.start("cam1", relay.url(source.url("cam1")))
            await recorded_events.wait_until(lambda: len(recorded_events.opened) >= 1, "the first segment")
            await asyncio.sleep(1.0)
            relay.freeze()
            frozen_at = time.time()
            await recorded_events.wait_until(
                lambda: len(recorded_events.opened) >= 2, "a new connection's segment"
            )
            resumed_after = time.time() - frozen_at
            frozen = relay.connections[0]
            await asyncio.wait_for(frozen.closed_by_client.wait(), 5.0)  # the stuck session was dropped
        assert len(relay.connections) >= 2

    (gap,) = recorded_events.gaps
    assert gap.reason.startswith("watchdog"), gap.reason
    # Detection takes the watchdog period; reopening adds FFmpeg's ~1 s probe, before the first
    # write but not in the gap: the new segment starts at the new session's first picture.
    assert watchdog <= resumed_after <= watchdog + 3.0
    assert watchdog <= gap.duration <= watchdog + 1.5, (gap.start - frozen_at, gap.end - frozen_at)
    for segment in recorded_events.closed:
        assert_sound(segment.path)


async def test_watchdog_restarts_a_stream_that_flows_but_cannot_be_written(
    start_rtsp_source: StartRtspSource, recorded_events: RecordedEvents, recordings_dir: Path
) -> None:
    """Packets keep coming but none is written: here every DTS is refused after a step back.

    With ``backward_tolerance_seconds`` raised to 100, a 50 s step back is taken for stale
    packets and everything is refused until the camera's clock catches up - 50 s away.  The
    demux-loop watchdog restarts the attempt; the new session's timestamps start afresh.
    """
    watchdog = 1.5
    source = await start_rtsp_source(["cam1"])
    recorder_settings = settings(
        60.0, watchdog_seconds=watchdog, writer={"backward_tolerance_seconds": 100.0}
    )
    async with RecorderPool(recordings_dir, recorded_events, settings=recorder_settings) as pool:
        await pool.start("cam1", source.url("cam1"))
        await recorded_events.wait_until(lambda: len(recorded_events.opened) >= 1, "the first segment")
        await source.jump("cam1", 50)
        await asyncio.sleep(1.0)
        await source.jump("cam1", -50)
        await recorded_events.wait_until(
            lambda: len(recorded_events.opened) >= 2, "recording after the restart"
        )

    (gap,) = recorded_events.gaps
    assert gap.reason == "watchdog: packets arrive but nothing was written for 1.5 s", gap.reason
    first = recorded_events.closed_for("cam1")[0]
    assert first.dropped_packets > 20
    for segment in recorded_events.closed:
        assert_sound(segment.path)


async def test_an_unreachable_camera_is_a_gap_from_start_to_stop(
    recorded_events: RecordedEvents, recordings_dir: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        unused_tcp_port = probe.getsockname()[1]
    url = f"rtsp://admin:secret@127.0.0.1:{unused_tcp_port}/cam1"
    started = time.time()
    async with RecorderPool(recordings_dir, recorded_events, settings=settings(60.0)) as pool:
        await pool.start("cam1", url)
        async with asyncio.timeout(10):  # refused connections fail at once; 0.2 s between tries
            while pool.status("cam1").attempts < 3:
                await asyncio.sleep(0.05)
        status = pool.status("cam1")
    (gap,) = recorded_events.gaps
    assert gap.start == pytest.approx(started, abs=0.5) and gap.end >= gap.start
    assert "cannot open stream" in gap.reason and "stopped" in gap.reason
    assert "secret" not in gap.reason and "secret" not in status.last_error
    assert not recordings_dir.exists() or not any(recordings_dir.rglob("*.mp4"))
    assert redact_url(url) == f"rtsp://127.0.0.1:{unused_tcp_port}/cam1"
