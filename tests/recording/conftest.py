"""Fixtures for the recording schedule, service and retention tests.

The RTSP fixtures are the simulators' own (``tests/sim/conftest.py``), re-exported here.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.recordings import RecordingIndex
from gateway.store import StateStore
from tests.sim.conftest import rtsp_clip_cache, start_rtsp_source  # noqa: F401 - fixtures

TMPFS_BYTES = 64 * 2**20


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(tmp_path / "state") as opened:
        yield opened


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path


@pytest.fixture
def index(store: StateStore, recordings_dir: Path) -> RecordingIndex:
    return RecordingIndex(store, recordings_dir)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of its own, so free space is the test's alone; unmounted afterwards."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk tests (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)
