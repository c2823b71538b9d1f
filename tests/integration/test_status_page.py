"""The technician's views of a running gateway: the status page in real headless Chromium, and
``ivc-gateway status``."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import LocalApiSdk
from tests.integration.conftest import CloudView, running_gateway
from tests.integration.test_device_control import channels_by_name, control_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _chromium(tmp_path: Path, *arguments: str) -> str:
    assert CHROMIUM, "Debian's chromium package is needed (make test installs it)"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_status_page_in_headless_chromium_and_the_status_command(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=2, nvrs=1, nvr_channels=2)
    config = control_config(tmp_path, cloud_view.cloud, site)
    async with running_gateway(config) as gateway:
        await asyncio.wait_for(gateway.wait_for_rounds(1), 60)
        channels = await channels_by_name(gateway, cloud=False)
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        await sdk.call("ControlDeviceSnapshot", ChannelId=channels["cam1"], SnapNum=1, Interval=1)
        url = f"http://127.0.0.1:{gateway.api_port}/status"

        dom = await _chromium(tmp_path, "--dump-dom", url)
        records = await gateway.inventory.all()
        for record in records:
            assert record.name in dom and f"{record.host}:{record.port}" in dom
        assert dom.count('class="channel"') == 4
        assert 'alt="snapshot"' in dom and "cloud link: connected" in dom

        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "status-page.png"
        screenshot.unlink(missing_ok=True)
        await _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,900", url)
        assert screenshot.read_bytes().startswith(b"\x89PNG")

        status_config = config.path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{gateway.api_port}"')
        config.path.write_text(status_config)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--config", str(config.path), "status", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        text = out.decode()
        assert "devices: 3/3 online" in text and "channels: 4/4 online" in text
        assert all(record.name in text for record in records)


async def test_the_status_command_explains_a_stopped_daemon(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\n[api]\nlisten = "127.0.0.1:9"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--config", str(config), "status", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and "is it running?" in err.decode()
