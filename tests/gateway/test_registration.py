"""Registration against the cloud emulator: exactly once across lost answers, refusals and restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bridges.onvif.models import ChannelDescription, DeviceAddress, DeviceDescription, DeviceKind
from gateway.inventory import Inventory
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient, RetryPolicy
from gateway.outbox import Outbox
from gateway.registration import CloudTarget, Registrar, RegistrationPending, cloud_name
from gateway.store import StateStore
from sim.cloud import CloudEmulator, seeds

SECRET_ID, SECRET_KEY = "AKIDregistration", "registration-key"
TARGET = CloudTarget(seeds.GATEWAY_ID, seeds.SITE_ORGANIZATION_ID, seeds.GUANGZHOU_CLUSTER_ID)


def _camera(n: int, host: str | None = None) -> DeviceDescription:
    return DeviceDescription(
        identity=f"mac:00:00:00:00:00:{n:02x}",
        kind=DeviceKind.IPC,
        address=DeviceAddress(host or f"127.0.0.{10 + n}", 8000 + n),
        manufacturer="Acme",
        model="Cam.v2",
        channels=(ChannelDescription("VideoSource_1", 0, f"cam{n}"),),
    )


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as emulator:
        yield emulator


class Site:
    """The gateway side of registration, reopenable to simulate restarts."""

    def __init__(self, state_dir: Path, cloud: CloudEmulator) -> None:
        self.state_dir = state_dir
        self.cloud = cloud

    def open(self) -> _OpenSite:
        return _OpenSite(self)


class _OpenSite:
    def __init__(self, site: Site) -> None:
        self._site = site

    async def __aenter__(self) -> Registrar:
        self.store = StateStore(self._site.state_dir)
        await self.store.open()
        self.client = IssClient(
            f"http://{self._site.cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou",
            retry=RetryPolicy(attempts=2, base_delay=0.01), timeout=2.0,
        )
        self.outbox = Outbox(self.store)
        return Registrar(self.store, Inventory(self.store), self.outbox, self.client, TARGET, lambda identity: "secret-pw")

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()
        await self.store.close()


async def _cloud_devices(cloud: CloudEmulator) -> list[dict]:  # type: ignore[type-arg]
    async with IssClient(f"http://{cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou") as client:
        data = (await client.call("ListGatewayDevices", {"GatewayId": TARGET.gateway_id, "PageNumber": 1, "PageSize": 100}))["Data"]
    return list(data["List"])


async def test_registers_each_device_once_and_keeps_ids_across_restarts(tmp_path: Path, cloud: CloudEmulator) -> None:
    site = Site(tmp_path / "gw", cloud)
    ids: dict[str, str] = {}
    for _restart in range(3):
        async with site.open() as registrar:
            for n in range(3):
                record = await registrar.sync(_camera(n), name=f"cam {n}", username="admin")
                assert record.cloud_device_id is not None
                assert ids.setdefault(record.identity, record.cloud_device_id) == record.cloud_device_id
    assert len(await _cloud_devices(cloud)) == 3
    assert len(cloud.calls("AddUserDevice")) == 3


async def test_lost_answer_is_resolved_by_lookup_not_a_second_add(tmp_path: Path, cloud: CloudEmulator) -> None:
    site = Site(tmp_path / "gw", cloud)
    cloud.inject_fault("AddUserDevice", drop=True, times=1)
    async with site.open() as registrar:
        with pytest.raises(RegistrationPending):
            await registrar.sync(_camera(1), name="cam", username="admin")
    # Restart: the entry is "sent"; the gateway must find the device the cloud already created.
    async with site.open() as registrar:
        record = await registrar.sync(_camera(1), name="cam", username="admin")
    devices = await _cloud_devices(cloud)
    assert [d["DeviceId"] for d in devices] == [record.cloud_device_id]
    assert len(cloud.calls("AddUserDevice")) == 1


async def test_cloud_down_then_back_registers_once(tmp_path: Path, cloud: CloudEmulator) -> None:
    site = Site(tmp_path / "gw", cloud)
    cloud.inject_fault("*", http_status=503)
    async with site.open() as registrar:
        with pytest.raises(RegistrationPending):
            await registrar.sync(_camera(2), name="cam", username="admin")
        cloud.clear_faults()
        registrar.resume()  # what a successful reconcile read or a relay reconnection does
        record = await registrar.sync(_camera(2), name="cam", username="admin")
    assert record.cloud_device_id and len(await _cloud_devices(cloud)) == 1


async def test_definite_refusal_marks_the_device_faulty(tmp_path: Path, cloud: CloudEmulator) -> None:
    site = Site(tmp_path / "gw", cloud)
    cloud.inject_fault("AddUserDevice", error="InvalidParameterValue.InvalidIpv4", times=1)
    async with site.open() as registrar:
        record = await registrar.sync(_camera(3), name="cam", username="admin")
        assert record.cloud_device_id is None and "InvalidParameterValue.InvalidIpv4" in record.fault
        entries = await registrar._outbox.open_entries()  # noqa: SLF001 - the refused intent is closed
    assert entries == []
    assert await _cloud_devices(cloud) == []


async def test_address_change_updates_the_same_cloud_device(tmp_path: Path, cloud: CloudEmulator) -> None:
    site = Site(tmp_path / "gw", cloud)
    async with site.open() as registrar:
        first = await registrar.sync(_camera(4), name="cam", username="admin")
        moved = await registrar.sync(replace(_camera(4), address=DeviceAddress("127.0.0.99", 8004)), name="cam", username="admin")
    assert moved.cloud_device_id == first.cloud_device_id and moved.host == "127.0.0.99"
    devices = await _cloud_devices(cloud)
    assert [(d["DeviceId"], d["Ip"]) for d in devices] == [(first.cloud_device_id, "127.0.0.99")]
    assert len(cloud.calls("UpdateUserDevice")) == 1


async def test_standalone_mode_registers_nothing(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        registrar = Registrar(store, Inventory(store), Outbox(store), None, None, lambda identity: "")
        record = await registrar.sync(_camera(5), name="cam", username="admin")
        assert record.cloud_device_id is None and record.device_id
        assert await Outbox(store).depth() == 0


def test_cloud_name_keeps_what_add_user_device_accepts() -> None:
    assert cloud_name("Cam.v2 127.0.0.11") == "Cam-v2 127-0-0-11"
    assert cloud_name("门口 (east)_1") == "门口 (east)_1"
    assert cloud_name("...") == "---" and cloud_name("") == "camera"
    assert len(cloud_name("x" * 300)) == 128
