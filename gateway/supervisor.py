"""Keeping the cloud's view of the site true without ever making the site wait for the cloud.

:class:`SiteSupervisor` owns, for the daemon's lifetime:

* the **health checks** (:class:`~gateway.health.HealthMonitor`), every
  ``reconcile.check_interval``; settled changes are stored in the inventory, sent to the
  platform as ``DeviceState`` events, and a device that went offline asks for a discovery round
  (it may have moved to another address);
* the **reconcile cycle** (:class:`~gateway.reconcile.Reconciler`), every ``reconcile.interval``;
* the **outbox drainer** (:class:`~gateway.outbox.OutboxDrainer`), which sends queued cloud
  writes in order and retries with backoff while the cloud does not answer;
* the **state publisher** (:class:`~gateway.state_events.DeviceStatePublisher`), which resends
  every device's state after each relay reconnection.

Timers: APScheduler 3's ``AsyncIOScheduler`` with one interval job per timer. It gives what a
hand-written loop would have to re-implement: fixed-rate runs (the next check is due
``interval`` after the previous one *started*, so a slow round does not push the schedule),
no overlap (``max_instances=1``: a round still running when the next is due makes that one
skipped, not stacked), coalescing of missed runs, and one place to see both timers. Job
coroutines run as tasks the supervisor tracks; at shutdown the scheduler is stopped, then
those tasks are cancelled and awaited, like every other background task of the daemon.

Nothing here is awaited by recording, PTZ or the local API: cloud trouble only delays the
cloud's view.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final, Self

from bridges.onvif.models import DeviceAddress

from .config import CameraEntry, Config
from .health import DeviceTarget, HealthChange, HealthMonitor, Liveness, check_timeout_for
from .inventory import DeviceRecord, Inventory
from .iss.client import IssClient
from .metrics import GatewayMetrics
from .outbox import Outbox, OutboxDrainer
from .reconcile import CycleReport, Reconciler
from .registration import Registrar
from .relay import RelayLink
from .state_events import DeviceStatePublisher
from .store import StateStore
from .timers import JobTimers

_LOGGER = logging.getLogger(__name__)

HEALTH_JOB: Final = "health"
RECONCILE_JOB: Final = "reconcile"
FIRST_RECONCILE_DELAY: Final = 2.0
"""The first reconcile cycle waits this long so the first health round has settled something."""


class SiteSupervisor:
    """Health checks, reconcile cycles, queued cloud writes and device-state events; an async context manager."""

    def __init__(
        self,
        *,
        config: Config,
        store: StateStore,
        inventory: Inventory,
        outbox: Outbox,
        metrics: GatewayMetrics,
        registrar: Registrar | None = None,
        cloud: IssClient | None = None,
        relay: RelayLink | None = None,
        session_address: Callable[[str], DeviceAddress | None] = lambda identity: None,
        password_for: Callable[[str], str] = lambda identity: "",
        request_discovery: Callable[[], None] = lambda: None,
        health: HealthMonitor | None = None,
    ) -> None:
        """``session_address``/``password_for`` come from the device manager (how a device was
        last reached); ``request_discovery`` wakes the discovery loop."""
        self._config = config
        self._inventory = inventory
        self._outbox = outbox
        self._metrics = metrics
        self._registrar = registrar
        self._cloud = cloud
        self._relay = relay
        self._session_address = session_address
        self._password_for = password_for
        self._request_discovery = request_discovery
        reconcile = config.reconcile
        self.health = health or HealthMonitor(
            offline_after=reconcile.offline_after,
            check_timeout=check_timeout_for(reconcile.check_interval),
            target_for=self._target_for,
            activity=metrics.recorder,
        )
        self.publisher = (
            DeviceStatePublisher(relay, self._state_event, self._registered_identities, on_sent=metrics.add_upstream_bytes)
            if relay is not None
            else None
        )
        self.drainer = OutboxDrainer(registrar.drain) if registrar is not None and cloud is not None else None
        self.reconciler = (
            Reconciler(
                store=store,
                inventory=inventory,
                outbox=outbox,
                registrar=registrar,
                cloud=cloud,
                gateway_id=config.gateway.gateway_id,
                on_cloud_delete=reconcile.on_cloud_delete,
                liveness=self.health.device_state,
                resend_state=self._resend_state,
            )
            if registrar is not None and cloud is not None
            else None
        )
        self._records: dict[str, DeviceRecord] = {}
        self._timers = JobTimers("site supervisor")
        self._stack: AsyncExitStack | None = None
        self._progress = asyncio.Condition()
        self.last_report: CycleReport | None = None
        self._register_metrics()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.health)
            if self.publisher is not None and self._relay is not None:
                self._relay.add_connect_listener(self._on_relay_connected)
                self._own(stack, self.publisher.run(), "device-state publisher")
            if self.drainer is not None and self._registrar is not None:
                self._registrar.on_backlog = self.drainer.wake
                self._own(stack, self.drainer.run(), "outbox drainer")
            stack.callback(self._metrics.registry.add_collector(self._collect_metrics))
            self._start_scheduler()
            stack.push_async_callback(self._stop_scheduler)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def _own(self, stack: AsyncExitStack, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            _LOGGER.info("%s stopped", name)

        stack.push_async_callback(stop)

    def _start_scheduler(self) -> None:
        reconcile = self._config.reconcile
        scheduler = self._timers.start()
        now = dt.datetime.now(dt.UTC)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(
            self._timers.tracked(self.run_health_round), "interval", seconds=float(reconcile.check_interval),
            id=HEALTH_JOB, next_run_time=now, **common,
        )
        if self.reconciler is not None:
            first = now + dt.timedelta(seconds=min(FIRST_RECONCILE_DELAY, float(reconcile.interval)))
            scheduler.add_job(
                self._timers.tracked(self.run_reconcile_cycle), "interval", seconds=float(reconcile.interval),
                id=RECONCILE_JOB, next_run_time=first, **common,
            )

    async def _stop_scheduler(self) -> None:
        """Stop the timers, then cancel and await whatever job is still running."""
        await self._timers.stop()
        _LOGGER.info("health checks and reconcile stopped")

    # -- what others ask ---------------------------------------------------------------------

    def is_disabled(self, identity: str) -> bool:
        """Whether the cloud disabled (or deleted and left) the device: no PTZ, no recording."""
        record = self._records.get(identity)
        return record is not None and not record.enabled

    def device_state(self, identity: str) -> Liveness:
        """The health checks' settled view of a device."""
        return self.health.device_state(identity)

    async def monitor_figures(self) -> dict[str, int]:
        """DescribeGatewayMonitor's ``Data``, computed from the inventory and the health checks."""
        records = await self._refresh_records()
        counts = self.health.counts(records)
        channels = [(record, channel) for record in records for channel in record.channels if channel.state != "removed"]
        pulled = sum(1 for _, channel in channels if self.health.channel_streaming(channel))
        channel_online = counts.channels[Liveness.ONLINE]
        device_online = counts.devices[Liveness.ONLINE]
        return {
            "DeviceTotal": len(records),
            "DeviceOnline": device_online,
            "DeviceOffline": len(records) - device_online,
            "ChannelTotal": len(channels),
            "ChannelOnline": channel_online,
            "ChannelOffline": len(channels) - channel_online,
            "UpFlow": self._metrics.upflow_kbps(),
            "ChannelPull": pulled,
            "ChannelUnPull": len(channels) - pulled,
        }

    async def wait_for_health_rounds(self, count: int) -> None:
        """Until ``count`` health rounds have completed since start."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.health.rounds >= count)

    async def wait_for_cycles(self, count: int) -> None:
        """Until ``count`` reconcile cycles have completed since start."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.reconciler is not None and self.reconciler.cycles >= count)

    # -- jobs --------------------------------------------------------------------------------

    async def run_health_round(self) -> list[HealthChange]:
        """Check every device once; store, publish and act on what changed."""
        started = time.monotonic()
        records = await self._refresh_records()
        changes = await self.health.check(records)
        if changes:
            await self._store_health(changes)
            for change in changes:
                self._resend_state(change.identity)
            if any(change.went_offline for change in changes):
                self._request_discovery()
        self._health_seconds.set(time.monotonic() - started)
        await self._notify_progress()
        return changes

    async def run_reconcile_cycle(self) -> CycleReport | None:
        """One reconcile cycle (nothing without a cloud)."""
        if self.reconciler is None:
            return None
        report = await self.reconciler.run_cycle()
        self.last_report = report
        self._cycles.inc(outcome="ok" if report.ok else "cloud_unavailable")
        if report.disabled or report.enabled or report.reregistered or report.left_deleted:
            await self._refresh_records()
        await self._notify_progress()
        return report

    async def _notify_progress(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _refresh_records(self) -> list[DeviceRecord]:
        records = await self._inventory.all()
        self._records = {record.identity: record for record in records}
        return records

    async def _store_health(self, changes: list[HealthChange]) -> None:
        devices: dict[str, str] = {}
        channels: dict[tuple[str, str], str] = {}
        for change in changes:
            record = self._records.get(change.identity)
            if record is None:
                continue
            if change.device is not Liveness.UNKNOWN:
                devices[change.identity] = change.device.value
            for channel in record.channels:
                state = self.health.channel_state(change.identity, channel.source_token)
                if channel.state != "removed" and state is not Liveness.UNKNOWN:
                    channels[(change.identity, channel.source_token)] = state.value
        await self._inventory.set_health(devices, channels)

    # -- device-state events -----------------------------------------------------------------

    def _resend_state(self, identity: str) -> None:
        if self.publisher is not None:
            self.publisher.mark(identity)

    def _on_relay_connected(self) -> None:
        """The platform just marked every device online; tell it the truth, and try the queue."""
        if self.publisher is not None:
            self.publisher.mark_all()
        if self._registrar is not None and self.drainer is not None:
            self._registrar.resume()
            self.drainer.wake()

    async def _registered_identities(self) -> list[str]:
        return [record.identity for record in await self._refresh_records() if record.cloud_device_id]

    async def _state_event(self, identity: str) -> dict[str, Any] | None:
        """The DeviceState body for a device, from the latest records and health checks."""
        record = self._records.get(identity)
        if record is None or record.cloud_device_id is None:
            return None
        device = self.health.device_state(identity)
        if device is Liveness.UNKNOWN:
            return None
        channels: list[dict[str, Any]] = []
        for channel in record.channels:
            if not channel.cloud_channel_id:
                continue
            if channel.state == "removed":
                channels.append({"ChannelId": channel.cloud_channel_id, "State": 0, "Status": 0})
                continue
            state = self.health.channel_state(identity, channel.source_token)
            if state is Liveness.UNKNOWN:
                continue
            item: dict[str, Any] = {"ChannelId": channel.cloud_channel_id, "State": int(state is Liveness.ONLINE)}
            if self.health.knows_streaming:
                item["Status"] = int(self.health.channel_streaming(channel))
            channels.append(item)
        return {"DeviceId": record.cloud_device_id, "Online": device is Liveness.ONLINE, "Channels": channels}

    # -- health targets ----------------------------------------------------------------------

    def _target_for(self, record: DeviceRecord) -> DeviceTarget:
        """Where the device was last reached (its session's scheme), with the credentials that worked."""
        entry = self._camera_entry(record)
        https = entry.https if entry is not None else False
        address = self._session_address(record.identity)
        if address is not None and (address.host, address.port) == (record.host, record.port):
            https = address.https
        password = self._password_for(record.identity) or (entry.password if entry else self._config.discovery.password)
        username = record.username or (entry.username if entry else self._config.discovery.username)
        return DeviceTarget(DeviceAddress(record.host, record.port, https), username, password)

    def _camera_entry(self, record: DeviceRecord) -> CameraEntry | None:
        return next((e for e in self._config.cameras if (e.host, e.port) == (record.host, record.port)), None)

    # -- metrics -----------------------------------------------------------------------------

    def _register_metrics(self) -> None:
        registry = self._metrics.registry
        self._devices_gauge = registry.gauge("ivc_gateway_devices", "Devices by health state.", ("state",))
        self._channels_gauge = registry.gauge("ivc_gateway_channels", "Channels by health state (removed: gone from the device).", ("state",))
        self._disabled_gauge = registry.gauge("ivc_gateway_devices_disabled", "Devices the cloud disabled (not driven).")
        self._outbox_gauge = registry.gauge("ivc_gateway_outbox_depth", "Cloud writes waiting in the outbox.")
        self._state_backlog = registry.gauge("ivc_gateway_device_state_backlog", "Device states waiting for the relay.")
        self._relay_gauge = registry.gauge("ivc_gateway_relay_connected", "1 while the relay link is up.")
        self._disk_gauge = registry.gauge("ivc_gateway_state_dir_free_bytes", "Free bytes on the state directory's file system.")
        self._health_seconds = registry.gauge("ivc_gateway_health_round_seconds", "Duration of the last health round.")
        self._cycles = registry.counter("ivc_gateway_reconcile_cycles_total", "Reconcile cycles by outcome.", ("outcome",))

    async def _collect_metrics(self) -> None:
        records = await self._refresh_records()
        counts = self.health.counts(records)
        self._devices_gauge.replace({(state.value,): count for state, count in counts.devices.items()})
        channel_counts: dict[tuple[str, ...], float] = {(state.value,): count for state, count in counts.channels.items()}
        channel_counts[("removed",)] = sum(1 for r in records for c in r.channels if c.state == "removed")
        self._channels_gauge.replace(channel_counts)
        self._disabled_gauge.set(sum(1 for record in records if not record.enabled))
        self._outbox_gauge.set(await self._outbox.depth())
        self._state_backlog.set(self.publisher.backlog if self.publisher is not None else 0)
        self._relay_gauge.set(1 if self._relay is not None and self._relay.connected.is_set() else 0)
        self._disk_gauge.set(await asyncio.to_thread(_free_bytes, self._config.gateway.state_dir))


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
