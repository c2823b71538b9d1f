"""The README's demo command runs to the end on a fresh state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_to_completion() -> None:
    result = subprocess.run([sys.executable, "-m", "sim.demo"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "==> AddUserDevice: DeviceId" in result.stdout
    assert result.stdout.rstrip().endswith("==> done")
