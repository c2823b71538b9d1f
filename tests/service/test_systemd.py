"""The systemd unit installs, verifies and scores well; the daemon speaks sd_notify from its loop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service_install import InstallPlan, install

REPO = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 2.0

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    lines = install(tmp_path, str(Path(sys.executable).with_name("ivc-gateway")), REPO)
    assert any("gateway.toml" in line for line in lines)
    return tmp_path / InstallPlan().unit


def test_install_points_execstart_at_the_installed_program(installed: Path, tmp_path: Path) -> None:
    unit = installed.read_text()
    assert f"ExecStart={Path(sys.executable).with_name('ivc-gateway')} run" in unit
    assert "Type=notify" in unit and re.search(r"^WatchdogSec=\d+", unit, re.M)
    assert (tmp_path / InstallPlan().sysusers).read_text().startswith("#")
    assert (tmp_path / InstallPlan().credentials).is_dir()
    again = install(tmp_path, "/x/ivc-gateway", REPO)
    assert any(line.startswith("kept ") for line in again), "an existing config must never be overwritten"


@needs_systemd_analyze
def test_systemd_analyze_verify_passes(installed: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(installed)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@needs_systemd_analyze
def test_security_exposure_is_low(installed: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(installed)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert found, result.stdout[-2000:] + result.stderr
    exposure = float(found[1])
    print(f"systemd-analyze security exposure={exposure}")
    assert exposure <= MAX_EXPOSURE


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(0.5)
    yield receiver, path
    receiver.close()


def _messages(receiver: socket.socket, until: float) -> Iterator[tuple[float, str]]:
    while time.monotonic() < until:
        try:
            data = receiver.recv(4096)
        except TimeoutError:
            continue
        yield time.monotonic(), data.decode()


def test_ready_status_and_watchdog_from_the_loop_and_silence_when_it_blocks(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = notify_socket
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[api]\nlisten = "127.0.0.1:0"\n'
        '[discovery]\nmulticast = false\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "IVC_GATEWAY_DEBUG_HOOKS": "1"}
    env.pop("WATCHDOG_PID", None)
    process = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(config), "run"], env=env,
                               stderr=subprocess.DEVNULL)
    try:
        seen: list[tuple[float, str]] = []
        for stamp, message in _messages(receiver, time.monotonic() + 30):
            seen.append((stamp, message))
            if sum("WATCHDOG=1" in m for _, m in seen) >= 5 and any("STATUS=0/0 devices" in m for _, m in seen):
                break
        texts = [m for _, m in seen]
        assert any("READY=1" in m for m in texts), texts
        pings = [t for t, m in seen if "WATCHDOG=1" in m]
        assert len(pings) >= 5 and max(b - a for a, b in zip(pings, pings[1:])) < 0.5

        process.send_signal(signal.SIGUSR2)  # the debug hook blocks the event loop for 10 s
        blocked_at = time.monotonic()
        late = [(t, m) for t, m in _messages(receiver, blocked_at + 3) if "WATCHDOG=1" in m and t > blocked_at + 0.3]
        assert late == [], "watchdog pings must stop while the loop is blocked"
    finally:
        process.kill()
        process.wait(timeout=30)
