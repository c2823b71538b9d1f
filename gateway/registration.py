"""Registering devices in the cloud exactly once, and keeping their cloud record current.

The one hard case is a lost answer: AddUserDevice reached the cloud, the device was created, but
the gateway crashed or timed out before it read the DeviceId. Calling again would create a
second device. So the intent is committed to the outbox first, marked ``sent`` (durably) just
before the request leaves, and an entry found ``sent`` is resolved by looking the device up by
the exact Ip and Port that request carried (ListGatewayDevices) before anything is sent again.

Passwords are never written to the outbox; they are added from the configuration at send time.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bridges.onvif.models import DeviceDescription

from .inventory import Change, DeviceRecord, Inventory
from .iss.client import IssClient
from .iss.errors import IssError, IssTransportError
from .outbox import EntryState, Outbox, OutboxEntry
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

REGISTER = "register"
UPDATE = "update"
PROTOCOL_ONVIF = 4
ACCESS_GATEWAY = 3
_NAME_FORBIDDEN = re.compile(r"[^\w\s()（）\-]", re.UNICODE)
GATEWAY_DEVICES_PAGE = 100


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
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._outbox = outbox
        self._cloud = cloud
        self._target = target
        self._password_for = password_for

    async def sync(self, device: DeviceDescription, *, name: str, username: str) -> DeviceRecord:
        """Record ``device`` and make the cloud agree; return the inventory record.

        Raises :class:`RegistrationPending` when the cloud could not be reached; the intent stays
        in the outbox and the next call (or the next start) finishes it.
        """
        change = await self._store.transaction(lambda c: self._record(c, device, name, username))
        record = change.record
        if self._cloud is None or self._target is None:
            return record
        if record.cloud_device_id is None:
            await self._resolve_registration(record)
        elif change.address_changed or await self._outbox.open_entry(UPDATE, record.identity):
            await self._resolve_update(record)
        updated = await self._inventory.get(record.identity)
        assert updated is not None
        return updated

    def _record(self, connection: sqlite3.Connection, device: DeviceDescription, name: str, username: str) -> Change:
        """Inventory row and the cloud intent in one transaction: neither exists without the other."""
        change = self._inventory.put(connection, device, name=name, username=username)
        record = change.record
        if self._target is None:
            return change
        now = record.last_seen
        if record.cloud_device_id is None:
            open_entry = connection.execute(
                "SELECT id FROM outbox WHERE kind = ? AND subject = ? AND state IN ('pending', 'sent')",
                (REGISTER, record.identity),
            ).fetchone()
            if open_entry is None:
                Outbox.put(connection, REGISTER, record.identity, self._add_params(record), now)
        elif change.address_changed:
            Outbox.put(connection, UPDATE, record.identity, self._update_params(record), now)
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

    async def _resolve_registration(self, record: DeviceRecord) -> None:
        entry = await self._outbox.open_entry(REGISTER, record.identity)
        if entry is None:
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
        params = dict(entry.payload, Password=self._password_for(record.identity))
        await self._outbox.mark_sent(entry.id)
        try:
            response = await self._call_once("AddUserDevice", params, entry)
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

    async def _resolve_update(self, record: DeviceRecord) -> None:
        entry = await self._outbox.open_entry(UPDATE, record.identity)
        if entry is None:
            return
        # UpdateUserDevice is idempotent: sending the same state twice is harmless.
        params = dict(entry.payload, Password=self._password_for(record.identity))
        await self._outbox.mark_sent(entry.id)
        try:
            await self._call_once("UpdateUserDevice", params, entry)
        except IssError as err:
            if err.retryable:
                raise RegistrationPending(err.code) from err
            await self._outbox.mark_failed(entry.id, err.code)
            _LOGGER.error("cloud refused device update: %s", err.code, extra={"device": record.identity})
            return
        await self._outbox.mark_done(entry.id)
        _LOGGER.info("device address updated", extra={"device": record.identity, "host": record.host})

    async def sync_channels(self, record: DeviceRecord) -> DeviceRecord:
        """Learn the cloud's ChannelIds for a registered device's channels.

        RefreshDeviceChannel makes the platform ask this gateway (over the relay) for the
        device's channels; DescribeDeviceChannel then lists them with their ChannelIds, matched
        to ours by ChannelCode (the video source token). Nothing is called when every live
        channel already has its id, so steady state costs no cloud calls.
        """
        if self._cloud is None or record.cloud_device_id is None:
            return record
        if all(c.cloud_channel_id for c in record.channels if c.state != "removed"):
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
            async for device in self._gateway_devices():
                if (device.get("Ip"), int(device.get("Port") or 0)) == wanted:
                    return str(device["DeviceId"])
        except IssTransportError as err:
            raise RegistrationPending(str(err)) from err
        return None

    async def _gateway_devices(self) -> AsyncIterator[dict[str, Any]]:
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
