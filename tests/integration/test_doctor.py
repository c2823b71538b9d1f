"""``ivc-gateway doctor`` against the emulator and a simulated site: passes, and explains failures."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.doctor import CheckResult, Verdict, check_clock_sync, run_checks
from tests.integration.conftest import CloudView, gateway_config

pytestmark = pytest.mark.slow


def _synced() -> CheckResult:
    return CheckResult("clock sync", Verdict.PASS, "NTP synchronised (test)")


async def test_healthy_site_passes_every_check(tmp_path: Path, cloud_view: CloudView, make_site: Any) -> None:
    site = await make_site(cameras=2, nvrs=0)
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])
    results = await run_checks(config, clock_check=_synced)
    verdicts = {r.name: r.verdict for r in results}
    assert all(v is Verdict.PASS for v in verdicts.values()), [r.render() for r in results]
    assert {"config", "disk space", "disk write speed", "cloud reachable", "clock vs cloud", "cloud credentials"} <= set(verdicts)
    assert sum(name.startswith("camera ") for name in verdicts) == 2


async def test_failures_say_what_to_fix(tmp_path: Path, cloud_view: CloudView, make_site: Any) -> None:
    site = await make_site(cameras=1, nvrs=0)
    stranger = await make_site(cameras=1, nvrs=0, password="other")
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network, stranger.network])
    text = config.path.read_text().replace('secret_key = "integration-secret-key"', 'secret_key = "wrong"')
    config.path.write_text(text)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--config", str(config.path), "doctor", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    report = out.decode()
    assert process.returncode == 1
    assert "FAIL  cloud credentials: AuthFailure.SignatureFailure" in report
    assert "fix: check cloud.secret_id and cloud.secret_key" in report
    bad = stranger.devices[0]
    assert f"FAIL  camera {bad.host}:{bad.port}: auth_failed" in report and "user name or password is wrong" in report
    good = site.devices[0]
    assert f"PASS  camera {good.host}:{good.port}: SimVision SV-IPC-200, 1 channel(s), login OK" in report


def test_clock_check_reads_timedatectl() -> None:
    assert check_clock_sync(lambda command: "yes\n").verdict is Verdict.PASS
    failed = check_clock_sync(lambda command: "no\n")
    assert failed.verdict is Verdict.FAIL and "timedatectl set-ntp true" in failed.fix

    def missing(command: list[str]) -> str:
        raise FileNotFoundError(command[0])

    assert check_clock_sync(missing).verdict is Verdict.WARN
