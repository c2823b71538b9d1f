"""Test-support operations on a running emulator, shared by the Python API and ``/_emulator/``.

They stand in for what the real platform learns outside the iss API: gateways being activated
and going on/offline, devices connecting, and the channels a gateway reports for a device.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from .actions.devices import (
    address_report_key,
    device_report_key,
    merge_channels,
    require_reachable,
    sync_channel_states,
)
from .actions.rules import new_secret, new_uuid
from .faults import Fault
from .records import (
    ACCESS_GATEWAY,
    DEVICE_NOT_REGISTERED,
    DEVICE_OFFLINE,
    DEVICE_ONLINE,
    GATEWAY_ONLINE,
    ChannelReport,
    Cluster,
    Device,
    Gateway,
)
from .reports import ChannelQuery, ReportedChannel
from .schema import Params
from .state import CallRecord, EmulatorState
from .store import CloudStore

logger = logging.getLogger(__name__)


class EmulatorControl:
    """The admin operations; every write goes through a store transaction."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    # -- call log and faults (memory only) ------------------------------------------------

    def calls(self, action: str | None = None) -> list[CallRecord]:
        return self._state.calls.records(action)

    def clear_calls(self) -> None:
        self._state.calls.clear()

    def add_fault(self, fault: Fault) -> None:
        self._state.faults.add(fault)
        logger.info("fault injected: %s", fault.to_wire())

    def inject_fault(
        self,
        action: str,
        *,
        delay: float = 0.0,
        error: str | None = None,
        drop: bool = False,
        http_status: int | None = None,
        times: int | None = None,
    ) -> Fault:
        """Shorthand for :meth:`add_fault`; see :mod:`sim.cloud.faults` for the kinds."""
        fault = Fault(action, delay, error, drop, http_status, times)
        self.add_fault(fault)
        return fault

    def faults(self) -> list[Fault]:
        return self._state.faults.active()

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def set_rate_limit(self, per_second: int, per_action: dict[str, int] | None = None) -> None:
        self._state.limiter.configure(per_second, per_action)

    # -- gateways -------------------------------------------------------------------------

    async def add_gateway(
        self,
        name: str,
        *,
        gateway_id: str | None = None,
        gw_id: str | None = None,
        cluster_id: str | None = None,
        status: int = GATEWAY_ONLINE,
        description: str = "",
        services: list[dict[str, Any]] | None = None,
    ) -> str:
        """Activate a gateway (no iss action does that); returns its GatewayId."""
        store = self._state.store
        if status not in (0, 1):
            raise ValueError("status must be 0 (offline) or 1 (online)")
        clusters = store.all(Cluster)
        if cluster_id is None:
            if not clusters:
                raise ValueError("no service node exists to attach the gateway to")
            cluster_id = clusters[0].cluster_id
        elif store.get(Cluster, cluster_id) is None:
            raise ValueError(f"unknown ClusterId {cluster_id}")
        gateway = Gateway(
            gateway_id=gateway_id or new_uuid(),
            gw_id=gw_id or new_uuid().replace("-", ""),
            name=name,
            description=description,
            cluster_id=cluster_id,
            status=status,
            created_at=self._state.clock(),
            secret=new_secret(),
            services=list(services or []),
        )
        async with store.transaction():
            if store.get(Gateway, gateway.gateway_id) is not None:
                raise ValueError(f"gateway {gateway.gateway_id} exists")
            store.put(gateway)
        return gateway.gateway_id

    async def set_gateway_status(self, gateway_id: str, status: int) -> None:
        """Gateway on/offline; its registered devices follow (a never-seen device stays unregistered)."""
        store = self._state.store
        async with store.transaction():
            gateway = store.get(Gateway, gateway_id)
            if gateway is None:
                raise LookupError(f"unknown gateway {gateway_id}")
            if status not in (0, 1):
                raise ValueError("status must be 0 (offline) or 1 (online)")
            apply_gateway_status(store, gateway, status)

    # -- devices --------------------------------------------------------------------------

    async def set_device_connection(self, device_id: str, status: int) -> None:
        """What the platform sees of the device's link: 0 not registered, 1 online, 2 offline."""
        if status not in (DEVICE_NOT_REGISTERED, DEVICE_ONLINE, DEVICE_OFFLINE):
            raise ValueError("status must be 0, 1 or 2 (disable with UpdateDeviceStatus)")
        store = self._state.store
        async with store.transaction():
            device = store.get(Device, device_id)
            if device is None:
                raise LookupError(f"unknown device {device_id}")
            device.connection = status
            store.put(device)
            sync_channel_states(store, device)

    async def report_channels(
        self,
        channels: list[ReportedChannel],
        *,
        device_id: str | None = None,
        gateway_id: str | None = None,
        ip: str | None = None,
        port: int | None = None,
        sync: bool = True,
    ) -> list[str]:
        """Declare a device's channels, by DeviceId or by gateway address (GatewayId, Ip, Port).

        The report is kept: AddUserDevice of a device at that address and RefreshDeviceChannel
        read it. With ``sync`` the channels are merged into the matching existing devices at
        once (what the platform does when the gateway reports them). Returns the ids of the
        devices that were updated.
        """
        store = self._state.store
        key = self._report_key(device_id, gateway_id, ip, port)
        wire = [channel.to_wire(position) for position, channel in enumerate(channels, start=1)]
        async with store.transaction():
            if device_id is not None and store.get(Device, device_id) is None:
                raise LookupError(f"unknown device {device_id}")
            if gateway_id is not None and store.get(Gateway, gateway_id) is None:
                raise LookupError(f"unknown gateway {gateway_id}")
            store.put(ChannelReport(key, wire))
            targets = [
                device
                for device in store.all(Device)
                if self._report_matches(device, device_id, gateway_id, ip, port)
            ]
            if sync:
                for device in targets:
                    merge_channels(store, device, wire)
        return [device.device_id for device in targets] if sync else []

    @staticmethod
    def _report_key(device_id: str | None, gateway_id: str | None, ip: str | None, port: int | None) -> str:
        if device_id is not None:
            if gateway_id is not None or ip is not None or port is not None:
                raise ValueError("report by DeviceId or by (GatewayId, Ip, Port), not both")
            return device_report_key(device_id)
        if gateway_id is None or ip is None or port is None:
            raise ValueError("a report needs DeviceId, or GatewayId with Ip and Port")
        ipaddress.IPv4Address(ip)
        if not 1 <= port <= 65535:
            raise ValueError("Port must be 1-65535")
        return address_report_key(gateway_id, ip, port)

    @staticmethod
    def _report_matches(
        device: Device, device_id: str | None, gateway_id: str | None, ip: str | None, port: int | None
    ) -> bool:
        if device_id is not None:
            return device.device_id == device_id
        return device.access_protocol == ACCESS_GATEWAY and (device.gateway_id, device.ip, device.port) == (
            gateway_id,
            ip,
            port,
        )


def apply_gateway_status(store: CloudStore, gateway: Gateway, status: int) -> None:
    """Set a gateway on/offline inside a transaction; its devices and their channels follow."""
    gateway.status = status
    store.put(gateway)
    for device in store.all(Device):
        if device.gateway_id != gateway.gateway_id:
            continue
        if status == GATEWAY_ONLINE:
            device.connection = DEVICE_ONLINE
        elif device.connection != DEVICE_NOT_REGISTERED:
            device.connection = DEVICE_OFFLINE
        store.put(device)
        sync_channel_states(store, device)


async def ask_gateway_for_channels(state: EmulatorState, params: Params) -> None:
    """Before RefreshDeviceChannel of a gateway device: fetch its channels from the channel source.

    The source (a gateway relay) asks the gateway; its answer becomes the device's report, which
    the action then merges. It may raise ``IssError`` (e.g. the gateway did not answer in time).
    Without a source, or for other devices, the stored report is used as it is. A device the
    action would refuse (disabled, unregistered, offline) is refused before the gateway is asked.
    """
    source = state.channel_source
    device = state.store.get(Device, params["DeviceId"])
    if source is None or device is None or device.access_protocol != ACCESS_GATEWAY:
        return
    require_reachable(device)
    channels = await source(ChannelQuery(device.device_id, device.gateway_id, device.ip, device.port))
    if channels is not None:
        await EmulatorControl(state).report_channels(channels, device_id=device.device_id, sync=False)
