"""ControlDevicePreset and DescribeDevicePreset: the cloud's preset indexes 1-10 on ONVIF tokens.

The cloud numbers a channel's presets 1-10; ONVIF names them by device-chosen string tokens. The
gateway keeps the map per channel in SQLite (``presets`` table), so it survives restarts:

* ``set`` stores the present position. An index already mapped is overwritten in place on the
  device (SetPreset with its token, so the token and the map entry stay); a new index lets the
  device choose the token. The request has no name (the spec's parameters are ChannelId, Cmd,
  Index), so a new preset is called ``preset-<Index>``; a name given on the device is kept.
* ``goto``/``del`` of an index that is not mapped answer ``ResourceNotFound``: the preset does
  not exist. A mapped token the device no longer knows (factory reset, deleted on the camera's
  web page) is dropped from the map; ``goto`` then answers ``ResourceNotFound`` too and ``del``
  succeeds, since the preset is gone either way.
* DescribeDevicePreset reads the device's presets and lists the mapped ones in index order,
  with the device's current name. A device preset named ``preset-<N>`` (N in 1-10) whose index is
  free is adopted, so a gateway that lost its database finds its presets again.

A channel without PTZ has no presets: Describe answers an empty list, the commands
``UnSupportedPresetCMD`` (via the dispatch table's code for "unsupported").
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bridges.errors import DeviceRequestRejected, DeviceUnsupported
from bridges.onvif.models import Preset
from bridges.onvif.session import CameraSession

from .inventory import ChannelRecord
from .iss.errors import IssError
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

PRESET_COMMANDS: Final = frozenset({"goto", "set", "del"})
MIN_INDEX: Final = 1
MAX_INDEX: Final = 10
_DEFAULT_NAME_RE: Final = re.compile(r"^preset-(\d{1,2})$")


def default_preset_name(index: int) -> str:
    """The name a preset gets on the device when the gateway creates it."""
    return f"preset-{index}"


@dataclass(frozen=True, slots=True)
class PresetEntry:
    """One mapped preset of a channel."""

    index: int
    token: str
    name: str


class PresetBook:
    """The persisted index ↔ token map of every channel."""

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def entries(self, identity: str, source_token: str) -> dict[int, PresetEntry]:
        """A channel's mapped presets by index."""
        rows = await self._store.fetchall(
            "SELECT preset_index, preset_token, name FROM presets WHERE device_identity = ? AND source_token = ?",
            (identity, source_token),
        )
        return {row[0]: PresetEntry(row[0], row[1], row[2]) for row in rows}

    async def put(self, identity: str, source_token: str, entry: PresetEntry) -> None:
        """Map (or re-map) an index."""
        await self._store.execute(
            """INSERT INTO presets (device_identity, source_token, preset_index, preset_token, name, updated_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (device_identity, source_token, preset_index) DO UPDATE SET
               preset_token = excluded.preset_token, name = excluded.name, updated_at = excluded.updated_at""",
            (identity, source_token, entry.index, entry.token, entry.name, self._clock()),
        )

    async def remove(self, identity: str, source_token: str, index: int) -> None:
        """Forget an index."""
        await self._store.execute(
            "DELETE FROM presets WHERE device_identity = ? AND source_token = ? AND preset_index = ?",
            (identity, source_token, index),
        )

    async def replace_all(self, identity: str, source_token: str, entries: list[PresetEntry]) -> None:
        """Make the channel's map exactly ``entries`` (one transaction)."""

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM presets WHERE device_identity = ? AND source_token = ?", (identity, source_token)
            )
            connection.executemany(
                """INSERT INTO presets (device_identity, source_token, preset_index, preset_token, name, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                [(identity, source_token, e.index, e.token, e.name, self._clock()) for e in entries],
            )

        await self._store.transaction(write)


class PresetControl:
    """Carries out preset commands on a channel through its device session and the book.

    Commands of one channel run one at a time (the map must not change between reading it and
    writing the device's answer back).
    """

    def __init__(self, book: PresetBook) -> None:
        self._book = book
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, identity: str, source_token: str) -> asyncio.Lock:
        return self._locks.setdefault((identity, source_token), asyncio.Lock())

    async def execute(self, session: CameraSession, identity: str, channel: ChannelRecord, command: str, index: int) -> None:
        """Run a validated ``set``/``goto``/``del``."""
        token = channel.source_token
        if not channel.ptz:
            raise DeviceUnsupported(f"{token}: channel has no PTZ, so no presets", host=session.address.host, device=identity)
        async with self._lock(identity, token):
            entries = await self._book.entries(identity, token)
            if command == "set":
                await self._set(session, identity, token, index, entries.get(index))
            elif command == "goto":
                await self._goto(session, identity, token, self._mapped(entries, index))
            elif command == "del":
                await self._delete(session, identity, token, self._mapped(entries, index))
            else:
                raise ValueError(f"not a preset command: {command!r}")
        _LOGGER.info("channel %s/%s: preset %s %d", identity, token, command, index)

    async def describe(self, session: CameraSession, identity: str, channel: ChannelRecord) -> list[PresetEntry]:
        """The channel's presets as the device has them now, in index order."""
        token = channel.source_token
        async with self._lock(identity, token):
            try:
                on_device = await session.get_presets(token)
            except DeviceUnsupported:
                return []
            entries = await self._book.entries(identity, token)
            current = reconcile(entries, on_device)
            if current != sorted(entries.values(), key=lambda e: e.index):
                await self._book.replace_all(identity, token, current)
                _LOGGER.info("channel %s/%s: preset map now %s", identity, token, [(e.index, e.token) for e in current])
            return current

    @staticmethod
    def _mapped(entries: dict[int, PresetEntry], index: int) -> PresetEntry:
        entry = entries.get(index)
        if entry is None:
            raise IssError("ResourceNotFound", f"No preset is set at index {index}.")
        return entry

    async def _set(
        self, session: CameraSession, identity: str, token: str, index: int, existing: PresetEntry | None
    ) -> None:
        name = existing.name if existing else default_preset_name(index)
        try:
            preset_token = await session.set_preset(token, name, existing.token if existing else None)
        except DeviceRequestRejected as refusal:
            preset_token = await self._set_after_refusal(session, token, name, existing, refusal)
        await self._book.put(identity, token, PresetEntry(index, preset_token, name))

    async def _set_after_refusal(
        self,
        session: CameraSession,
        token: str,
        name: str,
        existing: PresetEntry | None,
        refusal: DeviceRequestRejected,
    ) -> str:
        """SetPreset was refused: our token is unknown to the device, or its name is taken.

        A device preset with the same name is ours from before (the map was lost): overwrite it.
        A stored token the device forgot: let the device choose a new one. Otherwise the refusal
        stands.
        """
        on_device = await session.get_presets(token)
        same_name = next((preset for preset in on_device if preset.name == name), None)
        if same_name is not None:
            return await session.set_preset(token, name, same_name.token)
        if existing is not None and all(preset.token != existing.token for preset in on_device):
            return await session.set_preset(token, name)
        raise refusal

    async def _goto(self, session: CameraSession, identity: str, token: str, entry: PresetEntry) -> None:
        try:
            await session.goto_preset(token, entry.token)
        except DeviceRequestRejected:
            if await self._still_on_device(session, token, entry):
                raise
            await self._book.remove(identity, token, entry.index)
            raise IssError("ResourceNotFound", f"Preset {entry.index} no longer exists on the device.") from None

    async def _delete(self, session: CameraSession, identity: str, token: str, entry: PresetEntry) -> None:
        try:
            await session.remove_preset(token, entry.token)
        except DeviceRequestRejected:
            if await self._still_on_device(session, token, entry):
                raise
            _LOGGER.info("channel %s/%s: preset %d was already gone from the device", identity, token, entry.index)
        await self._book.remove(identity, token, entry.index)

    @staticmethod
    async def _still_on_device(session: CameraSession, token: str, entry: PresetEntry) -> bool:
        return any(preset.token == entry.token for preset in await session.get_presets(token))


def reconcile(entries: dict[int, PresetEntry], on_device: list[Preset]) -> list[PresetEntry]:
    """The map after comparing it with the device's presets, in index order.

    Mapped tokens the device lacks are dropped; names follow the device (when it has one);
    unmapped device presets named ``preset-<N>`` with a free index N are adopted.
    """
    by_token = {preset.token: preset for preset in on_device}
    kept: dict[int, PresetEntry] = {}
    for index, entry in entries.items():
        preset = by_token.get(entry.token)
        if preset is not None:
            kept[index] = PresetEntry(index, entry.token, preset.name or entry.name)
    mapped_tokens = {entry.token for entry in kept.values()}
    for preset in on_device:
        match = _DEFAULT_NAME_RE.match(preset.name)
        if match is None or preset.token in mapped_tokens:
            continue
        index = int(match[1])
        if MIN_INDEX <= index <= MAX_INDEX and index not in kept:
            kept[index] = PresetEntry(index, preset.token, preset.name)
            mapped_tokens.add(preset.token)
    return [kept[index] for index in sorted(kept)]
