"""Benchmark: reconcile cycles for 1,000 channels against the cloud emulator over loopback.

The site side is simulated cheaply (no RTSP, no ONVIF): 200 cameras and 50 NVRs of 16 channels
are written to a real inventory, registered in the emulator, and given their channel ids. The
cloud side is the real emulator with the spec's rate limit (20 requests/s per action) and the
gateway's own client with its rate limiter. Then three cycles are measured:

* nothing changed: the cost of steady state (one ListGatewayDevices per 100 devices);
* 10 changes: 4 addresses changed in the console (pushed back), 3 NVRs with a new channel,
  2 devices disabled in the console, 1 device deleted in the console (registered again);
* nothing changed again: back to steady state.

Prints ``name=value`` lines::

    python bench/reconcile.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bridges.onvif.models import ChannelDescription, DeviceAddress, DeviceDescription, DeviceKind
from gateway.health import Liveness
from gateway.inventory import DeviceRecord, Inventory
from gateway.iss import Tc3Signer
from gateway.iss.client import IssClient
from gateway.iss.ratelimit import ActionRateLimiter
from gateway.logs import configure_logging
from gateway.outbox import Outbox
from gateway.reconcile import CycleReport, Reconciler
from gateway.registration import CloudTarget, Registrar
from gateway.store import StateStore
from sim.cloud import CloudEmulator, seeds
from sim.cloud.reports import ReportedChannel

SPEC_RATE_LIMIT = 20
NVR_CHANNELS = 16
WRITES = frozenset({"AddUserDevice", "UpdateUserDevice", "DeleteUserDevice", "UpdateDeviceStatus", "RefreshDeviceChannel"})


def device(index: int, channels: int) -> DeviceDescription:
    """A device at 127.91.x.y:80 with ``channels`` video sources."""
    return DeviceDescription(
        identity=f"mac:02:91:00:00:{index >> 8:02x}:{index & 0xFF:02x}",
        kind=DeviceKind.IPC if channels == 1 else DeviceKind.NVR,
        address=DeviceAddress(f"127.91.{index >> 8}.{index & 0xFF}", 80),
        manufacturer="SimVision",
        model="SV-IPC-200" if channels == 1 else "SV-NVR-16",
        channels=tuple(ChannelDescription(f"VideoSource_{i}", i, f"ch{i}") for i in range(1, channels + 1)),
    )


def reported(description: DeviceDescription) -> list[ReportedChannel]:
    return [ReportedChannel(c.name, code=c.source_token) for c in description.channels]


class Bench:
    """The inventory, the emulator and two clients: a fast one to set up, the gateway's to measure."""

    def __init__(self, cloud: CloudEmulator, store: StateStore, secret_id: str, secret_key: str) -> None:
        self.cloud = cloud
        self.store = store
        self.inventory = Inventory(store)
        self.outbox = Outbox(store)
        self._signer = Tc3Signer(secret_id, secret_key)
        self.target = CloudTarget(seeds.GATEWAY_ID, seeds.SITE_ORGANIZATION_ID, seeds.GUANGZHOU_CLUSTER_ID)
        self.descriptions: dict[str, DeviceDescription] = {}

    def client(self, *, fast: bool) -> IssClient:
        limiter = ActionRateLimiter(rates={}, default_rate=10_000) if fast else ActionRateLimiter()
        return IssClient(f"http://{self.cloud.endpoint}", self._signer, region="ap-guangzhou", limiter=limiter)

    def registrar(self, client: IssClient) -> Registrar:
        return Registrar(self.store, self.inventory, self.outbox, client, self.target, lambda identity: "bench-pw")

    async def populate(self, cameras: int, nvrs: int) -> int:
        """Register every device with its channels; returns the channel count."""
        async with self.client(fast=True) as client:
            registrar = self.registrar(client)
            for index in range(1, cameras + nvrs + 1):
                description = device(index, 1 if index <= cameras else NVR_CHANNELS)
                self.descriptions[description.identity] = description
                address = description.address
                await self.cloud.report_channels(
                    reported(description), gateway_id=seeds.GATEWAY_ID, ip=address.host, port=address.port
                )
                record = await registrar.sync(description, name=f"dev{index}", username="admin")
                await registrar.sync_channels(record)
        return sum(len(d.channels) for d in self.descriptions.values())

    async def make_ten_changes(self, records: list[DeviceRecord]) -> None:
        """4 console address edits, 3 NVR channels added, 2 console disables, 1 console delete."""
        cameras = [r for r in records if r.kind is DeviceKind.IPC]
        nvrs = [r for r in records if r.kind is DeviceKind.NVR]
        async with self.client(fast=True) as operator:
            for record in cameras[:4]:
                await operator.call("UpdateUserDevice", {"DeviceId": record.cloud_device_id, "Ip": "10.0.0.1"})
            for record in cameras[4:6]:
                await operator.call("UpdateDeviceStatus", {"DeviceId": record.cloud_device_id, "Status": 3})
            await operator.call("DeleteUserDevice", {"DeviceId": cameras[6].cloud_device_id})
        for record in nvrs[:3]:
            grown = replace(
                self.descriptions[record.identity],
                channels=(*self.descriptions[record.identity].channels, ChannelDescription("VideoSource_17", 17, "ch17")),
            )
            await self.inventory.upsert(grown, name=record.name, username="admin")
            assert record.cloud_device_id
            await self.cloud.report_channels(reported(grown), device_id=record.cloud_device_id, sync=False)

    async def cycle(self, reconciler: Reconciler) -> tuple[CycleReport, float, collections.Counter[str]]:
        self.cloud.clear_calls()
        started = time.monotonic()
        report = await reconciler.run_cycle()
        elapsed = time.monotonic() - started
        return report, elapsed, collections.Counter(call.action for call in self.cloud.calls())


def print_cycle(name: str, report: CycleReport, elapsed: float, calls: collections.Counter[str]) -> None:
    print(f"{name}_wall_seconds={elapsed:.3f}")
    print(f"{name}_calls_total={sum(calls.values())}")
    print(f"{name}_writes={sum(n for action, n in calls.items() if action in WRITES)}")
    for action, count in sorted(calls.items()):
        print(f"{name}_calls_{action}={count}")
    print(f"{name}_repairs={report.repaired}")


async def main(args: argparse.Namespace) -> None:
    secret_id, secret_key = "AKIDbench", secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as workdir:
        root = Path(workdir)
        async with CloudEmulator(root / "cloud", secret_id, secret_key, rate_limit=10_000) as cloud, StateStore(root / "gw") as store:
            bench = Bench(cloud, store, secret_id, secret_key)
            started = time.monotonic()
            channels = await bench.populate(args.cameras, args.nvrs)
            print(f"devices={args.cameras + args.nvrs}")
            print(f"channels={channels}")
            print(f"setup_seconds={time.monotonic() - started:.1f}")
            cloud.set_rate_limit(SPEC_RATE_LIMIT)
            async with bench.client(fast=False) as client:
                reconciler = Reconciler(
                    store=store, inventory=bench.inventory, outbox=bench.outbox, registrar=bench.registrar(client),
                    cloud=client, gateway_id=seeds.GATEWAY_ID, on_cloud_delete="reregister",
                    liveness=lambda identity: Liveness.ONLINE, resend_state=lambda identity: None,
                )
                print_cycle("unchanged", *await bench.cycle(reconciler))
                await bench.make_ten_changes(await bench.inventory.all())
                report, elapsed, calls = await bench.cycle(reconciler)
                print_cycle("ten_changes", report, elapsed, calls)
                print(
                    "ten_changes_repairs_by_kind="
                    f"updates:{len(report.updates_queued)},channels:{len(report.channel_syncs)},"
                    f"disabled:{len(report.disabled)},reregistered:{len(report.reregistered)}"
                )
                print_cycle("unchanged_again", *await bench.cycle(reconciler))
            errors = [f"{c.action}:{c.code}" for c in cloud.calls() if c.code != "OK"]
            print(f"cloud_errors={len(errors)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--nvrs", type=int, default=50)
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))
