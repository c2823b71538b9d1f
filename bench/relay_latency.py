"""Benchmark: what the gateway adds to a PTZ command, against the same ONVIF move made directly.

Starts a simulated site of D cameras and a standalone gateway (static cameras, an API key) in
one process, then sends N ControlDevicePTZ commands round-robin over the cameras, one at a time:

* ``gateway``: a signed iss call to the local API (aiohttp + the gateway's own ``Tc3Signer``,
  which is what the SDK sends) → dispatch → PTZ step controller → ONVIF ContinuousMove;
* ``direct``: the same ContinuousMove (same velocity, same Timeout) through a ``CameraSession``
  of our own, opened like the gateway opens its sessions.

Both paths are warmed up first (connections open, WSDL operations resolved). Commands are
sequential, so neither path waits behind the other's work; each command varies Type/Speed so no
two requests to a camera carry the same signature. With ``--relay M`` it also sends M commands
through the cloud emulator's relay (paced under the emulator's 20/s limit). Prints
``name=value`` lines, the last ``p99_overhead_ms`` (goal ≤ 5 ms)::

    python bench/relay_latency.py --commands 1000 --devices 16
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bridges.onvif.models import DeviceAddress
from bridges.onvif.session import CameraSession
from gateway.config import load_config
from gateway.daemon import Gateway
from gateway.iss import API_VERSION, Tc3Signer
from gateway.logs import configure_logging
from gateway.ptz import MOVE_TIMEOUT_MARGIN_S, PAN_TILT_ZOOM_DIRECTIONS, velocity
from sim.cloud import CloudEmulator, seeds
from sim.site import SimulatedSite

API_ID = "bench"
STEP_SECONDS = 0.5
WARMUP_PER_DEVICE = 3
RELAY_PER_SECOND = 15.0
COMMANDS = [(name, speed) for speed in range(1, 9) for name in PAN_TILT_ZOOM_DIRECTIONS]
"""80 distinct (Type, Speed) pairs: a camera sees each at most once per 80 commands."""


def config_text(root: Path, site: SimulatedSite, api_key: str, cloud: CloudEmulator | None, cloud_key: str) -> str:
    lines = [
        "[gateway]",
        f'gateway_id = "{seeds.GATEWAY_ID}"',
        f'state_dir = "{root / "gateway"}"',
        "[api]",
        'listen = "127.0.0.1:0"',
        f'secret_id = "{API_ID}"',
        f'secret_key = "{api_key}"',
        "[discovery]",
        "multicast = false",
        'interval = "1h"',
        f'password = "{site.password}"',
        "[ptz]",
        f"step_seconds = {STEP_SECONDS}",
    ]
    if cloud is not None:
        lines += [
            "[cloud]", f'secret_id = "{API_ID}"', f'secret_key = "{cloud_key}"',
            f'cluster_id = "{seeds.GUANGZHOU_CLUSTER_ID}"', f'organization_id = "{seeds.SITE_ORGANIZATION_ID}"',
            f'endpoint = "http://{cloud.endpoint}"', "[relay]", f'url = "ws://{cloud.endpoint}/relay"',
        ]
    for device in site.devices:
        lines += ["[[camera]]", f'host = "{device.host}"', f"port = {device.port}", f'password = "{site.password}"']
    return "\n".join(lines) + "\n"


class SignedCaller:
    """One aiohttp session and one signer: the client the SDK would be, minus its thread."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, secret_key: str) -> None:
        self._session = session
        self._endpoint = endpoint
        self._signer = Tc3Signer(API_ID, secret_key)

    async def call(self, action: str, params: dict[str, object]) -> dict[str, object]:
        body = json.dumps(params, separators=(",", ":")).encode()
        signed = self._signer.sign(
            action=action, body=body, host=self._endpoint, timestamp=int(time.time()),
            version=API_VERSION, region="ap-guangzhou",
        )
        async with self._session.post(f"http://{self._endpoint}/", data=body, headers=signed.headers) as response:
            answer: dict[str, object] = (await response.json(content_type=None))["Response"]
        if "Error" in answer:
            raise RuntimeError(f"{action} failed: {answer['Error']}")
        return answer


Send = Callable[[int, str, int], Awaitable[None]]


class DistinctBodies:
    """TC3 has no nonce: the gateway refuses a body repeated within one second as a replay.
    Before an identical command would go out in the same second, wait for the next one
    (outside the measured time)."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, str, int], int] = {}

    async def before(self, device: int, name: str, speed: int) -> None:
        key = (device, name, speed)
        if self._last.get(key) == int(time.time()):
            await asyncio.sleep(1.001 - time.time() % 1)
        self._last[key] = int(time.time())


async def timed(
    commands: int, devices: int, send: Send, *, before: Send | None = None, pause: float = 0.0
) -> list[float]:
    """Latencies (ms) of ``commands`` sequential sends, round-robin over ``devices``; each
    device walks through the 80 (Type, Speed) pairs in turn."""
    plans = [itertools.cycle(COMMANDS) for _ in range(devices)]
    latencies = []
    for number in range(commands):
        device = number % devices
        name, speed = next(plans[device])
        if before is not None:
            await before(device, name, speed)
        started = time.perf_counter()
        await send(device, name, speed)
        latencies.append((time.perf_counter() - started) * 1000)
        if pause:
            await asyncio.sleep(pause)
    return latencies


def summary(name: str, latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = statistics.median(latencies), cuts[98]
    print(f"{name}_commands={len(latencies)}")
    print(f"{name}_p50_ms={p50:.2f}")
    print(f"{name}_p99_ms={p99:.2f}")
    print(f"{name}_max_ms={max(latencies):.2f}")
    return p50, p99


async def main(args: argparse.Namespace) -> None:
    api_key, cloud_key = secrets.token_hex(16), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="relay-latency-bench-") as workdir:
        root = Path(workdir)
        async with (
            SimulatedSite(state_dir=root / "site", cameras=args.devices, nvrs=0, width=320, height=240,
                          host="127.89.0.0", discovery=False) as site,
            CloudEmulator(root / "cloud", API_ID, cloud_key) if args.relay else _nothing() as cloud,
        ):
            config_path = root / "gateway.toml"
            config_path.write_text(config_text(root, site, api_key, cloud, cloud_key))
            config_path.chmod(0o600)
            gateway = Gateway(load_config(config_path))
            task = asyncio.create_task(gateway.run())
            try:
                await run(args, site, gateway, cloud, api_key, cloud_key)
            finally:
                gateway.request_stop()
                await task


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


async def channel_ids(gateway: Gateway, devices: int, cloud: bool) -> list[str]:
    """Channel ids in site order, once the gateway knows every camera (and the cloud its ids)."""
    async with asyncio.timeout(120):
        while True:
            records = {record.host: record for record in await gateway.inventory.all()}
            channels = [c for r in records.values() for c in r.channels]
            if len(records) == devices and all(gateway.devices.channel(c.channel_id) for c in channels) and (
                not cloud or all(c.cloud_channel_id for c in channels)
            ):
                return [records[host].channels[0].channel_id for host in sorted(records)]
            await gateway.wait_for_rounds(gateway.rounds_completed + 1)


async def run(
    args: argparse.Namespace, site: SimulatedSite, gateway: Gateway, cloud: CloudEmulator | None, api_key: str, cloud_key: str
) -> None:
    started = time.monotonic()
    await asyncio.wait_for(gateway.ready.wait(), 60)
    ids = await channel_ids(gateway, args.devices, cloud is not None)
    hosts = sorted(device.host for device in site.devices)
    by_host = {device.host: device for device in site.devices}
    print(f"devices={args.devices}")
    print(f"setup_seconds={time.monotonic() - started:.2f}")

    sessions = [
        CameraSession(DeviceAddress(host, by_host[host].port), site.username, site.password) for host in hosts
    ]
    await asyncio.gather(*(session.open() for session in sessions))
    token = (await sessions[0].describe()).channels[0].source_token
    timeout = STEP_SECONDS + MOVE_TIMEOUT_MARGIN_S

    async def direct(device: int, name: str, speed: int) -> None:
        pan, tilt, zoom = (sign * velocity(speed) for sign in PAN_TILT_ZOOM_DIRECTIONS[name])
        await sessions[device].continuous_move(token, pan, tilt, zoom, timeout=timeout)

    try:
        async with aiohttp.ClientSession() as http:
            local = SignedCaller(http, f"127.0.0.1:{gateway.api_port}", api_key)

            async def through_gateway(device: int, name: str, speed: int) -> None:
                await local.call("ControlDevicePTZ", {"ChannelId": ids[device], "Type": name, "Speed": speed})

            distinct = DistinctBodies()
            warmup = WARMUP_PER_DEVICE * args.devices
            await timed(warmup, args.devices, direct)
            await timed(warmup, args.devices, through_gateway, before=distinct.before)
            direct_p50, direct_p99 = summary("direct", await timed(args.commands, args.devices, direct))
            gateway_latencies = await timed(args.commands, args.devices, through_gateway, before=distinct.before)
            gateway_p50, gateway_p99 = summary("gateway", gateway_latencies)
            if cloud is not None and args.relay:
                await relay_path(args, http, cloud, cloud_key, ids)
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    print(f"p50_overhead_ms={gateway_p50 - direct_p50:.2f}")
    print(f"p99_overhead_ms={gateway_p99 - direct_p99:.2f}")


async def relay_path(
    args: argparse.Namespace, http: aiohttp.ClientSession, cloud: CloudEmulator, cloud_key: str, ids: list[str]
) -> None:
    """The same command through the cloud emulator and its WebSocket relay, paced under 20/s."""
    remote = SignedCaller(http, cloud.endpoint, cloud_key)

    async def via_cloud(device: int, name: str, speed: int) -> None:
        await remote.call("ControlDevicePTZ", {"ChannelId": ids[device], "Type": name, "Speed": speed})

    summary("relay", await timed(args.relay, args.devices, via_cloud, pause=1 / RELAY_PER_SECOND))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--relay", type=int, default=0, metavar="M", help="also send M commands through the cloud relay")
    configure_logging("warning")
    asyncio.run(main(parser.parse_args()))
