"""Issue acceptance: a site of 4 cameras + 1 NVR (4 channels) is found and registered exactly once."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from sim.onvif import Quirk
from tests.integration.conftest import CloudView, gateway_config, running_gateway
from tests.sim.wsd_fixtures import wsdiscovery_loopback  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


async def _assert_registered(cloud_view: CloudView, site: Any) -> None:
    devices = await cloud_view.devices()
    assert sorted((d["Ip"], d["Port"]) for d in devices) == sorted((d.host, d.port) for d in site.devices)
    assert {d["Type"] for d in devices} == {1, 2}
    assert await cloud_view.channel_count() == 8


@pytest.mark.parametrize("method", ["multicast", "unicast", "static"])
async def test_site_is_discovered_and_registered(
    tmp_path: Path, cloud_view: CloudView, make_site: Any, method: str, request: pytest.FixtureRequest
) -> None:
    site = await make_site()
    if method == "multicast":
        request.getfixturevalue("wsdiscovery_loopback")
    config = gateway_config(
        tmp_path, cloud_view.cloud, site,
        multicast=method == "multicast", unicast=[site.network] if method == "unicast" else None, static=method == "static",
    )
    async with running_gateway(config) as gateway:
        await asyncio.wait_for(gateway.wait_for_rounds(1), 60)
        records = await gateway.inventory.all()
        assert len(records) == 5
        if not all(c.cloud_channel_id for r in records for c in r.channels):
            await asyncio.wait_for(gateway.wait_for_rounds(2), 60)
        await _assert_registered(cloud_view, site)
        records = await gateway.inventory.all()
        assert all(r.cloud_device_id for r in records)
        assert sum(len(r.channels) for r in records) == 8 and all(c.cloud_channel_id for r in records for c in r.channels)
    assert len(cloud_view.cloud.calls("AddUserDevice")) == 5


async def test_restarts_and_an_ip_change_keep_one_cloud_device_each(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site()
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])
    ids: dict[str, str] = {}
    for _restart in range(3):
        async with running_gateway(config) as gateway:
            await asyncio.wait_for(gateway.wait_for_rounds(1), 60)
            for record in await gateway.inventory.all():
                assert record.cloud_device_id
                assert ids.setdefault(record.identity, record.cloud_device_id) == record.cloud_device_id
    await _assert_registered(cloud_view, site)
    assert len(cloud_view.cloud.calls("AddUserDevice")) == 5

    taken = {d.host for d in site.devices}
    new_host = next(str(a) for a in ipaddress.ip_network(site.network).hosts() if str(a) not in taken)
    moved = await site.move_device("cam1", new_host)
    async with running_gateway(config) as gateway:
        await asyncio.wait_for(gateway.wait_for_rounds(1), 60)
        record = await gateway.inventory.get(moved.identity)
        assert record is not None and record.host == new_host and record.cloud_device_id == ids[moved.identity]
    devices = {d["DeviceId"]: d for d in await cloud_view.devices()}
    assert len(devices) == 5 and devices[ids[moved.identity]]["Ip"] == new_host
    assert len(cloud_view.cloud.calls("AddUserDevice")) == 5


QUIRKS = {
    "cam1": frozenset({Quirk.CLOCK_SKEW}),
    "cam2": frozenset({Quirk.NO_SNAPSHOT, Quirk.NO_STOP}),
    "cam3": frozenset({Quirk.BAD_XADDRS}),
    "cam4": frozenset({Quirk.BAD_UTF8, Quirk.NO_NETWORK_INTERFACES}),
    "nvr1": frozenset({Quirk.PTZ_ONE_PROFILE, Quirk.SLOW}),
}


async def test_quirky_devices_are_handled_and_do_not_disturb_the_others(
    tmp_path: Path, cloud_view: CloudView, make_site: Any
) -> None:
    site = await make_site(quirks=QUIRKS, slow_delay_s=0.2)
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network])
    async with running_gateway(config) as gateway:
        await asyncio.wait_for(gateway.wait_for_rounds(1), 60)
        by_name = {r.host: r for r in await gateway.inventory.all()}
    await _assert_registered(cloud_view, site)
    cam4 = by_name[site.device("cam4").host]
    assert cam4.identity.startswith("sn:") and "\ufffd" not in cam4.model
    nvr = by_name[site.device("nvr1").host]
    assert [c.ptz for c in nvr.channels] == [True, False, False, False]


async def test_a_device_with_the_wrong_password_is_isolated(tmp_path: Path, cloud_view: CloudView, make_site: Any) -> None:
    site = await make_site(cameras=2, nvrs=0)
    bad = await make_site(cameras=1, nvrs=0, password="not-the-site-password")
    config = gateway_config(tmp_path, cloud_view.cloud, site, unicast=[site.network, bad.network])
    async with running_gateway(config) as gateway:
        outcomes = await gateway.devices.run_round()
    faults = {o.candidate.address.host: o.fault.value for o in outcomes}
    assert faults[bad.devices[0].host] == "auth_failed"
    assert sorted(d["Ip"] for d in await cloud_view.devices()) == sorted(d.host for d in site.devices)
