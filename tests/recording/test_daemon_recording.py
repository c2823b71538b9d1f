"""Recording in the running daemon (standalone, simulated site) and plans from the cloud emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, load_config
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient
from gateway.recordings import RecordingIndex
from gateway.schedule import CloudPlanSource, TimeSection, WeeklySchedule
from gateway.store import StateStore
from sim.cloud import CloudEmulator, seeds
from tests.integration.conftest import (  # noqa: F401 - fixtures
    SECRET_ID,
    SECRET_KEY,
    cloud,
    gateway_config,
    make_site,
    running_gateway,
)
from tests.sim.conftest import rtsp_clip_cache  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

WAIT = 30.0


def with_recording(config: Config, *lines: str) -> Config:
    """The same config file with a ``[recording]`` section appended, loaded again."""
    text = config.path.read_text(encoding="utf-8") + "\n".join(["[recording]", *lines]) + "\n"
    config.path.write_text(text, encoding="utf-8")
    return load_config(config.path)


async def eventually(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Check ``condition`` (sync or async) every 0.1 s until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_standalone_daemon_records_its_configured_channel_at_once_and_closes_it_at_shutdown(
    tmp_path: Path,
    make_site: Callable[..., Any],  # noqa: F811 - fixture
) -> None:
    site = await make_site(cameras=1, nvrs=0)
    config = gateway_config(tmp_path, None, site, static=True)
    # First run: learn the channel's local id (what an operator reads from the status page).
    async with running_gateway(config) as gateway:
        await asyncio.wait_for(gateway.wait_for_rounds(1), WAIT)
        records = await gateway.inventory.all()
        channel_id = records[0].channels[0].channel_id
        assert not gateway.is_recording(channel_id)

    config = with_recording(config, "segment_seconds = 5", f'channels = ["{channel_id}"]')
    async with running_gateway(config) as gateway:
        # Around the clock means "in the middle of a section" whenever the daemon starts.
        await eventually(lambda: gateway.is_recording(channel_id), "the channel recording")
        assert gateway.recordings_service.wanted == {channel_id}
        started = time.time()
    spans = await _spans_after_stop(config, channel_id)
    assert spans and spans[-1][1] >= started, "the segment open at shutdown was closed and indexed"
    files = list(config.recordings_dir.rglob("*.mp4"))
    assert files, "segments are on disk"


async def _spans_after_stop(config: Config, channel_id: str) -> list[tuple[float, float]]:
    """The index as the stopped daemon left it."""
    async with StateStore(config.gateway.state_dir) as store:
        return [
            tuple(span)
            for span in await RecordingIndex(store, config.recordings_dir).timeline(channel_id, 0, 10**10)
        ]


async def test_cloud_plans_come_with_their_channels_sections_and_lifecycle(
    cloud: CloudEmulator,  # noqa: F811 - fixture
) -> None:
    async with IssClient(
        f"http://{cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou"
    ) as client:
        device = (
            await client.call(
                "AddUserDevice",
                {
                    "Name": "lobby", "AccessProtocol": 3, "Type": 1, "OrganizationId": seeds.ROOT_ORGANIZATION_ID,
                    "ClusterId": seeds.GUANGZHOU_CLUSTER_ID, "GatewayId": seeds.GATEWAY_ID, "ProtocolType": 4,
                    "Ip": "192.168.1.64", "Port": 80, "Username": "admin", "Password": "cam-pass",
                },
            )
        )["Data"]  # fmt: skip
        channels = (await client.call("DescribeDeviceChannel", {"DeviceId": device["DeviceId"]}))["Data"]
        channel_id = channels[0]["ChannelId"]
        sections = [
            {"DayOfWeek": 1, "StartTime": "08:00:00", "EndTime": "12:00:00"},
            {"DayOfWeek": 7, "StartTime": "20:00:00", "EndTime": "23:59:59"},
        ]
        template = (
            await client.call("AddRecordTemplate", {"TemplateName": "shop", "TimeSections": sections})
        )["Data"]
        await client.call(
            "AddRecordPlan",
            {
                "PlanName": "shop-hours", "TemplateId": template["TemplateId"],
                "LifeCycle": {"Transition": 10, "Expiration": 60},
                "Channels": [{"DeviceId": device["DeviceId"], "ChannelId": channel_id}],
            },
        )  # fmt: skip

        plans = await CloudPlanSource(client).fetch()

    assert list(plans) == [channel_id]
    plan = plans[channel_id]
    assert plan.retention_days == 70
    assert plan.schedule == WeeklySchedule(
        (TimeSection(1, 8 * 3600, 12 * 3600), TimeSection(7, 20 * 3600, 86400))
    )
