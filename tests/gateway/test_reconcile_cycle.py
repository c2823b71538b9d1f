"""Reconcile cycles against the cloud emulator, with an inventory filled directly (no cameras needed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bridges.onvif.models import ChannelDescription, DeviceAddress, DeviceDescription, DeviceKind
from gateway.health import Liveness
from gateway.inventory import DeviceRecord, Inventory
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient
from gateway.iss.ratelimit import ActionRateLimiter
from gateway.outbox import Outbox
from gateway.reconcile import Reconciler
from gateway.registration import Registrar
from gateway.store import StateStore
from sim.cloud import CloudEmulator, seeds
from sim.cloud.reports import ReportedChannel
from tests.gateway.test_registration import SECRET_ID, SECRET_KEY, TARGET


def camera(n: int) -> DeviceDescription:
    return DeviceDescription(
        identity=f"mac:02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}",
        kind=DeviceKind.IPC,
        address=DeviceAddress(f"127.0.{n >> 8}.{n & 0xFF}", 8000),
        manufacturer="Acme",
        model="Cam",
        channels=(ChannelDescription("VideoSource_1", 1, f"cam{n}"),),
    )


@dataclass
class Site:
    """An inventory registered in the emulator, and a reconciler over it."""

    cloud: CloudEmulator
    store: StateStore
    inventory: Inventory
    registrar: Registrar
    reconciler: Reconciler
    resent: list[str]

    async def add(self, count: int) -> list[DeviceRecord]:
        records = []
        for n in range(1, count + 1):
            device = camera(n)
            await self.cloud.report_channels(
                [ReportedChannel(f"cam{n}", code="VideoSource_1")],
                gateway_id=seeds.GATEWAY_ID, ip=device.address.host, port=device.address.port,
            )
            record = await self.registrar.sync(device, name=f"cam{n}", username="admin")
            records.append(await self.registrar.sync_channels(record))
        return records


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY, rate_limit=1000) as emulator:
        yield emulator


async def make_site(tmp_path: Path, cloud: CloudEmulator, client: IssClient, policy: str) -> Site:
    store = StateStore(tmp_path / "gw")
    await store.open()
    inventory, outbox = Inventory(store), Outbox(store)
    registrar = Registrar(store, inventory, outbox, client, TARGET, lambda identity: "secret-pw")
    resent: list[str] = []
    reconciler = Reconciler(
        store=store, inventory=inventory, outbox=outbox, registrar=registrar, cloud=client,
        gateway_id=seeds.GATEWAY_ID, on_cloud_delete=policy,
        liveness=lambda identity: Liveness.ONLINE, resend_state=resent.append,
    )
    return Site(cloud, store, inventory, registrar, reconciler, resent)


@pytest.fixture
async def client(cloud: CloudEmulator) -> AsyncIterator[IssClient]:
    limiter = ActionRateLimiter(rates={}, default_rate=1000)
    async with IssClient(f"http://{cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou", limiter=limiter) as client:
        yield client


@pytest.fixture
async def site(tmp_path: Path, cloud: CloudEmulator, client: IssClient) -> AsyncIterator[Site]:
    site = await make_site(tmp_path, cloud, client, "reregister")
    yield site
    await site.store.close()


@pytest.fixture
async def leaving_site(tmp_path: Path, cloud: CloudEmulator, client: IssClient) -> AsyncIterator[Site]:
    site = await make_site(tmp_path, cloud, client, "leave")
    yield site
    await site.store.close()


async def test_nothing_changed_costs_one_page_per_hundred_devices(site: Site) -> None:
    await site.add(101)
    site.cloud.clear_calls()
    report = await site.reconciler.run_cycle()
    assert [(c.action, (c.params or {}).get("PageNumber")) for c in site.cloud.calls()] == [
        ("ListGatewayDevices", 1), ("ListGatewayDevices", 2),
    ]
    assert report.ok and report.cloud_devices == 101 and report.repaired == 0 and site.resent == []


async def test_a_device_deleted_in_the_cloud_can_be_left_deleted(leaving_site: Site) -> None:
    site = leaving_site
    [first, second] = await site.add(2)
    async with IssClient(f"http://{site.cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou") as operator:
        await operator.call("DeleteUserDevice", {"DeviceId": first.cloud_device_id})
    site.cloud.clear_calls()
    report = await site.reconciler.run_cycle()
    assert report.left_deleted == [first.identity]
    assert [c.action for c in site.cloud.calls()] == ["ListGatewayDevices", "DescribeUserDevice"]
    left = await site.inventory.get(first.identity)
    assert left is not None and left.cloud_device_id is None and not left.enabled
    # Neither the next cycle nor the next discovery round adds it back.
    await site.reconciler.run_cycle()
    await site.registrar.sync(camera(1), name="cam1", username="admin")
    assert not site.cloud.calls("AddUserDevice")
    assert [d["DeviceId"] for d in (await _listed(site))] == [second.cloud_device_id]


async def test_a_device_someone_else_added_is_left_alone_and_logged_once(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    await site.add(1)
    stranger = replace(camera(9), identity="mac:02:00:00:00:00:99")
    async with IssClient(f"http://{site.cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou") as operator:
        added = await operator.call("AddUserDevice", {
            "Name": "console-added", "AccessProtocol": 3, "Type": 1, "OrganizationId": seeds.SITE_ORGANIZATION_ID,
            "ClusterId": seeds.GUANGZHOU_CLUSTER_ID, "GatewayId": seeds.GATEWAY_ID, "ProtocolType": 4,
            "Ip": stranger.address.host, "Port": 80, "Username": "admin", "Password": "pw",
        })
    site.cloud.clear_calls()
    with caplog.at_level(logging.INFO, logger="gateway.reconcile"):
        first = await site.reconciler.run_cycle()
        second = await site.reconciler.run_cycle()
    device_id = added["Data"]["DeviceId"]
    assert first.unknown_in_cloud == second.unknown_in_cloud == [device_id]
    assert sum(device_id in record.getMessage() for record in caplog.records) == 1
    assert {c.action for c in site.cloud.calls()} == {"ListGatewayDevices"}


async def test_an_address_changed_in_the_console_is_put_back_once(site: Site) -> None:
    [record] = await site.add(1)
    async with IssClient(f"http://{site.cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou") as operator:
        await operator.call("UpdateUserDevice", {"DeviceId": record.cloud_device_id, "Ip": "127.0.9.9"})
    site.cloud.clear_calls()
    report = await site.reconciler.run_cycle()
    again = await site.reconciler.run_cycle()
    assert report.updates_queued == [record.identity] and again.repaired == 0
    updates = site.cloud.calls("UpdateUserDevice")
    assert [(u.params or {}).get("Ip") for u in updates] == [record.host]
    assert (await _listed(site))[0]["Ip"] == record.host


async def _listed(site: Site) -> list[dict[str, object]]:
    return [device async for device in site.registrar.gateway_devices()]
