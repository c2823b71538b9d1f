"""Inventory keyed by identity, and the outbox's states and coalescing."""

from __future__ import annotations

from pathlib import Path

from bridges.onvif.models import ChannelDescription, DeviceAddress, DeviceDescription, DeviceKind
from gateway.inventory import Inventory, local_channel_id, local_device_id
from gateway.outbox import EntryState, Outbox
from gateway.store import StateStore


def _nvr(host: str = "10.0.0.5", channels: int = 2) -> DeviceDescription:
    return DeviceDescription(
        identity="mac:00:11:22:33:44:55",
        kind=DeviceKind.NVR,
        address=DeviceAddress(host, 80),
        manufacturer="Acme",
        model="NVR-8",
        serial="SN1",
        mac="00:11:22:33:44:55",
        channels=tuple(
            ChannelDescription(source_token=f"src{i}", position=i, name=f"ch{i}", main_uri=f"rtsp://x/{i}")
            for i in range(channels)
        ),
    )


async def test_device_keeps_identity_across_address_change(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        inventory = Inventory(store)
        first = await inventory.upsert(_nvr(), name="nvr", username="admin")
        assert first.is_new and first.channels_added == ("src0", "src1")
        again = await inventory.upsert(_nvr(), name="nvr", username="admin")
        assert not again.is_new and not again.address_changed and again.channels_added == ()
        moved = await inventory.upsert(_nvr(host="10.0.0.9"), name="nvr", username="admin")
        assert moved.address_changed and moved.record.host == "10.0.0.9"
        assert len(await inventory.all()) == 1


async def test_channel_changes_are_reported(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        inventory = Inventory(store)
        await inventory.upsert(_nvr(channels=2), name="nvr", username="admin")
        grown = await inventory.upsert(_nvr(channels=3), name="nvr", username="admin")
        assert grown.channels_added == ("src2",)
        shrunk = await inventory.upsert(_nvr(channels=1), name="nvr", username="admin")
        assert shrunk.channels_removed == ("src1", "src2")
        states = {c.source_token: c.state for c in shrunk.record.channels}
        assert states == {"src0": "online", "src1": "removed", "src2": "removed"}


async def test_local_ids_are_stable_until_cloud_ids_arrive(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        inventory = Inventory(store)
        change = await inventory.upsert(_nvr(), name="nvr", username="admin")
        record = change.record
        assert record.device_id == local_device_id(record.identity)
        assert record.channels[0].channel_id == local_channel_id(record.identity, "src0")

        def assign(connection):  # type: ignore[no-untyped-def]
            Inventory.set_cloud_device_id(connection, record.identity, "cloud-dev")
            Inventory.set_cloud_channel_id(connection, record.identity, "src0", "cloud-ch")

        await store.transaction(assign)
        reread = await inventory.get(record.identity)
        assert reread is not None and reread.device_id == "cloud-dev"
        assert reread.channels[0].channel_id == "cloud-ch"
        assert reread.channels[1].channel_id == local_channel_id(record.identity, "src1")


async def test_outbox_coalesces_pending_but_not_sent(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        outbox = Outbox(store)
        first = await outbox.add("update", "dev-1", {"Ip": "10.0.0.1"})
        assert await outbox.add("update", "dev-1", {"Ip": "10.0.0.2"}) == first
        other = await outbox.add("update", "dev-2", {"Ip": "10.0.0.3"})
        entries = await outbox.open_entries()
        assert [(e.id, e.payload["Ip"]) for e in entries] == [(first, "10.0.0.2"), (other, "10.0.0.3")]
        await outbox.mark_sent(first)
        later = await outbox.add("update", "dev-1", {"Ip": "10.0.0.4"})
        assert later != first
        entry = await outbox.open_entry("update", "dev-1")
        assert entry is not None and entry.id == first and entry.state is EntryState.SENT and entry.attempts == 1
        await outbox.mark_done(first)
        await outbox.mark_failed(other, "InvalidParameterValue")
        assert [e.id for e in await outbox.open_entries()] == [later]
        assert await outbox.depth() == 1


async def test_outbox_survives_reopen(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        entry_id = await Outbox(store).add("register", "dev-1", {"Name": "x"})
        await Outbox(store).mark_sent(entry_id)
    async with StateStore(tmp_path) as store:
        entry = await Outbox(store).open_entry("register", "dev-1")
        assert entry is not None and entry.state is EntryState.SENT and entry.payload == {"Name": "x"}

