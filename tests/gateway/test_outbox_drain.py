"""The outbox while the cloud is down: writes queue (bounded, coalesced) and drain in order, once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bridges.onvif.models import DeviceAddress
from gateway import outbox as outbox_module
from gateway.inventory import Inventory
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient, RetryPolicy
from gateway.outbox import Outbox, OutboxDrainer, RetryBackoff
from gateway.registration import REGISTER, UPDATE, Registrar, RegistrationPending
from gateway.store import StateStore
from sim.cloud import CloudEmulator
from tests.gateway.test_registration import SECRET_ID, SECRET_KEY, TARGET, _camera

WAIT_SECONDS = 10.0


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudEmulator]:
    async with CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as emulator:
        yield emulator


@pytest.fixture
async def registrar(tmp_path: Path, cloud: CloudEmulator) -> AsyncIterator[Registrar]:
    async with StateStore(tmp_path / "gw") as store, IssClient(
        f"http://{cloud.endpoint}", Tc3Signer(SECRET_ID, SECRET_KEY), region="ap-guangzhou",
        retry=RetryPolicy(attempts=1), timeout=2.0,
    ) as client:
        yield Registrar(
            store, Inventory(store), Outbox(store), client, TARGET, lambda identity: "secret-pw",
            backoff=RetryBackoff(base=0.05, cap=0.2),
        )


@pytest.fixture
async def drainer(registrar: Registrar) -> AsyncIterator[OutboxDrainer]:
    drainer = OutboxDrainer(registrar.drain)
    registrar.on_backlog = drainer.wake
    task = asyncio.create_task(drainer.run())
    yield drainer
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def open_entries(registrar: Registrar) -> list[tuple[str, str, str]]:
    return [(e.kind, e.subject, e.state.value) for e in await registrar._outbox.open_entries()]  # noqa: SLF001


async def until_empty(registrar: Registrar) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while await registrar._outbox.depth():  # noqa: SLF001
            await asyncio.sleep(0.02)


async def test_writes_queue_while_the_cloud_is_down_and_drain_in_order_once_each(
    cloud: CloudEmulator, registrar: Registrar, drainer: OutboxDrainer
) -> None:
    first, second = await registrar.sync(_camera(1), name="one", username="admin"), None
    cloud.inject_fault("*", http_status=503)
    with pytest.raises(RegistrationPending):
        await registrar.sync(_camera(2), name="two", username="admin")
    moves = ["127.0.0.51", "127.0.0.52", "127.0.0.53"]
    for host in moves:  # the first camera moves three times while the cloud is away
        with pytest.raises(RegistrationPending):
            await registrar.sync(replace(_camera(1), address=DeviceAddress(host, 8001)), name="one", username="admin")
    # The registration's request may have left (sent); the three moves coalesced into one entry.
    assert await open_entries(registrar) == [
        (REGISTER, _camera(2).identity, "sent"),
        (UPDATE, _camera(1).identity, "pending"),
    ]
    attempts_during_outage = len(cloud.calls())

    cloud.clear_faults()
    registrar.resume()
    drainer.wake()
    await until_empty(registrar)
    second = await registrar._inventory.get(_camera(2).identity)  # noqa: SLF001
    delivered = [(c.action, (c.params or {}).get("Ip")) for c in cloud.calls()[attempts_during_outage:]]
    assert delivered == [("ListGatewayDevices", None), ("AddUserDevice", "127.0.0.12"), ("UpdateUserDevice", "127.0.0.53")]
    assert first.cloud_device_id and second is not None and second.cloud_device_id
    assert attempts_during_outage <= 6  # backoff: a handful of tries, not one per change


async def test_the_drainer_retries_by_itself_after_its_backoff(cloud: CloudEmulator, registrar: Registrar, drainer: OutboxDrainer) -> None:
    cloud.inject_fault("*", http_status=503, times=2)
    with pytest.raises(RegistrationPending):
        await registrar.sync(_camera(3), name="three", username="admin")
    await until_empty(registrar)
    assert [c.code for c in cloud.calls()] == ["HTTP 503", "HTTP 503", "OK", "OK"]
    assert [c.action for c in cloud.calls()][-2:] == ["ListGatewayDevices", "AddUserDevice"]
    assert drainer.passes >= 2


async def test_rebuildable_writes_are_refused_past_the_bound_but_registrations_never(
    registrar: Registrar, cloud: CloudEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [await registrar.sync(_camera(n), name=f"cam{n}", username="admin") for n in (4, 5, 6)]
    monkeypatch.setattr(outbox_module, "OPEN_ENTRY_LIMIT", 2)
    cloud.inject_fault("*", http_status=503)
    moved = [replace(r, host=f"127.0.0.{60 + i}") for i, r in enumerate(records)]
    accepted = [await registrar.request_update(record) for record in moved]
    with pytest.raises(RegistrationPending):
        await registrar.sync(_camera(7), name="cam7", username="admin")
    assert accepted == [True, True, False]
    assert [kind for kind, _, _ in await open_entries(registrar)] == [UPDATE, UPDATE, REGISTER]


async def test_finished_entries_are_pruned_after_the_retention(registrar: Registrar) -> None:
    await registrar.sync(_camera(8), name="cam8", username="admin")
    outbox = registrar._outbox  # noqa: SLF001
    assert await outbox.prune() == 0
    assert await outbox.prune(older_than=-1) == 1
