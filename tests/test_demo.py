"""The README's demo command runs the whole flow, and the daemon's log never shows a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_the_flow_and_logs_no_secret(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "sim.demo", "--keep", str(keep)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("==> registered in the cloud:") == 3 and out.count("==> channel:") == 4
    assert "==> ControlDevicePTZ right via the cloud: camera pan +0.00 -> +0" in out
    assert "==> ControlDeviceSnapshot:" in out and "bytes of JPEG" in out
    assert "==> ControlRecordTimeline via the cloud:" in out
    assert "gateway daemon stopped: exit code 0" in out
    assert out.rstrip().endswith("==> done")

    log = (keep / "gateway.log").read_text()
    assert "device registered" in log
    secrets = [p.read_text().strip() for p in (keep / "secrets").iterdir()]
    assert len(secrets) == 3 and all(len(secret) >= 8 for secret in secrets)
    for secret in secrets:
        assert secret not in log, "a secret appeared in the daemon's log"
        assert secret not in out
