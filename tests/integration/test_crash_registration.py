"""SIGKILL between AddUserDevice's request and its answer, then restarts: still one device each."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config
from tests.integration.conftest import CloudView, gateway_config

pytestmark = pytest.mark.slow


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Check ``predicate`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _query(config: Config, sql: str) -> list[tuple[Any, ...]]:
    path = config.gateway.state_dir / "gateway.sqlite3"
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        connection.close()


async def _start_daemon(config: Config) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--config", str(config.path), "run", stderr=asyncio.subprocess.PIPE
    )


async def _wait_for_log(daemon: asyncio.subprocess.Process, text: str, timeout: float) -> None:
    """Read the daemon's log until a line contains ``text``."""
    assert daemon.stderr is not None

    async def scan() -> None:
        assert daemon.stderr is not None
        while line := await daemon.stderr.readline():
            if text in line.decode(errors="replace"):
                return
        raise AssertionError(f"the daemon exited before logging {text!r}")

    await asyncio.wait_for(scan(), timeout)


async def test_sigkill_mid_registration_then_three_restarts(tmp_path: Path, cloud_view: CloudView, make_site: Any) -> None:
    site = await make_site()
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])
    cloud = cloud_view.cloud
    cloud.inject_fault("AddUserDevice", delay=2.0, times=1)

    daemon = await _start_daemon(config)
    try:
        await wait_until(
            lambda: bool(_query(config, "SELECT id FROM outbox WHERE kind = 'register' AND state = 'sent'")),
            60, "an AddUserDevice request in flight",
        )
        daemon.send_signal(signal.SIGKILL)
        await daemon.wait()
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
    # The delayed request still completes in the cloud after the gateway died.
    await wait_until(lambda: len(cloud.calls("AddUserDevice")) >= 1, 30, "the delayed AddUserDevice")

    for _restart in range(3):
        daemon = await _start_daemon(config)
        try:
            await _wait_for_log(daemon, "discovery round 1:", 90)
            await wait_until(
                lambda: _query(config, "SELECT COUNT(*) FROM devices WHERE cloud_device_id IS NOT NULL") == [(5,)]
                and _query(config, "SELECT COUNT(*) FROM channels WHERE cloud_channel_id IS NOT NULL") == [(8,)],
                90, "every device and channel to have cloud ids",
            )
            daemon.send_signal(signal.SIGTERM)
            assert daemon.stderr is not None
            await daemon.stderr.read()
            assert await asyncio.wait_for(daemon.wait(), 30) == 0
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()

    devices = await cloud_view.devices()
    assert len(devices) == 5
    assert sorted((d["Ip"], d["Port"]) for d in devices) == sorted((d.host, d.port) for d in site.devices)
    assert len(cloud.calls("AddUserDevice")) == 5
    assert await cloud_view.channel_count() == 8
