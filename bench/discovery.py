"""Benchmark: how many of N simulated devices a discovery round finds, and how fast.

Starts N WS-Discovery devices (default 64) on loopback addresses 127.X.Y.1, 127.X.Y.2, ... in a
child process (one ``WsDiscoveryResponder``; each device answers a multicast Probe after a random
wait of up to ``--app-max-delay`` seconds, 0.5 being the spec's APP_MAX_DELAY that real cameras
use), then measures, ``--rounds`` times each:

* a multicast round of :class:`MulticastProber` from 127.0.0.1 (``--window`` seconds);
* a unicast scan of the /24 networks holding the devices by :class:`UnicastProber`
  (``--concurrency``, ``--timeout`` per host), where the unused addresses never answer.

Prints ``name=value`` lines; ``*_found`` is the worst round, ``*_seconds`` the mean. Run with the
project's virtualenv::

    python bench/discovery.py --devices 100 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Self

from bridges.onvif.discovery import (
    REPLY_RECEIVE_BUFFER,
    REPROBE_INTERVAL,
    MulticastProber,
    MulticastRoundStats,
    UnicastProber,
)
from bridges.onvif.models import Discovered
from gateway.config import expand_hosts
from sim.wsdiscovery_responder import DiscoverableDevice, WsDiscoveryResponder

DEVICES_PER_NETWORK = 250
READY_TIMEOUT = 30.0


def device_address(prefix: str, index: int) -> str:
    """The address of device ``index`` under ``prefix`` (``127.X``): 250 devices per /24."""
    return f"{prefix}.{index // DEVICES_PER_NETWORK}.{1 + index % DEVICES_PER_NETWORK}"


def networks(prefix: str, devices: int) -> list[str]:
    """The /24 networks holding the devices, as unicast_hosts specs."""
    return [f"{prefix}.{n}.0/24" for n in range((devices - 1) // DEVICES_PER_NETWORK + 1)]


# --- the device side (child process) ----------------------------------------------------------


async def serve_devices(prefix: str, count: int, app_max_delay: float) -> None:
    """Answer probes for ``count`` devices until SIGTERM; prints ``ready`` once they are bound."""
    devices = [
        DiscoverableDevice(
            name=f"Bench Camera {index}",
            address=device_address(prefix, index),
            xaddr=f"http://{device_address(prefix, index)}:8000/onvif/device_service",
            mac=f"02:00:00:{index >> 16 & 0xFF:02x}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}",
        )
        for index in range(count)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    async with WsDiscoveryResponder(devices, app_max_delay=app_max_delay):
        print("ready", flush=True)
        await stop.wait()


class DeviceProcess:
    """The child process hosting the devices; always terminated and reaped."""

    def __init__(self, prefix: str, count: int, app_max_delay: float) -> None:
        self.argv = [
            sys.executable, str(Path(__file__).resolve()), "--serve", prefix,
            "--devices", str(count), "--app-max-delay", str(app_max_delay),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError("the device process did not come up")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the gateway side --------------------------------------------------------------------------


def ours(candidates: Sequence[Discovered], prefix: str) -> int:
    """How many candidates are this run's devices (other runs' devices may answer multicast)."""
    return len({c.endpoint_reference for c in candidates if c.address.host.startswith(prefix + ".")})


@dataclasses.dataclass
class Samples:
    """Per-round results of one kind of probing."""

    found: list[int] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)

    async def time(self, search: Awaitable[Sequence[Discovered]], prefix: str) -> None:
        started = time.monotonic()
        candidates = await search
        self.seconds.append(time.monotonic() - started)
        self.found.append(ours(candidates, prefix))


async def measure(arguments: argparse.Namespace, prefix: str) -> dict[str, float]:
    multicast = MulticastProber(
        window=arguments.window,
        interfaces=["127.0.0.1"],
        reprobe_interval=arguments.reprobe_interval,
        receive_buffer=arguments.receive_buffer,
    )
    unicast = UnicastProber(
        timeout=arguments.timeout, concurrency=arguments.concurrency, bind_address="127.0.0.1"
    )
    hosts = expand_hosts(networks(prefix, arguments.devices))
    multicast_samples, unicast_samples = Samples(), Samples()
    rounds: list[MulticastRoundStats] = []
    for _ in range(arguments.rounds):
        await multicast_samples.time(multicast.search(), prefix)
        rounds.append(multicast.last_round or MulticastRoundStats())
        await unicast_samples.time(unicast.scan(hosts), prefix)
    return {
        "devices": arguments.devices,
        "app_max_delay": arguments.app_max_delay,
        "rounds": arguments.rounds,
        "multicast_window": arguments.window,
        "multicast_reprobe_interval": arguments.reprobe_interval,
        "multicast_found": min(multicast_samples.found),
        "multicast_found_max": max(multicast_samples.found),
        "multicast_seconds": round(statistics.mean(multicast_samples.seconds), 2),
        "multicast_settled_seconds": round(max(r.settled_seconds for r in rounds), 2),
        "multicast_probes": rounds[-1].probes_sent,
        "multicast_reply_buffer_bytes": rounds[-1].reply_buffer_bytes,
        "unicast_hosts": len(hosts),
        "unicast_found": min(unicast_samples.found),
        "unicast_seconds": round(statistics.mean(unicast_samples.seconds), 2),
    }


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure multicast and unicast discovery of loopback devices."
    )
    parser.add_argument("--devices", type=int, default=64, help="simulated devices (default 64)")
    parser.add_argument("--app-max-delay", type=float, default=0.5, help="devices' answer spread, seconds")
    parser.add_argument("--window", type=float, default=3.0, help="multicast round length, seconds")
    parser.add_argument("--timeout", type=float, default=1.0, help="unicast per-host timeout, seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="unicast hosts probed at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument(
        "--reprobe-interval", type=float, default=REPROBE_INTERVAL, help="seconds between multicast Probes"
    )
    parser.add_argument(
        "--receive-buffer",
        type=int,
        default=REPLY_RECEIVE_BUFFER,
        help="reply SO_RCVBUF asked for (0: default)",
    )
    parser.add_argument("--serve", metavar="PREFIX", help=argparse.SUPPRESS)  # child process mode
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.devices <= 10 * DEVICES_PER_NETWORK:
        parser.error(f"--devices must be between 1 and {10 * DEVICES_PER_NETWORK}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if arguments.serve:
        asyncio.run(serve_devices(arguments.serve, arguments.devices, arguments.app_max_delay))
        return 0
    prefix = f"127.{64 + secrets.randbelow(180)}"
    with DeviceProcess(prefix, arguments.devices, arguments.app_max_delay):
        # Each device multicasts Hello within --app-max-delay of starting; let those pass so that
        # the first round counts answers to its Probes only.
        time.sleep(arguments.app_max_delay + 0.5)
        results = asyncio.run(measure(arguments, prefix))
    for name, value in results.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
