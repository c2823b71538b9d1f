"""One reconcile cycle: compare the inventory with the cloud's list of this gateway's devices, repair drift.

The cheap read is the whole design: ``ListGatewayDevices`` (100 devices a page) carries every
field drift shows up in (``Ip``, ``Port``, ``Status``, ``ChannelNum``), so a cycle in which
nothing changed costs one call per 100 devices and writes nothing. Everything else is asked only
where that list disagrees with the inventory:

========================================  ==================================================
The list says                             The cycle does
========================================  ==================================================
another Ip/Port than where we reach it    queue UpdateUserDevice (outbox, drained in order)
fewer channels than we have, or a         RefreshDeviceChannel + DescribeDeviceChannel: the
channel of ours has no ChannelId yet      platform pulls our list, we learn the new ids
more channels than we have                nothing: the cloud never deletes channels (spec);
                                          ours stay in the inventory marked ``removed`` and
                                          are reported offline
nothing about one of our devices          DescribeUserDevice to be sure (a page may shift
                                          under a concurrent delete), then per
                                          ``reconcile.on_cloud_delete``: register it again
                                          (exactly once, via the outbox) or leave it deleted
Status 3 (disabled)                       the device is not driven (no PTZ, no recording)
online/offline unlike our health checks   send its DeviceState event again
a device we do not know                   log it once; it is not ours to change
========================================  ==================================================

A device whose health is not known to be online is not "corrected": a camera we cannot reach
may well be where the cloud says, and we would push a stale address.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .health import Liveness
from .inventory import DeviceRecord, Inventory
from .iss.client import IssClient
from .iss.errors import IssError, IssTransportError
from .outbox import Outbox
from .registration import UPDATE, Registrar, RegistrationPending
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

CLOUD_ONLINE: Final = 1
CLOUD_OFFLINE: Final = 2
CLOUD_DISABLED: Final = 3
REREGISTER: Final = "reregister"
GONE_CODES: Final = frozenset({"ResourceNotFound", "InvalidParameterValue.InvalidDeviceId"})
PRUNE_EVERY_SECONDS: Final = 3600.0


@dataclass(slots=True)
class CycleReport:
    """What one cycle saw and did (for logs, metrics and tests)."""

    ok: bool = True
    error: str = ""
    cloud_devices: int = 0
    updates_queued: list[str] = field(default_factory=list)
    channel_syncs: list[str] = field(default_factory=list)
    reregistered: list[str] = field(default_factory=list)
    left_deleted: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    states_resent: list[str] = field(default_factory=list)
    unknown_in_cloud: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        """How many repairs the cycle made or started."""
        return sum(
            len(items)
            for items in (
                self.updates_queued, self.channel_syncs, self.reregistered, self.left_deleted,
                self.disabled, self.enabled, self.states_resent,
            )
        )


class Reconciler:
    """Makes the cloud's record of this gateway's devices match the site, one cycle at a time."""

    def __init__(
        self,
        *,
        store: StateStore,
        inventory: Inventory,
        outbox: Outbox,
        registrar: Registrar,
        cloud: IssClient,
        gateway_id: str,
        on_cloud_delete: str,
        liveness: Callable[[str], Liveness],
        resend_state: Callable[[str], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._outbox = outbox
        self._registrar = registrar
        self._cloud = cloud
        self._gateway_id = gateway_id
        self._on_cloud_delete = on_cloud_delete
        self._liveness = liveness
        self._resend_state = resend_state
        self._monotonic = monotonic
        self._unknown_logged: set[str] = set()
        self._last_prune = float("-inf")
        self.cycles = 0

    async def run_cycle(self) -> CycleReport:
        """Read the cloud's list, repair what differs; a cloud that does not answer ends the cycle."""
        report = CycleReport()
        listed_at = self._outbox.now()
        try:
            listed = {str(device["DeviceId"]): device async for device in self._registrar.gateway_devices()}
        except (IssTransportError, IssError) as err:
            report.ok, report.error = False, str(err)
            _LOGGER.warning("reconcile: cloud list unavailable (%s); the site keeps working", err)
            self.cycles += 1
            return report
        report.cloud_devices = len(listed)
        # The cloud answers: whatever waited for it in the outbox goes now, before new repairs.
        self._registrar.resume()
        await self._drain()
        records = await self._inventory.all()
        ours = {record.cloud_device_id for record in records if record.cloud_device_id}
        await self._note_unknown(listed, ours, report)
        channel_syncs: list[DeviceRecord] = []
        enabled_changes: dict[str, bool] = {}
        for record in records:
            cloud = listed.get(record.cloud_device_id) if record.cloud_device_id else None
            if record.cloud_device_id is None:
                await self._consider_unregistered(record, report)
            elif cloud is None:
                await self._handle_missing(record, report)
            else:
                self._compare_status(record, cloud, enabled_changes, report)
                drifted = await self._address_drifted(record, cloud, listed_at)
                if drifted and await self._registrar.request_update(record):
                    report.updates_queued.append(record.identity)
                if self._channels_drifted(record, cloud):
                    channel_syncs.append(record)
        await self._apply_enabled(enabled_changes)
        if report.updates_queued:
            await self._drain()
        for record in channel_syncs:
            await self._sync_channels(record, report)
        await self._prune()
        self.cycles += 1
        if report.repaired:
            _LOGGER.info(
                "reconcile: %d cloud devices, %d repairs", report.cloud_devices, report.repaired,
                extra={"updates": report.updates_queued, "channels": report.channel_syncs,
                       "reregistered": report.reregistered, "disabled": report.disabled},
            )
        return report

    # -- per device --------------------------------------------------------------------------

    async def _consider_unregistered(self, record: DeviceRecord, report: CycleReport) -> None:
        """A device left deleted earlier is registered again once the policy says so."""
        if not record.enabled and self._on_cloud_delete == REREGISTER:
            await self._reregister(record, report)

    async def _handle_missing(self, record: DeviceRecord, report: CycleReport) -> None:
        device_id = record.cloud_device_id
        try:
            answer = await self._cloud.call("DescribeUserDevice", {"DeviceId": device_id})
        except IssError as err:
            if err.code not in GONE_CODES:
                _LOGGER.warning("reconcile: cannot confirm %s is gone: %s", device_id, err.code, extra={"device": record.identity})
                return
            answer = None
        except IssTransportError as err:
            _LOGGER.warning("reconcile: cannot confirm %s is gone: %s", device_id, err, extra={"device": record.identity})
            return
        if answer is not None:
            gateway_id = str((answer.get("Data") or {}).get("GatewayId") or "")
            if gateway_id == self._gateway_id:
                return  # still ours: the list shifted between pages
            _LOGGER.warning(
                "reconcile: %s now belongs to gateway %s; not driving it here", device_id, gateway_id or "(none)",
                extra={"device": record.identity},
            )
            await self._registrar.leave_deleted(record.identity)
            report.left_deleted.append(record.identity)
            return
        if self._on_cloud_delete == REREGISTER:
            await self._reregister(record, report)
        else:
            await self._registrar.leave_deleted(record.identity)
            report.left_deleted.append(record.identity)

    async def _reregister(self, record: DeviceRecord, report: CycleReport) -> None:
        updated = await self._registrar.reregister(record.identity)
        report.reregistered.append(record.identity)
        if updated is not None and updated.cloud_device_id:
            self._resend_state(record.identity)
            await self._sync_channels(updated, report)

    def _compare_status(
        self, record: DeviceRecord, cloud: dict[str, Any], enabled_changes: dict[str, bool], report: CycleReport
    ) -> None:
        status = int(cloud.get("Status") or 0)
        disabled = status == CLOUD_DISABLED
        if disabled and record.enabled:
            enabled_changes[record.identity] = False
            report.disabled.append(record.identity)
        elif not disabled and not record.enabled:
            enabled_changes[record.identity] = True
            report.enabled.append(record.identity)
        if status not in (CLOUD_ONLINE, CLOUD_OFFLINE):
            return
        health = self._liveness(record.identity)
        if health is Liveness.UNKNOWN:
            return
        if (health is Liveness.ONLINE) != (status == CLOUD_ONLINE):
            self._resend_state(record.identity)
            report.states_resent.append(record.identity)

    async def _address_drifted(self, record: DeviceRecord, cloud: dict[str, Any], listed_at: float) -> bool:
        if (str(cloud.get("Ip") or ""), int(cloud.get("Port") or 0)) == (record.host, record.port):
            return False
        if self._liveness(record.identity) is not Liveness.ONLINE:
            return False  # we do not reach it where we think it is either: wait
        # An update queued, or sent since the list was read, already carries this address.
        return not await self._outbox.open_or_touched_since(UPDATE, record.identity, listed_at)

    def _channels_drifted(self, record: DeviceRecord, cloud: dict[str, Any]) -> bool:
        if int(cloud.get("Status") or 0) != CLOUD_ONLINE:
            return False  # RefreshDeviceChannel needs the device online and enabled
        live = [channel for channel in record.channels if channel.state != "removed"]
        missing_ids = any(not channel.cloud_channel_id for channel in live)
        return missing_ids or int(cloud.get("ChannelNum") or 0) < len(live)

    async def _sync_channels(self, record: DeviceRecord, report: CycleReport) -> None:
        try:
            await self._registrar.sync_channels(record, force=True)
        except RegistrationPending as err:
            _LOGGER.info("reconcile: channels of %s not synced yet: %s", record.identity, err, extra={"device": record.identity})
            return
        report.channel_syncs.append(record.identity)

    # -- whole cycle -------------------------------------------------------------------------

    async def _note_unknown(self, listed: dict[str, dict[str, Any]], ours: set[str], report: CycleReport) -> None:
        for device_id, device in listed.items():
            if device_id in ours:
                continue
            report.unknown_in_cloud.append(device_id)
            if device_id not in self._unknown_logged:
                self._unknown_logged.add(device_id)
                _LOGGER.info(
                    "reconcile: the cloud lists device %s (%s:%s) that this gateway does not know; leaving it alone",
                    device_id, device.get("Ip"), device.get("Port"),
                )

    async def _apply_enabled(self, changes: dict[str, bool]) -> None:
        if not changes:
            return

        def write(connection: sqlite3.Connection) -> None:
            for identity, enabled in changes.items():
                Inventory.set_enabled(connection, identity, enabled)

        await self._store.transaction(write)
        for identity, enabled in changes.items():
            _LOGGER.warning(
                "device %s in the cloud: %s", "enabled" if enabled else "disabled",
                "driven again" if enabled else "no PTZ, no recording until enabled", extra={"device": identity},
            )

    async def _drain(self) -> None:
        await self._registrar.drain()

    async def _prune(self) -> None:
        now = self._monotonic()
        if now - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = now
            pruned = await self._outbox.prune()
            if pruned:
                _LOGGER.info("outbox: %d finished entries pruned", pruned)
