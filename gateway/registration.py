"""Registering devices in the cloud exactly once, and keeping their cloud record current.

The one hard case is a lost answer: AddUserDevice reached the cloud, the device was created, but
the gateway crashed or timed out before it read the DeviceId. Calling again would create a
second device. So the intent is committed to the outbox first, marked ``sent`` (durably) just
before the request leaves, and an entry found ``sent`` is resolved by looking the device up by
the exact Ip and Port that request carried (ListGatewayDevices) before anything is sent again.

Every cloud write of a device goes through the outbox and is sent by :meth:`Registrar.drain`:
one entry at a time, oldest first, under one lock, so writes reach the cloud in the order they
were decided and never twice at once. Each write carries the subject's *latest* state, read when
it is sent (a device that moved twice during an outage is updated once, to where it is now).
While the cloud does not answer, draining pauses with a growing delay; the daemon's
:class:`~gateway.outbox.OutboxDrainer` resumes it, and any sign that the cloud is back (a
successful read, the relay reconnecting) resumes it at once.

Passwords are never written to the outbox; they are added from the configuration at send time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

from bridges.onvif.models import DeviceDescription

from .inventory import Change, DeviceRecord, Inventory
from .iss.client import IssClient
from .iss.errors import IssError, IssTransportError
from .outbox import EntryState, Outbox, OutboxEntry, RetryBackoff
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

REGISTER = "register"
UPDATE = "update"
PROTOCOL_ONVIF = 4
ACCESS_GATEWAY = 3
_NAME_FORBIDDEN = re.compile(r"[^\w\s()（）\-]", re.UNICODE)
GATEWAY_DEVICES_PAGE = 100
DELETED_IN_CLOUD: Final = "device deleted in the cloud"


def cloud_name(name: str) -> str:
    """A device name AddUserDevice accepts: letters, digits, CJK, spaces, parentheses, ``_``, ``-``."""
    cleaned = _NAME_FORBIDDEN.sub("-", name).strip() or "camera"
    return cleaned[:128]


@dataclass(frozen=True, slots=True)
class CloudTarget:
    """Where devices are registered: the account's organization, service node and this gateway."""

    gateway_id: str
    organization_id: str
    cluster_id: str


class RegistrationPending(Exception):
    """The outcome is not known yet (cloud unreachable); the next round resolves it."""


class Registrar:
    """Turns probed devices into inventory rows and cloud devices."""

    def __init__(
        self,
        store: StateStore,
        inventory: Inventory,
        outbox: Outbox,
        cloud: IssClient | None,
        target: CloudTarget | None,
        password_for: Callable[[str], str],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        backoff: RetryBackoff | None = None,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._outbox = outbox
        self._cloud = cloud
        self._target = target
        self._password_for = password_for
        self._clock = clock
        self._monotonic = monotonic
        self._backoff = backoff or RetryBackoff()
        self._send_lock = asyncio.Lock()
        self._retry_at = 0.0
        self._last_error = ""
        self.on_backlog: Callable[[], None] | None = None
        """Called when writes stay queued (the cloud did not answer): the drainer's wake-up."""

    async def sync(self, device: DeviceDescription, *, name: str, username: str) -> DeviceRecord:
        """Record ``device`` and make the cloud agree; return the inventory record.

        Raises :class:`RegistrationPending` when the cloud could not be reached; the intent stays
        in the outbox and the drainer (or the next start) finishes it.
        """
        change = await self._store.transaction(lambda c: self._record(c, device, name, username))
        record = change.record
        if self._cloud is None or self._target is None:
            return record
        if await self._has_open_writes(record.identity):
            await self.drain()
            if await self._has_open_writes(record.identity):
                raise RegistrationPending(self._last_error or "cloud writes are queued")
        updated = await self._inventory.get(record.identity)
        assert updated is not None
        return updated

    async def _has_open_writes(self, identity: str) -> bool:
        return any([await self._outbox.open_entry(kind, identity) for kind in (REGISTER, UPDATE)])

    # -- the ordered sender ------------------------------------------------------------------

    async def drain(self) -> float | None:
        """Send the open outbox entries, oldest first, one at a time.

        Returns None when nothing is left open, else the seconds until sending is due again
        (the cloud did not answer, or an earlier failure's backoff is still running).
        """
        if self._cloud is None or self._target is None:
            return None
        async with self._send_lock:
            wait = self._retry_at - self._monotonic()
            if wait > 0:
                return wait if await self._outbox.depth() else None
            handled: set[int] = set()
            while True:
                entries = [entry for entry in await self._outbox.open_entries() if entry.id not in handled]
                if not entries:
                    self._backoff.reset()
                    return None
                for position, listed in enumerate(entries):
                    handled.add(listed.id)
                    entry = await self._outbox.get(listed.id)  # an earlier send may have closed it
                    if entry is None or entry.state not in (EntryState.PENDING, EntryState.SENT):
                        continue
                    try:
                        await self._send(entry)
                    except RegistrationPending as err:
                        return self._pause(err, len(entries) - position)

    def resume(self) -> None:
        """The cloud answered again: end the backoff so the next drain sends at once."""
        self._retry_at = 0.0
        self._backoff.reset()

    def _pause(self, err: RegistrationPending, queued: int) -> float:
        delay = self._backoff.next_delay()
        self._retry_at = self._monotonic() + delay
        self._last_error = str(err)
        _LOGGER.warning("cloud writes paused for %.1f s (%d queued): %s", delay, queued, err)
        if self.on_backlog is not None:
            self.on_backlog()
        return delay

    async def _send(self, entry: OutboxEntry) -> None:
        if entry.kind == REGISTER:
            await self._send_registration(entry)
        elif entry.kind == UPDATE:
            await self._send_update(entry)
        else:
            await self._outbox.mark_failed(entry.id, f"unknown outbox kind {entry.kind!r}")

    def _record(self, connection: sqlite3.Connection, device: DeviceDescription, name: str, username: str) -> Change:
        """Inventory row and the cloud intent in one transaction: neither exists without the other."""
        change = self._inventory.put(connection, device, name=name, username=username)
        record = change.record
        if self._target is None:
            return change
        now = record.last_seen
        if record.cloud_device_id is None and record.enabled:
            open_entry = connection.execute(
                "SELECT id FROM outbox WHERE kind = ? AND subject = ? AND state IN ('pending', 'sent')",
                (REGISTER, record.identity),
            ).fetchone()
            if open_entry is None:
                Outbox.put(connection, REGISTER, record.identity, self._add_params(record), now)
        elif record.cloud_device_id is not None and change.address_changed:
            Outbox.put(connection, UPDATE, record.identity, self._update_params(record), now, rebuildable=True)
        return change

    def _add_params(self, record: DeviceRecord) -> dict[str, Any]:
        assert self._target is not None
        return {
            "Name": cloud_name(record.name),
            "AccessProtocol": ACCESS_GATEWAY,
            "Type": record.kind.cloud_type,
            "OrganizationId": self._target.organization_id,
            "ClusterId": self._target.cluster_id,
            "GatewayId": self._target.gateway_id,
            "ProtocolType": PROTOCOL_ONVIF,
            "Ip": record.host,
            "Port": record.port,
            "Username": record.username,
            "Description": f"ONVIF {record.manufacturer} {record.model}".strip()[:128],
        }

    @staticmethod
    def _update_params(record: DeviceRecord) -> dict[str, Any]:
        return {"DeviceId": record.cloud_device_id, "Ip": record.host, "Port": record.port, "Username": record.username}

    async def _send_registration(self, entry: OutboxEntry) -> None:
        """AddUserDevice for one entry, exactly once: a ``sent`` entry is looked up first."""
        record = await self._inventory.get(entry.subject)
        if record is None or not record.enabled:
            await self._outbox.mark_failed(entry.id, "device no longer to be registered")
            return
        if record.cloud_device_id is not None:
            await self._store.transaction(lambda c: self._outbox.finish(c, entry.id))
            return
        if entry.state is EntryState.SENT:
            device_id = await self._find_registered(entry)
            if device_id is not None:
                _LOGGER.info(
                    "earlier AddUserDevice had succeeded; adopting it",
                    extra={"device": record.identity, "device_id": device_id},
                )
                await self._adopt(entry, record.identity, device_id)
                return
        password = self._password_for(record.identity)
        if not password:
            # Only a device that answered with a password can be added; it waits in the queue
            # (without holding up the others) until a discovery round reaches it again.
            _LOGGER.info("registration waits until the device answers again", extra={"device": record.identity})
            return
        params = self._add_params(record)
        await self._outbox.mark_sent(entry.id, params)
        try:
            response = await self._call_once("AddUserDevice", dict(params, Password=password), entry)
        except IssError as err:
            if err.retryable:
                raise RegistrationPending(err.code) from err
            await self._outbox.mark_failed(entry.id, err.code)
            await self._inventory.set_fault(record.identity, f"registration refused: {err.code}", "faulty")
            _LOGGER.error("cloud refused device: %s", err.code, extra={"device": record.identity})
            return
        device_id = str(response["Data"]["DeviceId"])
        await self._adopt(entry, record.identity, device_id)
        _LOGGER.info("device registered", extra={"device": record.identity, "device_id": device_id})

    async def _send_update(self, entry: OutboxEntry) -> None:
        """UpdateUserDevice with the device's current address (idempotent: a repeat is harmless).

        The update goes out at the position of the device's *first* unsent change and carries
        its latest state, so later queued updates of the same device are closed unsent.
        """
        read_at = self._outbox.now()
        record = await self._inventory.get(entry.subject)
        if record is None or record.cloud_device_id is None:
            await self._outbox.mark_failed(entry.id, "device not registered")
            return
        params = self._update_params(record)
        await self._outbox.mark_sent(entry.id, params)
        password = self._password_for(record.identity)
        try:
            await self._call_once("UpdateUserDevice", dict(params, Password=password) if password else params, entry)
        except IssError as err:
            if err.retryable:
                raise RegistrationPending(err.code) from err
            await self._outbox.mark_failed(entry.id, err.code)
            _LOGGER.error("cloud refused device update: %s", err.code, extra={"device": record.identity})
            return
        await self._outbox.mark_done(entry.id)
        await self._outbox.supersede_later(entry, read_at)
        _LOGGER.info("device address updated", extra={"device": record.identity, "host": record.host})

    # -- what the reconcile loop asks --------------------------------------------------------

    async def request_update(self, record: DeviceRecord) -> bool:
        """Queue an UpdateUserDevice that makes the cloud's address match ours; False if refused."""
        params = self._update_params(record)
        now = self._clock()
        entry_id = await self._store.transaction(
            lambda c: Outbox.put(c, UPDATE, record.identity, params, now, rebuildable=True)
        )
        return entry_id != 0

    async def reregister(self, identity: str) -> DeviceRecord | None:
        """The cloud lost this device (deleted in the console): add it again, exactly once.

        Its cloud ids are forgotten and a registration is queued in one transaction (queued
        updates of the old DeviceId are closed), then the queue is drained.
        """
        record = await self._inventory.get(identity)
        if record is None or self._target is None:
            return None
        params = self._add_params(record)
        now = self._clock()

        def write(connection: sqlite3.Connection) -> None:
            Inventory.forget_cloud_ids(connection, identity)
            Inventory.set_enabled(connection, identity, True)
            connection.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "
                "WHERE subject = ? AND kind = ? AND state IN ('pending', 'sent')",
                (DELETED_IN_CLOUD, now, identity, UPDATE),
            )
            open_entry = connection.execute(
                "SELECT id FROM outbox WHERE kind = ? AND subject = ? AND state IN ('pending', 'sent')",
                (REGISTER, identity),
            ).fetchone()
            if open_entry is None:
                Outbox.put(connection, REGISTER, identity, params, now)

        await self._store.transaction(write)
        _LOGGER.warning("device deleted in the cloud: registering it again", extra={"device": identity})
        await self.drain()
        return await self._inventory.get(identity)

    async def leave_deleted(self, identity: str) -> None:
        """The cloud deleted this device and the operator wants it left so: forget, never re-add."""
        now = self._clock()

        def write(connection: sqlite3.Connection) -> None:
            Inventory.forget_cloud_ids(connection, identity)
            Inventory.set_enabled(connection, identity, False)
            connection.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "
                "WHERE subject = ? AND state IN ('pending', 'sent')",
                (DELETED_IN_CLOUD, now, identity),
            )

        await self._store.transaction(write)
        _LOGGER.warning("device deleted in the cloud: left deleted (reconcile.on_cloud_delete)", extra={"device": identity})

    async def sync_channels(self, record: DeviceRecord, *, force: bool = False) -> DeviceRecord:
        """Learn the cloud's ChannelIds for a registered device's channels.

        RefreshDeviceChannel makes the platform ask this gateway (over the relay) for the
        device's channels; DescribeDeviceChannel then lists them with their ChannelIds, matched
        to ours by ChannelCode (the video source token). Nothing is called when every live
        channel already has its id (unless ``force``: the cloud lists fewer channels than we
        have), so steady state costs no cloud calls.

        RefreshDeviceChannel is not queued in the outbox: it changes nothing we would have to
        remember (the platform pulls the list from us), and whether it is needed is derived
        from the inventory every time, so it is simply asked again later.
        """
        if self._cloud is None or record.cloud_device_id is None:
            return record
        if not force and all(c.cloud_channel_id for c in record.channels if c.state != "removed"):
            return record
        device_id = record.cloud_device_id
        try:
            await self._cloud.call("RefreshDeviceChannel", {"DeviceId": device_id})
            listed = await self._cloud.call("DescribeDeviceChannel", {"DeviceId": device_id})
        except IssTransportError as err:
            raise RegistrationPending(str(err)) from err
        except IssError as err:
            raise RegistrationPending(f"channels not synced yet: {err.code}") from err
        ids = {str(c["ChannelCode"]): str(c["ChannelId"]) for c in listed.get("Data") or [] if c.get("ChannelCode")}

        def write(connection: sqlite3.Connection) -> None:
            for channel in record.channels:
                channel_id = ids.get(channel.source_token)
                if channel_id and channel_id != channel.cloud_channel_id:
                    Inventory.set_cloud_channel_id(connection, record.identity, channel.source_token, channel_id)

        await self._store.transaction(write)
        updated = await self._inventory.get(record.identity)
        assert updated is not None
        _LOGGER.info(
            "channels synced: %d of %d have cloud ids",
            sum(1 for c in updated.channels if c.cloud_channel_id), len(updated.channels),
            extra={"device": record.identity, "device_id": device_id},
        )
        return updated

    async def _call_once(self, action: str, params: dict[str, Any], entry: OutboxEntry) -> dict[str, Any]:
        assert self._cloud is not None
        try:
            return await self._cloud.call(action, params, retry=False)
        except IssTransportError as err:
            await self._outbox.note_error(entry.id, str(err))
            raise RegistrationPending(str(err)) from err

    async def _find_registered(self, entry: OutboxEntry) -> str | None:
        """The DeviceId of a device this gateway already added with the entry's Ip and Port."""
        wanted = (entry.payload["Ip"], int(entry.payload["Port"]))
        try:
            async for device in self.gateway_devices():
                if (device.get("Ip"), int(device.get("Port") or 0)) == wanted:
                    return str(device["DeviceId"])
        except IssTransportError as err:
            raise RegistrationPending(str(err)) from err
        return None

    async def gateway_devices(self) -> AsyncIterator[dict[str, Any]]:
        """Every device the cloud attaches to this gateway, page by page."""
        assert self._cloud is not None and self._target is not None
        page = 1
        while True:
            response = await self._cloud.call(
                "ListGatewayDevices",
                {"GatewayId": self._target.gateway_id, "PageNumber": page, "PageSize": GATEWAY_DEVICES_PAGE},
            )
            data = response.get("Data") or {}
            devices = data.get("List") or []
            for device in devices:
                yield device
            total = int(data.get("TotalCount") or 0)
            if not devices or page * GATEWAY_DEVICES_PAGE >= total:
                return
            page += 1

    async def _adopt(self, entry: OutboxEntry, identity: str, device_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            Inventory.set_cloud_device_id(connection, identity, device_id)
            self._outbox.finish(connection, entry.id)

        await self._store.transaction(write)
