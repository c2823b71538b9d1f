"""Issue acceptance: the cloud shows the truth about the site, and the site works while the cloud does not.

A real simulated site, the cloud emulator and the daemon, all on loopback, with short intervals
(health checks every 0.3 s, reconcile every second) so that many cycles fit in a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Config, Duration, load_config
from gateway.daemon import Gateway
from gateway.inventory import DeviceRecord
from sim.cloud import CloudEmulator, seeds
from sim.site import SimulatedSite
from tests.api.conftest import API_ID, API_KEY, LocalApiSdk
from tests.gateway.prometheus_text import parse_prometheus_text
from tests.integration.conftest import SECRET_ID, SECRET_KEY, CloudView, gateway_config, running_gateway

pytestmark = pytest.mark.slow

CHECK_SECONDS = 0.3
RECONCILE_SECONDS = 1.0
OFFLINE_AFTER = 3
WAIT_SECONDS = 30.0
OFFLINE_DEADLINE = OFFLINE_AFTER * CHECK_SECONDS + 2 * CHECK_SECONDS + 1.0
"""offline_after missed checks, one round in flight when the camera stopped, and the event's trip."""
WRITES = frozenset({"AddUserDevice", "UpdateUserDevice", "DeleteUserDevice", "UpdateDeviceStatus", "RefreshDeviceChannel"})


def fast(config: Config, *, discovery: float = 2.0, check: float = CHECK_SECONDS, reconcile: float = RECONCILE_SECONDS) -> Config:
    """Shorter intervals than the config file allows (its bounds are for sites, not tests)."""
    return replace(
        config,
        reconcile=replace(
            config.reconcile, check_interval=Duration(check), interval=Duration(reconcile), offline_after=OFFLINE_AFTER
        ),
        discovery=replace(config.discovery, interval=Duration(discovery)),
    )


def with_api_key(config: Config) -> Config:
    """The same config with a local API key (for calls through the official SDK)."""
    text = config.path.read_text(encoding="utf-8")
    config.path.write_text(text.replace("[api]\n", f'[api]\nsecret_id = "{API_ID}"\nsecret_key = "{API_KEY}"\n', 1), encoding="utf-8")
    return load_config(config.path)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = WAIT_SECONDS) -> None:
    """Poll an async condition every 50 ms until it holds; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def registered(gateway: Gateway, devices: int) -> dict[str, DeviceRecord]:
    """Records by identity once every device has its DeviceId and every channel its ChannelId."""

    async def done() -> bool:
        records = await gateway.inventory.all()
        return len(records) == devices and all(
            r.cloud_device_id and all(c.cloud_channel_id for c in r.channels if c.state != "removed") for r in records
        )

    await wait_until(done, 60)
    return {record.identity: record for record in await gateway.inventory.all()}


async def cloud_device(view: CloudView, device_id: str) -> dict[str, Any]:
    return next(d for d in await view.devices() if d["DeviceId"] == device_id)


async def cloud_says(view: CloudView, record: DeviceRecord, *, status: int, channel_state: int) -> bool:
    """ListGatewayDevices shows ``status`` and DescribeDeviceChannel ``channel_state`` for every channel."""
    assert record.cloud_device_id
    if (await cloud_device(view, record.cloud_device_id))["Status"] != status:
        return False
    return all(c["State"] == channel_state for c in await view.channels(record.cloud_device_id))


def scanned_network(site: SimulatedSite) -> str:
    """The /28 around the site's devices: what discovery scans, with room for devices to move."""
    return str(ipaddress.ip_network(f"{site.address_of(0)}/28", strict=False))


def free_host(site: SimulatedSite, taken: set[str]) -> str:
    """An address inside the scanned network that no device uses."""
    return next(str(a) for a in ipaddress.ip_network(scanned_network(site)).hosts() if str(a) not in taken)


async def test_a_stopped_camera_is_offline_in_the_cloud_within_the_deadline_and_back_after_restart(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=2, nvrs=1, nvr_channels=2)
    config = fast(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network]))
    async with running_gateway(config) as gateway:
        records = await registered(gateway, 3)
        cam = records[site.device("cam1").identity]
        other = records[site.device("cam2").identity]
        await wait_until(lambda: cloud_says(cloud_view, cam, status=1, channel_state=1))

        await site.stop_device("cam1")
        stopped = time.monotonic()
        await wait_until(lambda: cloud_says(cloud_view, cam, status=2, channel_state=0))
        offline_after = time.monotonic() - stopped
        assert gateway.supervisor is not None and gateway.supervisor.device_state(cam.identity).value == "offline"
        assert await cloud_says(cloud_view, other, status=1, channel_state=1)  # the others are untouched

        await site.restart_device("cam1")
        restarted = time.monotonic()
        await wait_until(lambda: cloud_says(cloud_view, cam, status=1, channel_state=1))
        online_after = time.monotonic() - restarted
    assert offline_after <= OFFLINE_DEADLINE, f"offline in the cloud after {offline_after:.2f} s"
    assert online_after <= 2 * CHECK_SECONDS + 1.0, f"online again after {online_after:.2f} s"
    assert not [c for c in cloud_view.cloud.calls() if c.action in WRITES - {"AddUserDevice", "RefreshDeviceChannel"}]


async def test_an_address_change_is_one_update_user_device(tmp_path: Path, cloud_view: CloudView, make_site: Any) -> None:
    site = await make_site(cameras=2, nvrs=0)
    config = fast(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[scanned_network(site)]), discovery=300)
    async with running_gateway(config) as gateway:
        records = await registered(gateway, 2)
        cam = records[site.device("cam1").identity]
        new_host = free_host(site, {d.host for d in site.devices})
        await site.move_device("cam1", new_host)
        # Health checks miss it at the old address, report it offline and ask for a discovery round.
        await wait_until(lambda: _moved(cloud_view, cam, new_host))
        assert gateway.supervisor is not None
        cycles = gateway.supervisor.reconciler.cycles if gateway.supervisor.reconciler else 0
        await asyncio.wait_for(gateway.supervisor.wait_for_cycles(cycles + 2), WAIT_SECONDS)
        await wait_until(lambda: cloud_says(cloud_view, cam, status=1, channel_state=1))
    updates = cloud_view.cloud.calls("UpdateUserDevice")
    assert [(u.params or {}).get("Ip") for u in updates] == [new_host]
    assert (updates[0].params or {})["DeviceId"] == cam.cloud_device_id
    assert len(cloud_view.cloud.calls("AddUserDevice")) == 2


async def _moved(view: CloudView, record: DeviceRecord, host: str) -> bool:
    assert record.cloud_device_id
    return bool((await cloud_device(view, record.cloud_device_id))["Ip"] == host)


async def test_a_channel_added_to_the_nvr_gets_its_channel_id_and_a_removed_one_goes_offline(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=1, nvrs=1, nvr_channels=2, nvr_spare_channels=1)
    config = fast(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network]), discovery=1.0)
    async with running_gateway(config) as gateway:
        records = await registered(gateway, 2)
        nvr = records[site.device("nvr1").identity]
        assert nvr.cloud_device_id and len(nvr.channels) == 2
        refreshes = len(cloud_view.cloud.calls("RefreshDeviceChannel"))

        await site.set_nvr_channels("nvr1", 3)

        async def third_channel_known() -> bool:
            record = await gateway.inventory.get(nvr.identity)
            return record is not None and len(record.channels) == 3 and all(c.cloud_channel_id for c in record.channels)

        await wait_until(third_channel_known)
        record = await gateway.inventory.get(nvr.identity)
        assert record is not None
        cloud_channels = {c["ChannelCode"]: c["ChannelId"] for c in await cloud_view.channels(nvr.cloud_device_id)}
        assert cloud_channels == {c.source_token: c.cloud_channel_id for c in record.channels}
        assert len(cloud_view.cloud.calls("RefreshDeviceChannel")) > refreshes
        third = next(c for c in record.channels if c.source_token == "VideoSource_3")

        await site.set_nvr_channels("nvr1", 2)

        async def third_channel_offline() -> bool:
            states = {c["ChannelId"]: c["State"] for c in await cloud_view.channels(nvr.cloud_device_id or "")}
            return bool(states[third.cloud_channel_id] == 0 and sum(states.values()) == 2)

        await wait_until(third_channel_offline)
        removed = await gateway.inventory.get(nvr.identity)
        assert removed is not None
        assert {c.source_token: c.state for c in removed.channels}["VideoSource_3"] == "removed"
        # The cloud keeps the channel (it never deletes them); the gateway keeps its id for its return.
        assert len(await cloud_view.channels(nvr.cloud_device_id)) == 3


async def test_steady_state_costs_one_list_call_per_cycle_and_no_writes(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=3, nvrs=1, nvr_channels=3)
    config = fast(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network]), discovery=300)
    async with running_gateway(config) as gateway:
        await registered(gateway, 4)
        supervisor = gateway.supervisor
        assert supervisor is not None and supervisor.reconciler is not None
        await asyncio.wait_for(supervisor.wait_for_cycles(supervisor.reconciler.cycles + 1), WAIT_SECONDS)
        cloud_view.cloud.clear_calls()
        start = supervisor.reconciler.cycles
        await asyncio.wait_for(supervisor.wait_for_cycles(start + 5), WAIT_SECONDS)
        calls = [c.action for c in cloud_view.cloud.calls()]
        reports = supervisor.last_report
    assert calls == ["ListGatewayDevices"] * 5
    assert reports is not None and reports.ok and reports.repaired == 0


async def test_the_site_keeps_working_while_the_cloud_is_down_and_catches_up_in_order(
    tmp_path: Path, cloud: CloudEmulator, make_site: Any
) -> None:
    site = await make_site(cameras=4, nvrs=0)
    config = fast(with_api_key(gateway_config(tmp_path, cloud, site, unicast=[scanned_network(site)])), discovery=1.0)
    port = int(cloud.endpoint.rsplit(":", 1)[1])
    async with running_gateway(config) as gateway:
        records = await registered(gateway, 4)
        by_name = {name: records[site.device(name).identity] for name in ("cam1", "cam2", "cam3", "cam4")}
        supervisor = gateway.supervisor
        assert supervisor is not None and supervisor.reconciler is not None
        await cloud.close()  # the cloud stops answering, relay included

        taken = {d.host for d in site.devices}
        first = free_host(site, taken)
        second = free_host(site, taken | {first})
        third = free_host(site, taken | {first, second})
        await site.move_device("cam1", first)
        await _queued_update(gateway, by_name["cam1"].identity, first)
        await site.move_device("cam3", second)
        await _queued_update(gateway, by_name["cam3"].identity, second)
        await site.move_device("cam1", third)  # moved again: only the latest address matters
        await _queued_update(gateway, by_name["cam1"].identity, third)
        await site.stop_device("cam2")
        await wait_until(lambda: _health_is(gateway, by_name["cam2"].identity, "offline"))

        # Meanwhile the site works: the local API answers, PTZ drives a camera, discovery goes on.
        rounds, cycles = gateway.rounds_completed, supervisor.reconciler.cycles
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        ptz = await sdk.call("ControlDevicePTZ", ChannelId=by_name["cam4"].channels[0].channel_id, Type="left", Speed=4)
        assert "RequestId" in ptz
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{gateway.api_port}/healthz") as answer:
            assert answer.status == 200
        await asyncio.wait_for(supervisor.wait_for_cycles(cycles + 3), WAIT_SECONDS)
        await asyncio.wait_for(gateway.wait_for_rounds(rounds + 2), WAIT_SECONDS)
        assert supervisor.last_report is not None and not supervisor.last_report.ok
        # Bounded by the site, not by the outage: per moved camera one entry whose request may have
        # left (sent) and at most one pending entry coalescing every later change.
        open_entries = await gateway.store.fetchall(  # type: ignore[union-attr]
            "SELECT subject, state FROM outbox WHERE state IN ('pending', 'sent') ORDER BY id"
        )
        subjects = [row["subject"] for row in open_entries]
        assert set(subjects) == {by_name["cam1"].identity, by_name["cam3"].identity}
        assert all(subjects.count(subject) <= 2 for subject in subjects)

        async with _cloud_again(tmp_path, port) as back:
            view = CloudView(back)
            await wait_until(lambda: _delivered(view, by_name, first=third, second=second))
            await wait_until(lambda: cloud_says(view, by_name["cam2"], status=2, channel_state=0))
            await wait_until(lambda: cloud_says(view, by_name["cam4"], status=1, channel_state=1))
            writes = [(c.action, (c.params or {}).get("DeviceId"), (c.params or {}).get("Ip")) for c in back.calls() if c.action in WRITES]
    assert writes == [
        ("UpdateUserDevice", by_name["cam1"].cloud_device_id, third),
        ("UpdateUserDevice", by_name["cam3"].cloud_device_id, second),
    ]


async def _queued_update(gateway: Gateway, identity: str, host: str) -> None:
    """Until discovery found the device at ``host`` and an update for it waits in the outbox."""

    async def queued() -> bool:
        record = await gateway.inventory.get(identity)
        rows = await gateway.store.fetchall(  # type: ignore[union-attr]
            "SELECT 1 FROM outbox WHERE kind = 'update' AND subject = ? AND state IN ('pending', 'sent')", (identity,)
        )
        return record is not None and record.host == host and bool(rows)

    await wait_until(queued)


async def _health_is(gateway: Gateway, identity: str, state: str) -> bool:
    assert gateway.supervisor is not None
    return gateway.supervisor.device_state(identity).value == state


async def _delivered(view: CloudView, by_name: dict[str, DeviceRecord], *, first: str, second: str) -> bool:
    devices = {d["DeviceId"]: d for d in await view.devices()}
    ips = (devices[by_name["cam1"].cloud_device_id]["Ip"], devices[by_name["cam3"].cloud_device_id]["Ip"])
    return bool(ips == (first, second))


@contextlib.asynccontextmanager
async def _cloud_again(tmp_path: Path, port: int) -> AsyncIterator[CloudEmulator]:
    """The cloud back on the same port with the same state (its call log starts empty)."""
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, port=port) as emulator:
        yield emulator


async def test_monitor_through_the_sdk_and_metrics_as_prometheus_text(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=2, nvrs=1, nvr_channels=2)
    config = fast(with_api_key(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])), discovery=300)
    async with running_gateway(config) as gateway:
        await registered(gateway, 3)
        assert gateway.supervisor is not None
        await site.stop_device("cam2")
        await wait_until(lambda: _health_is(gateway, site.device("cam2").identity, "offline"))
        await wait_until(lambda: _health_is(gateway, site.device("cam1").identity, "online"))
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        monitor = (await sdk.raw("DescribeGatewayMonitor", {"GatewayId": seeds.GATEWAY_ID}))["Data"]
        version = (await sdk.raw("DescribeGatewayVersion", {"GatewayId": seeds.GATEWAY_ID}))["Data"]
        other_gateway = await sdk.error("DescribeGatewayMonitor", {"GatewayId": "00000000-0000-0000-0000-000000000000"})
        malformed = await sdk.error("DescribeGatewayMonitor", {"GatewayId": "not-a-gateway"})
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{gateway.api_port}/metrics") as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            page = await answer.text()
    assert monitor == {
        "DeviceTotal": 3, "DeviceOnline": 2, "DeviceOffline": 1,
        "ChannelTotal": 4, "ChannelOnline": 3, "ChannelOffline": 1,
        "UpFlow": monitor["UpFlow"], "ChannelPull": 0, "ChannelUnPull": 4,
    }
    assert isinstance(monitor["UpFlow"], int) and monitor["UpFlow"] >= 0
    assert [service["Name"] for service in version["Services"]] == ["ivc-gateway"]
    assert (other_gateway, malformed) == ("ResourceNotFound", "InvalidParameterValue.InvalidGatewayId")
    samples = parse_prometheus_text(page)
    assert samples[("ivc_gateway_devices", (("state", "online"),))] == 2
    assert samples[("ivc_gateway_devices", (("state", "offline"),))] == 1
    assert samples[("ivc_gateway_channels", (("state", "online"),))] == 3
    assert samples[("ivc_gateway_outbox_depth", ())] == 0
    assert samples[("ivc_gateway_state_dir_free_bytes", ())] > 0
    assert samples[("ivc_gateway_cloud_calls_total", (("action", "AddUserDevice"), ("code", "OK")))] == 3
    assert samples[("ivc_gateway_cloud_call_duration_seconds_count", (("action", "AddUserDevice"),))] == 3


async def test_a_device_deleted_in_the_cloud_is_registered_again_once_and_a_disabled_one_is_not_driven(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(cameras=2, nvrs=0)
    config = fast(with_api_key(gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])), discovery=300)
    async with running_gateway(config) as gateway:
        records = await registered(gateway, 2)
        supervisor = gateway.supervisor
        assert supervisor is not None and supervisor.reconciler is not None
        deleted = records[site.device("cam1").identity]
        disabled = records[site.device("cam2").identity]
        await cloud_view.call("DeleteUserDevice", {"DeviceId": deleted.cloud_device_id})
        await cloud_view.call("UpdateDeviceStatus", {"DeviceId": disabled.cloud_device_id, "Status": 3})

        async def repaired() -> bool:
            record = await gateway.inventory.get(deleted.identity)
            return bool(record and record.cloud_device_id and record.cloud_device_id != deleted.cloud_device_id
                        and all(c.cloud_channel_id for c in record.channels)) and supervisor.is_disabled(disabled.identity)

        await wait_until(repaired)
        again = await gateway.inventory.get(deleted.identity)
        assert again is not None and again.cloud_device_id
        await wait_until(lambda: cloud_says(cloud_view, again, status=1, channel_state=1))
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        refused = await sdk.error(
            "ControlDevicePTZ", {"ChannelId": disabled.channels[0].channel_id, "Type": "left", "Speed": 1}
        )
        cycles = supervisor.reconciler.cycles
        await asyncio.wait_for(supervisor.wait_for_cycles(cycles + 3), WAIT_SECONDS)  # nothing more happens

        await cloud_view.call("UpdateDeviceStatus", {"DeviceId": disabled.cloud_device_id, "Status": 2})
        cycles = supervisor.reconciler.cycles
        await asyncio.wait_for(supervisor.wait_for_cycles(cycles + 2), WAIT_SECONDS)
        assert not supervisor.is_disabled(disabled.identity)
    assert refused == "ResourceUnavailable.DevDisable"
    adds = cloud_view.cloud.calls("AddUserDevice")
    assert len(adds) == 3 and (adds[-1].params or {})["Ip"] == deleted.host
    assert [c.code for c in cloud_view.cloud.calls("DescribeUserDevice")] == ["ResourceNotFound"]
    assert len([d for d in await cloud_view.devices() if d["Ip"] == deleted.host]) == 1
