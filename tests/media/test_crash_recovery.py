"""SIGKILL the recording process mid-segment, five times, and recover after each kill.

The child (``recorder_child.py``) records four simulated cameras with 1 s segments into a real
index, as the daemon does.  After each kill, start-up recovery must leave every indexed segment
playable, salvage the segment each channel had open, and lose at most one second per channel:
the newest indexed moment must be within 1 s of the kill.  A final SIGTERM shows the clean path
leaves nothing to recover.  About 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bridges.media.recovery import recover
from bridges.media.segment_path import decode_segment_path
from gateway.recordings import RecordingIndex
from gateway.store import StateStore

from .media_checks import decode_with_pyav, ffprobe_complaints

if TYPE_CHECKING:
    from tests.sim.conftest import StartRtspSource

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("recorder_child.py")
CHANNELS = ["cam1", "cam2", "cam3", "cam4"]
KILLS = 5
MAX_LOSS_SECONDS = 1.0
# An open segment younger than this may not have a complete fragment yet (0.5 s fragments, plus
# the 0.1 s read batch): then nothing of it is playable and recovery moves it aside.
YOUNGEST_SALVAGEABLE = 0.75
EVENT_TIMEOUT = 30.0


@dataclass
class ChildRecorder:
    """The recording process and what it reported on stdout."""

    process: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)

    async def wait_until(self, done: Any, what: str) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(EVENT_TIMEOUT):
            while not done(self):
                line = await self.process.stdout.readline()
                assert line, f"the recording process exited ({self.process.returncode}) before {what}"
                self.events.append(json.loads(line))

    def of(self, kind: str, channel: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == kind and event["channel"] == channel]

    def has_closed_a_segment_everywhere(self) -> bool:
        return all(self.of("closed", channel) and self.of("opened", channel) for channel in CHANNELS)


async def spawn(recordings: Path, state: Path, urls: dict[str, str], stderr_path: Path) -> ChildRecorder:
    with stderr_path.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            "--recordings", str(recordings),
            "--state", str(state),
            "--segment-seconds", "1",
            *(f"{channel}={url}" for channel, url in urls.items()),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )  # fmt: skip
    return ChildRecorder(process)


def newest_files(recordings: Path) -> dict[str, tuple[Path, float]]:
    """Each channel's newest segment file (by its name): the one open when the process died."""
    newest: dict[str, tuple[Path, float]] = {}
    for path in recordings.glob("*/*/*/*.mp4"):
        name = decode_segment_path(path.relative_to(recordings))
        if name.channel not in newest or name.start > newest[name.channel][1]:
            newest[name.channel] = (path, name.start)
    return newest


async def check_new_segments(index: RecordingIndex, since: float, checked: set[Path]) -> None:
    """Every segment indexed since ``since`` is a sound file (probe + full decode)."""
    for channel in CHANNELS:
        for segment in await index.segments_between(channel, since - 5, time.time() + 5):
            if segment.path in checked:
                continue
            checked.add(segment.path)
            assert ffprobe_complaints(segment.path) == "", segment
            decoded = await asyncio.to_thread(decode_with_pyav, segment.path)
            assert decoded.first_video_packet_keyframe and decoded.video_frames > 0, segment
            assert decoded.video_duration == pytest.approx(segment.duration, abs=0.1), segment


async def test_sigkill_mid_segment_loses_at_most_a_second_per_channel(
    start_rtsp_source: StartRtspSource, tmp_path: Path
) -> None:
    source = await start_rtsp_source(CHANNELS)
    urls = {channel: source.url(channel) for channel in CHANNELS}
    recordings, state, stderr_path = tmp_path / "recordings", tmp_path / "state", tmp_path / "child.stderr"
    checked: set[Path] = set()
    losses: list[float] = []
    for cycle in range(KILLS):
        cycle_started = time.time()
        child = await spawn(recordings, state, urls, stderr_path)
        try:
            await child.wait_until(
                ChildRecorder.has_closed_a_segment_everywhere, "a closed segment per channel"
            )
            await asyncio.sleep(0.1 + 0.19 * cycle)  # strike at a different point of the segments each time
            killed_at = time.time()
            child.process.send_signal(signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            await child.process.wait()
        assert child.process.returncode == -signal.SIGKILL, stderr_path.read_text()
        open_files = newest_files(recordings)

        async with StateStore(state) as store:
            index = RecordingIndex(store, recordings)
            report = await recover(recordings, index)
            recovered = {segment.path for segment in report.recovered}
            quarantined = {item.original for item in report.quarantined}
            for channel in CHANNELS:
                open_path, open_start = open_files[channel]
                if open_path not in recovered:
                    assert open_path in quarantined, f"{channel}: the open segment vanished"
                    assert killed_at - open_start < YOUNGEST_SALVAGEABLE, report
                latest = await index.latest_segment(channel)
                assert latest is not None
                loss = killed_at - latest[1]
                losses.append(loss)
                assert -0.2 <= loss <= MAX_LOSS_SECONDS, f"cycle {cycle} {channel}: lost {loss:.3f} s"
            await check_new_segments(index, cycle_started, checked)
    assert len(checked) >= KILLS * len(CHANNELS)
    print(f"loss per channel per kill: max {max(losses):.3f} s, mean {sum(losses) / len(losses):.3f} s")


async def test_sigterm_closes_every_segment_and_leaves_nothing_to_recover(
    start_rtsp_source: StartRtspSource, tmp_path: Path
) -> None:
    source = await start_rtsp_source(CHANNELS[:2])
    urls = {channel: source.url(channel) for channel in CHANNELS[:2]}
    recordings, state, stderr_path = tmp_path / "recordings", tmp_path / "state", tmp_path / "child.stderr"
    child = await spawn(recordings, state, urls, stderr_path)
    try:
        await child.wait_until(
            lambda c: all(c.of("closed", channel) for channel in urls), "a closed segment per channel"
        )
        child.process.send_signal(signal.SIGTERM)
        await child.wait_until(
            lambda c: any(event["event"] == "stopped" for event in c.events), "a clean stop"
        )
        assert await asyncio.wait_for(child.process.wait(), 15) == 0, stderr_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        await child.process.wait()

    async with StateStore(state) as store:
        index = RecordingIndex(store, recordings)
        report = await recover(recordings, index)
        assert report.recovered == [] and report.quarantined == [] and report.gaps == []
        for channel in urls:
            rows = await index.segments_between(channel, 0, time.time() + 5)
            assert {row.path for row in rows} == {
                Path(event["detail"]) for event in child.of("opened", channel)
            }
            assert all(row.state == "complete" for row in rows)
