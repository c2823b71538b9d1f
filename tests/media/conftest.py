"""Fixtures for the recorder tests: the simulated RTSP cameras, an index, and an event recorder.

The RTSP fixtures are the simulators' own (``tests/sim/conftest.py``), re-exported here.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridges.media.events import RecordingGap, SegmentInfo, SegmentOpened
from gateway.recordings import RecordingIndex, RecordingIndexer
from gateway.store import StateStore
from tests.sim.conftest import rtsp_clip_cache, start_rtsp_source  # noqa: F401 - fixtures

EVENT_TIMEOUT = 20.0
SYNTHETIC_SECONDS = 6
SYNTHETIC_FPS = 25
SYNTHETIC_GOP = 12


class RecordedEvents:
    """``RecordingEvents`` that indexes like the daemon does and lets a test await what happened.

    Also notes on which thread each event arrived: the pool must deliver them on the loop's.
    """

    def __init__(self, index: RecordingIndex) -> None:
        self._indexer = RecordingIndexer(index)
        self.opened: list[SegmentOpened] = []
        self.closed: list[SegmentInfo] = []
        self.gaps: list[RecordingGap] = []
        self.delivery_threads: set[int] = set()
        self._changed = asyncio.Condition()

    async def segment_opened(self, event: SegmentOpened) -> None:
        await self._note(self.opened, event)

    async def segment_closed(self, segment: SegmentInfo) -> None:
        await self._indexer.segment_closed(segment)
        await self._note(self.closed, segment)

    async def gap_recorded(self, gap: RecordingGap) -> None:
        await self._indexer.gap_recorded(gap)
        await self._note(self.gaps, gap)

    async def _note(self, events: list, event: object) -> None:  # type: ignore[type-arg]
        self.delivery_threads.add(threading.get_ident())
        async with self._changed:
            events.append(event)
            self._changed.notify_all()

    async def wait_until(
        self, predicate: Callable[[], bool], what: str, timeout: float = EVENT_TIMEOUT
    ) -> None:
        """Wait (bounded) until ``predicate()`` holds after some event."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; opened={len(self.opened)} "
                f"closed={len(self.closed)} gaps={self.gaps}"
            ) from None

    def opened_for(self, channel: str) -> list[SegmentOpened]:
        return [event for event in self.opened if event.channel == channel]

    def closed_for(self, channel: str) -> list[SegmentInfo]:
        return sorted((event for event in self.closed if event.channel == channel), key=lambda s: s.start)


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
async def recording_index(tmp_path: Path, recordings_dir: Path) -> AsyncIterator[RecordingIndex]:
    async with StateStore(tmp_path / "state") as store:
        yield RecordingIndex(store, recordings_dir)


@pytest.fixture
def recorded_events(recording_index: RecordingIndex) -> RecordedEvents:
    return RecordedEvents(recording_index)


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 160x120 25 fps H.264 (a keyframe every 12 frames, no B-frames) and MP3, in MPEG-TS.

    MPEG-TS has the 90 kHz clock RTSP has; made by the ffmpeg binary, independent of our code.
    (MP3 because AAC in MPEG-TS is ADTS-framed, which RTSP cameras do not send and MP4 refuses.)
    """
    path = tmp_path_factory.mktemp("synthetic") / "clip.ts"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=160x120:rate={SYNTHETIC_FPS}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
            "-t", str(SYNTHETIC_SECONDS),
            "-c:v", "libx264", "-preset", "veryfast", "-g", str(SYNTHETIC_GOP), "-bf", "0", "-pix_fmt", "yuv420p",
            "-c:a", "libmp3lame", "-b:a", "32k", "-ac", "1",
            "-f", "mpegts", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path
