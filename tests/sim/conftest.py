"""Fixtures for tests that run the project's simulators (only RTSP ones so far)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from sim.rtsp import SERVER_SCRIPT, RtspSource

StartRtspSource = Callable[..., Awaitable[RtspSource]]


@pytest.fixture(scope="session")
def rtsp_clip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One encoded-clip cache for the whole run: each clip is encoded once, then reused."""
    return tmp_path_factory.mktemp("rtsp-clips")


@pytest.fixture
async def start_rtsp_source(rtsp_clip_cache: Path) -> AsyncIterator[StartRtspSource]:
    """Start simulated RTSP cameras (small frames by default); all are stopped and checked gone.

    Usage: ``source = await start_rtsp_source(["cam1", "cam2"], audio=True)``.
    """
    sources: list[RtspSource] = []

    async def start(mounts: Sequence[str], **options: Any) -> RtspSource:
        source = RtspSource(mounts, **{"cache_dir": rtsp_clip_cache, "width": 320, "height": 240, **options})
        await source.start()
        sources.append(source)
        return source

    yield start
    for source in sources:
        await source.close()
    assert [source.returncode for source in sources] == [0] * len(sources), "server did not exit cleanly"
    assert rtsp_server_children() == [], "an RTSP server process outlived its test"


def rtsp_server_children() -> list[int]:
    """PIDs of gst_server.py processes whose parent is this test process (read from /proc)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue  # exited while we looked
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == me and str(SERVER_SCRIPT).encode() in cmdline:
            found.append(int(entry.name))
    return found
