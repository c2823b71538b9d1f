"""A running gateway daemon against a simulated site and the cloud emulator, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, load_config
from gateway.daemon import Gateway
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient
from sim.cloud import CloudEmulator, seeds
from sim.site import SimulatedSite
from tests.sim.conftest import rtsp_clip_cache  # noqa: F401 - fixture
from tests.sim.wsd_fixtures import random_loopback_prefix

SECRET_ID, SECRET_KEY = "AKIDintegration", "integration-secret-key"


def gateway_config(
    tmp_path: Path,
    cloud: CloudEmulator | None,
    site: SimulatedSite,
    *,
    multicast: bool = False,
    unicast: list[str] | None = None,
    static: bool = False,
    interval: str = "300s",
    name: str = "gateway.toml",
) -> Config:
    """Write a real config file for the daemon and load it."""
    lines = [
        "[gateway]",
        'name = "it-gateway"',
        f'gateway_id = "{seeds.GATEWAY_ID}"',
        f'state_dir = "{tmp_path / "gateway-state"}"',
        "[api]",
        'listen = "127.0.0.1:0"',
        "[discovery]",
        f"interval = \"{interval}\"",
        f"multicast = {'true' if multicast else 'false'}",
        'probe_timeout = "2s"',
        f"unicast_hosts = {unicast or []!r}".replace("'", '"'),
        'username = "admin"',
        f'password = "{site.password}"',
    ]
    if cloud is not None:
        lines += [
            "[cloud]",
            f'secret_id = "{SECRET_ID}"',
            f'secret_key = "{SECRET_KEY}"',
            f'cluster_id = "{seeds.GUANGZHOU_CLUSTER_ID}"',
            f'organization_id = "{seeds.SITE_ORGANIZATION_ID}"',
            f'endpoint = "http://{cloud.endpoint}"',
            'timeout = "3s"',
            "[relay]",
            f'url = "ws://{cloud.endpoint}/relay"',
            'max_backoff = "2s"',
        ]
    if static:
        for device in site.devices:
            lines += ["[[camera]]", f'host = "{device.host}"', f"port = {device.port}", 'username = "admin"',
                      f'password = "{site.password}"', f'name = "{device.name}"']
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return load_config(path)


@dataclass
class CloudView:
    """What the cloud emulator holds, read through the gateway's own signed client."""

    cloud: CloudEmulator

    async def call(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        async with IssClient(f"http://{self.cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou") as client:
            return await client.call(action, params or {})

    async def devices(self) -> list[dict[str, Any]]:
        data = (await self.call("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID, "PageNumber": 1, "PageSize": 100}))["Data"]
        return list(data["List"])

    async def channels(self, device_id: str) -> list[dict[str, Any]]:
        return list((await self.call("DescribeDeviceChannel", {"DeviceId": device_id}))["Data"] or [])

    async def channel_count(self) -> int:
        return sum([len(await self.channels(d["DeviceId"])) for d in await self.devices()])


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as emulator:
        yield emulator


@pytest.fixture
def cloud_view(cloud: CloudEmulator) -> CloudView:
    return CloudView(cloud)


@pytest.fixture
async def make_site(tmp_path: Path, rtsp_clip_cache: Path) -> AsyncIterator[Callable[..., Any]]:  # noqa: F811
    sites: list[SimulatedSite] = []

    async def start(**options: Any) -> SimulatedSite:
        state = tmp_path / f"site{len(sites)}"
        state.mkdir()
        (state / "rtsp-cache").symlink_to(rtsp_clip_cache)
        options = {"cameras": 4, "nvrs": 1, "nvr_channels": 4, "width": 320, "height": 240,
                   "host": f"{random_loopback_prefix()}.0", **options}
        site = SimulatedSite(state_dir=state, **options)
        await site.start()
        sites.append(site)
        return site

    yield start
    for site in sites:
        await site.close()


@contextlib.asynccontextmanager
async def running_gateway(config: Config, clock: Callable[[], float] = time.time) -> AsyncIterator[Gateway]:
    """Run the daemon in this event loop (with an injectable clock); stop it gracefully at the end."""
    gateway = Gateway(config, clock=clock)
    task = asyncio.get_running_loop().create_task(gateway.run())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 30)
        yield gateway
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 30)
