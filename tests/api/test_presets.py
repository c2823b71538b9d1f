"""The preset map: index ↔ ONVIF token in SQLite, kept true against a simulated camera."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridges.onvif.models import DeviceAddress, Preset
from bridges.onvif.session import CameraSession
from gateway.inventory import ChannelRecord, Inventory
from gateway.iss.errors import IssError
from gateway.presets import PresetBook, PresetControl, PresetEntry, reconcile
from gateway.store import StateStore
from sim.onvif import OnvifDeviceServer
from sim.onvif.motion import PtzPosition
from tests.sim.onvif_fixtures import PASSWORD, USERNAME, camera_description


@dataclass
class Rig:
    device: OnvifDeviceServer
    session: CameraSession
    store: StateStore
    identity: str
    channel: ChannelRecord

    def control(self) -> PresetControl:
        """A fresh controller over the same database (what a restart gives)."""
        return PresetControl(PresetBook(self.store))

    def tokens(self) -> dict[str, str]:
        return {preset.name: preset.token for preset in self.device.presets(0)}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with (
        OnvifDeviceServer(camera_description(), host="127.0.0.1", port=0) as device,
        CameraSession(DeviceAddress("127.0.0.1", device.port), USERNAME, PASSWORD) as session,
        StateStore(tmp_path) as store,
    ):
        description = await session.describe()
        change = await Inventory(store).upsert(description, name="cam", username=USERNAME)
        yield Rig(device, session, store, description.identity, change.record.channels[0])


def test_reconcile_drops_renames_and_adopts() -> None:
    entries = {1: PresetEntry(1, "a", "preset-1"), 2: PresetEntry(2, "gone", "preset-2"), 3: PresetEntry(3, "c", "old")}
    on_device = [
        Preset("a", "preset-1"),
        Preset("c", "Gate"),
        Preset("d", "preset-4"),
        Preset("e", "preset-1"),
        Preset("f", "preset-11"),
        Preset("g", "Door"),
    ]
    assert reconcile(entries, on_device) == [
        PresetEntry(1, "a", "preset-1"),
        PresetEntry(3, "c", "Gate"),
        PresetEntry(4, "d", "preset-4"),
    ]


async def test_set_on_a_mapped_index_overwrites_the_same_token(rig: Rig) -> None:
    control, head = rig.control(), rig.device.state.ptz[0]
    head.move_to(0.1, 0.2, 0.3)
    await control.execute(rig.session, rig.identity, rig.channel, "set", 1)
    tokens = rig.tokens()
    head.move_to(0.4, 0.5, 0.6)
    await rig.control().execute(rig.session, rig.identity, rig.channel, "set", 1)
    assert rig.tokens() == tokens
    head.move_to(0.0, 0.0, 0.0)
    await control.execute(rig.session, rig.identity, rig.channel, "goto", 1)
    assert rig.device.ptz_position(0) == PtzPosition(0.4, 0.5, 0.6)


async def test_a_lost_map_finds_the_presets_again(rig: Rig) -> None:
    await rig.control().execute(rig.session, rig.identity, rig.channel, "set", 4)
    tokens = rig.tokens()
    await rig.store.execute("DELETE FROM presets")
    await rig.control().execute(rig.session, rig.identity, rig.channel, "set", 4)
    assert rig.tokens() == tokens, "the device's preset-4 was overwritten, not duplicated"
    await rig.store.execute("DELETE FROM presets")
    described = await rig.control().describe(rig.session, rig.identity, rig.channel)
    assert described == [PresetEntry(4, tokens["preset-4"], "preset-4")]
    await rig.control().execute(rig.session, rig.identity, rig.channel, "goto", 4)


async def test_a_token_the_device_forgot(rig: Rig) -> None:
    control = rig.control()
    await control.execute(rig.session, rig.identity, rig.channel, "set", 2)
    token = rig.tokens()["preset-2"]
    rig.device.state.presets[0].remove(token)
    await control.execute(rig.session, rig.identity, rig.channel, "del", 2)
    assert await PresetBook(rig.store).entries(rig.identity, rig.channel.source_token) == {}
    with pytest.raises(IssError) as missing:
        await control.execute(rig.session, rig.identity, rig.channel, "del", 2)
    assert missing.value.code == "ResourceNotFound"

    await control.execute(rig.session, rig.identity, rig.channel, "set", 2)
    rig.device.state.presets[0].remove(rig.tokens()["preset-2"])
    await control.execute(rig.session, rig.identity, rig.channel, "set", 2)
    assert list(rig.tokens()) == ["preset-2"], "set re-created the preset the device had lost"


async def test_names_given_on_the_device_are_kept(rig: Rig) -> None:
    control = rig.control()
    await control.execute(rig.session, rig.identity, rig.channel, "set", 6)
    rig.device.state.presets[0].get(rig.tokens()["preset-6"]).name = "Main gate"
    assert [(e.index, e.name) for e in await control.describe(rig.session, rig.identity, rig.channel)] == [(6, "Main gate")]
    await control.execute(rig.session, rig.identity, rig.channel, "set", 6)
    assert list(rig.tokens()) == ["Main gate"]
