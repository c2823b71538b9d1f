"""The site's devices and channels, keyed by stable identity, with their cloud ids.

A device is known by its identity (MAC, else serial, else a configured id), never by its
address: a camera that moves to another IP is the same device, keeps its cloud DeviceId, and
the move becomes an update. Channels are keyed by their video source token within the device.

In standalone mode the ids the local API uses are deterministic UUIDs derived from identity, so
they survive restarts without a cloud.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridges.onvif.models import DeviceDescription, DeviceKind

from .store import StateStore

_LOCAL_NAMESPACE = uuid.UUID("5f0c7a3e-5a8e-4a57-9b43-6f8f7f3c2d10")


def local_device_id(identity: str) -> str:
    """The id a device has before (or without) a cloud DeviceId."""
    return str(uuid.uuid5(_LOCAL_NAMESPACE, f"device:{identity}"))


def local_channel_id(identity: str, source_token: str) -> str:
    """The id a channel has before (or without) a cloud ChannelId."""
    return str(uuid.uuid5(_LOCAL_NAMESPACE, f"channel:{identity}/{source_token}"))


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A channel as the inventory holds it."""

    device_identity: str
    source_token: str
    position: int
    cloud_channel_id: str | None
    name: str
    main_uri: str
    sub_uri: str
    main_profile: str
    sub_profile: str
    ptz: bool
    imaging: bool
    state: str

    @property
    def channel_id(self) -> str:
        """The cloud ChannelId, or the local one until the cloud has assigned it."""
        return self.cloud_channel_id or local_channel_id(self.device_identity, self.source_token)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ChannelRecord:
        """Build from a ``channels`` row."""
        return cls(
            device_identity=row["device_identity"],
            source_token=row["source_token"],
            position=row["position"],
            cloud_channel_id=row["cloud_channel_id"],
            name=row["name"],
            main_uri=row["main_uri"],
            sub_uri=row["sub_uri"],
            main_profile=row["main_profile"],
            sub_profile=row["sub_profile"],
            ptz=bool(row["ptz"]),
            imaging=bool(row["imaging"]),
            state=row["state"],
        )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as the inventory holds it."""

    identity: str
    cloud_device_id: str | None
    kind: DeviceKind
    name: str
    host: str
    port: int
    username: str
    manufacturer: str
    model: str
    serial: str
    mac: str
    state: str
    fault: str
    enabled: bool
    last_seen: float
    channels: tuple[ChannelRecord, ...] = ()

    @property
    def device_id(self) -> str:
        """The cloud DeviceId, or the local one."""
        return self.cloud_device_id or local_device_id(self.identity)


@dataclass(frozen=True, slots=True)
class Change:
    """What an upsert changed, so callers know which cloud writes follow."""

    record: DeviceRecord
    is_new: bool
    address_changed: bool
    channels_added: tuple[str, ...]
    channels_removed: tuple[str, ...]


class Inventory:
    """Reads and writes ``devices``/``channels``; writes run in store transactions."""

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def put(self, connection: sqlite3.Connection, device: DeviceDescription, *, name: str, username: str) -> Change:
        """Insert or update ``device`` inside the caller's transaction."""
        now = self._clock()
        old = connection.execute("SELECT * FROM devices WHERE identity = ?", (device.identity,)).fetchone()
        capabilities = json.dumps({"clock_skew": device.clock_skew, "firmware": device.firmware})
        if old is None:
            connection.execute(
                """INSERT INTO devices (identity, kind, name, host, port, username, manufacturer, model, firmware,
                   serial, mac, capabilities, state, first_seen, last_seen)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'online', ?, ?)""",
                (device.identity, device.kind.value, name, device.address.host, device.address.port, username,
                 device.manufacturer, device.model, device.firmware, device.serial, device.mac, capabilities, now, now),
            )
        else:
            connection.execute(
                """UPDATE devices SET kind = ?, host = ?, port = ?, username = ?, manufacturer = ?, model = ?,
                   firmware = ?, serial = ?, mac = ?, capabilities = ?, state = 'online', fault = '', last_seen = ?
                   WHERE identity = ?""",
                (device.kind.value, device.address.host, device.address.port, username, device.manufacturer,
                 device.model, device.firmware, device.serial, device.mac, capabilities, now, device.identity),
            )
        # A channel marked removed that is back counts as added (and its state as online again).
        known = {row[0] for row in connection.execute(
            "SELECT source_token FROM channels WHERE device_identity = ? AND state != 'removed'", (device.identity,))}
        current = {channel.source_token for channel in device.channels}
        for channel in device.channels:
            connection.execute(
                """INSERT INTO channels (device_identity, source_token, position, name, main_uri, sub_uri,
                   main_profile, sub_profile, ptz, imaging, state)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'online')
                   ON CONFLICT (device_identity, source_token) DO UPDATE SET position = excluded.position,
                   main_uri = excluded.main_uri, sub_uri = excluded.sub_uri, main_profile = excluded.main_profile,
                   sub_profile = excluded.sub_profile, ptz = excluded.ptz, imaging = excluded.imaging,
                   state = CASE WHEN channels.state = 'removed' THEN 'online' ELSE channels.state END""",
                (device.identity, channel.source_token, channel.position, channel.name, channel.main_uri,
                 channel.sub_uri, channel.main_profile, channel.sub_profile, int(channel.ptz), int(channel.imaging)),
            )
        removed = tuple(sorted(known - current))
        if removed:
            connection.executemany(
                "UPDATE channels SET state = 'removed' WHERE device_identity = ? AND source_token = ?",
                [(device.identity, token) for token in removed],
            )
        record = self._read(connection, device.identity)
        assert record is not None
        address_changed = old is not None and (old["host"], old["port"]) != (device.address.host, device.address.port)
        return Change(record, old is None, address_changed, tuple(sorted(current - known)), removed)

    async def upsert(self, device: DeviceDescription, *, name: str, username: str) -> Change:
        """Insert or update ``device`` in its own transaction."""
        return await self._store.transaction(lambda c: self.put(c, device, name=name, username=username))

    async def get(self, identity: str) -> DeviceRecord | None:
        """One device with its channels."""
        return await self._store.run(lambda c: self._read(c, identity))

    async def all(self) -> list[DeviceRecord]:
        """Every device with its channels, in identity order."""

        def read(connection: sqlite3.Connection) -> list[DeviceRecord]:
            identities = [row[0] for row in connection.execute("SELECT identity FROM devices ORDER BY identity")]
            return [record for identity in identities if (record := self._read(connection, identity)) is not None]

        return await self._store.run(read)

    async def find_device(self, device_id: str) -> DeviceRecord | None:
        """The device whose cloud DeviceId, or local id, is ``device_id``."""
        for record in await self.all():
            if device_id in (record.cloud_device_id, record.device_id):
                return record
        return None

    async def find_channel(self, channel_id: str) -> tuple[DeviceRecord, ChannelRecord] | None:
        """The device and channel whose cloud ChannelId, or local id, is ``channel_id``."""
        for record in await self.all():
            for channel in record.channels:
                if channel_id in (channel.cloud_channel_id, channel.channel_id):
                    return record, channel
        return None

    @staticmethod
    def set_cloud_device_id(connection: sqlite3.Connection, identity: str, device_id: str) -> None:
        """Record the cloud's DeviceId (inside the caller's transaction)."""
        connection.execute("UPDATE devices SET cloud_device_id = ? WHERE identity = ?", (device_id, identity))

    @staticmethod
    def set_cloud_channel_id(connection: sqlite3.Connection, identity: str, source_token: str, channel_id: str) -> None:
        """Record the cloud's ChannelId (inside the caller's transaction)."""
        connection.execute(
            "UPDATE channels SET cloud_channel_id = ? WHERE device_identity = ? AND source_token = ?",
            (channel_id, identity, source_token),
        )

    @staticmethod
    def forget_cloud_ids(connection: sqlite3.Connection, identity: str) -> None:
        """The cloud lost the device: drop its DeviceId and ChannelIds (inside the caller's transaction)."""
        connection.execute("UPDATE devices SET cloud_device_id = NULL WHERE identity = ?", (identity,))
        connection.execute("UPDATE channels SET cloud_channel_id = NULL WHERE device_identity = ?", (identity,))

    @staticmethod
    def set_enabled(connection: sqlite3.Connection, identity: str, enabled: bool) -> None:
        """Whether the device may be driven (PTZ, recording); false while the cloud disables it."""
        connection.execute("UPDATE devices SET enabled = ? WHERE identity = ?", (int(enabled), identity))

    async def set_health(
        self, devices: Mapping[str, str], channels: Mapping[tuple[str, str], str]
    ) -> None:
        """Record health checks' settled states (``online``/``offline``); removed channels stay removed."""

        def write(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "UPDATE devices SET state = ? WHERE identity = ?", [(state, identity) for identity, state in devices.items()]
            )
            connection.executemany(
                "UPDATE channels SET state = ? WHERE device_identity = ? AND source_token = ? AND state != 'removed'",
                [(state, identity, token) for (identity, token), state in channels.items()],
            )

        await self._store.transaction(write)

    async def set_fault(self, identity: str, fault: str, state: str) -> None:
        """Mark a device faulty/offline (or healthy again with ``fault=''``)."""
        await self._store.execute("UPDATE devices SET fault = ?, state = ? WHERE identity = ?", (fault, state, identity))

    @staticmethod
    def _read(connection: sqlite3.Connection, identity: str) -> DeviceRecord | None:
        row = connection.execute("SELECT * FROM devices WHERE identity = ?", (identity,)).fetchone()
        if row is None:
            return None
        channels = tuple(
            ChannelRecord.from_row(channel)
            for channel in connection.execute(
                "SELECT * FROM channels WHERE device_identity = ? ORDER BY position, source_token", (identity,)
            )
        )
        return DeviceRecord(
            identity=row["identity"],
            cloud_device_id=row["cloud_device_id"],
            kind=DeviceKind(row["kind"]),
            name=row["name"],
            host=row["host"],
            port=row["port"],
            username=row["username"],
            manufacturer=row["manufacturer"],
            model=row["model"],
            serial=row["serial"],
            mac=row["mac"],
            state=row["state"],
            fault=row["fault"],
            enabled=bool(row["enabled"]),
            last_seen=row["last_seen"],
            channels=channels,
        )
