"""Health checks: debounced states, bounded rounds, the recorder's hook; against real loopback servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from bridges.liveness import ProbeResult
from bridges.onvif.models import DeviceAddress, DeviceKind
from gateway.health import DeviceTarget, HealthMonitor, Liveness, LivenessTracker, check_timeout_for
from gateway.inventory import ChannelRecord, DeviceRecord
from gateway.metrics import GatewayMetrics
from sim.onvif import OnvifDeviceServer
from tests.bridges.test_liveness import digest_protected, rtsp_server
from tests.sim.onvif_fixtures import camera_description

MISS, HIT = ProbeResult(False, "lost"), ProbeResult(True, "fine")


def test_offline_only_after_the_configured_misses_and_online_at_the_first_success() -> None:
    tracker = LivenessTracker(offline_after=3)
    results = [HIT, MISS, MISS, HIT, MISS, MISS, MISS, MISS, HIT]
    seen = [(tracker.observe(result), tracker.state) for result in results]
    assert seen == [
        (True, Liveness.ONLINE),
        (False, Liveness.ONLINE),  # two lost checks: no flapping
        (False, Liveness.ONLINE),
        (False, Liveness.ONLINE),  # the success in between starts the count again
        (False, Liveness.ONLINE),
        (False, Liveness.ONLINE),
        (True, Liveness.OFFLINE),  # the third miss in a row
        (False, Liveness.OFFLINE),  # reported once
        (True, Liveness.ONLINE),  # online at the first success
    ]


def test_the_probe_deadline_follows_the_interval_within_bounds() -> None:
    assert check_timeout_for(10) == 5.0 and check_timeout_for(60) == 5.0
    assert check_timeout_for(0.3) == pytest.approx(0.2) and check_timeout_for(1) == 0.5


def record(identity: str, host: str, port: int, stream_port: int = 0, channels: int = 1) -> DeviceRecord:
    return DeviceRecord(
        identity=identity, cloud_device_id=None, kind=DeviceKind.IPC if channels == 1 else DeviceKind.NVR,
        name=identity, host=host, port=port, username="admin", manufacturer="", model="", serial="", mac="",
        state="online", fault="", enabled=True, last_seen=0.0,
        channels=tuple(
            ChannelRecord(identity, f"VideoSource_{i}", i, None, f"ch{i}", f"rtsp://127.0.0.1:{stream_port}/ch{i}",
                          "", "", "", False, False, "online")
            for i in range(1, channels + 1)
        ),
    )


def target(record: DeviceRecord) -> DeviceTarget:
    return DeviceTarget(DeviceAddress(record.host, record.port), "admin", "pw")


@pytest.fixture
async def silent_device() -> AsyncIterator[int]:
    """An HTTP server that accepts requests and never answers (a hung camera)."""
    release = asyncio.Event()

    async def hang(_request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.Response()

    async with RawTestServer(hang, host="127.0.0.1") as server:
        yield server.port or 0
        release.set()


async def test_a_hung_device_does_not_delay_the_others(silent_device: int) -> None:
    async with OnvifDeviceServer(camera_description(), host="127.0.0.1") as camera, rtsp_server(
        digest_protected("/ch1", "admin", "pw")
    ) as (stream_port, _):
        good = record("good", camera.host, camera.port, stream_port)
        hung = record("hung", "127.0.0.1", silent_device, stream_port)
        async with HealthMonitor(offline_after=2, check_timeout=0.4, target_for=target) as monitor:
            started = time.monotonic()
            first = await monitor.check([hung, good])
            elapsed = time.monotonic() - started
            second = await monitor.check([hung, good])
    assert elapsed < 0.4 * 2 + 0.3  # one deadline for the hung device's ping; nothing serial
    assert [change.identity for change in first] == ["good"]
    assert monitor.device_state("good") is Liveness.ONLINE and monitor.channel_state("good", "VideoSource_1") is Liveness.ONLINE
    assert [(c.identity, c.device, c.went_offline) for c in second] == [("hung", Liveness.OFFLINE, True)]
    assert monitor.channel_state("hung", "VideoSource_1") is Liveness.OFFLINE


async def test_a_missing_stream_makes_only_its_channel_offline() -> None:
    async with OnvifDeviceServer(camera_description(), host="127.0.0.1") as nvr, rtsp_server(
        digest_protected("/ch1", "admin", "pw")
    ) as (stream_port, requests):
        device = record("nvr", nvr.host, nvr.port, stream_port, channels=2)  # /ch2 answers 404
        async with HealthMonitor(offline_after=1, check_timeout=0.5, target_for=target) as monitor:
            await monitor.check([device])
    assert monitor.device_state("nvr") is Liveness.ONLINE
    assert monitor.channel_state("nvr", "VideoSource_1") is Liveness.ONLINE
    assert monitor.channel_state("nvr", "VideoSource_2") is Liveness.OFFLINE
    counts = monitor.counts([device])
    assert counts.devices[Liveness.ONLINE] == 1 and counts.channels == {
        Liveness.ONLINE: 1, Liveness.OFFLINE: 1, Liveness.UNKNOWN: 0,
    }
    assert len(requests) == 3  # ch1: challenge + answer; ch2: 404 at once


async def test_a_channel_the_recorder_writes_is_not_probed() -> None:
    metrics = GatewayMetrics()
    async with OnvifDeviceServer(camera_description(), host="127.0.0.1") as camera:
        device = record("cam", camera.host, camera.port, stream_port=1)  # nothing listens on port 1
        metrics.recorder.add_bytes(device.channels[0].channel_id, 188 * 7)
        async with HealthMonitor(
            offline_after=1, check_timeout=0.5, target_for=target, activity=metrics.recorder
        ) as monitor:
            await monitor.check([device])
            assert monitor.channel_streaming(device.channels[0])
    assert monitor.channel_state("cam", "VideoSource_1") is Liveness.ONLINE
    assert metrics.recorder.bytes.value(channel=device.channels[0].channel_id) == 188 * 7


async def test_a_channel_gone_from_the_device_is_a_change_and_forgotten() -> None:
    async with OnvifDeviceServer(camera_description(), host="127.0.0.1") as nvr, rtsp_server(
        digest_protected("/ch1", "admin", "pw")
    ) as (stream_port, _):
        device = record("nvr", nvr.host, nvr.port, stream_port, channels=1)
        async with HealthMonitor(offline_after=1, check_timeout=0.5, target_for=target) as monitor:
            assert await monitor.check([device])
            assert await monitor.check([device]) == []
            removed = replace(device, channels=tuple(replace(channel, state="removed") for channel in device.channels))
            changes = await monitor.check([removed])
    assert [change.identity for change in changes] == ["nvr"]
    assert monitor.channel_state("nvr", "VideoSource_1") is Liveness.UNKNOWN
