"""Discovery rounds over a real interface, run inside a network namespace by ``test_discovery.py``.

The namespace holds only ``lo`` and one veth end, so the rounds use the production defaults (the
``wsdiscovery`` package picks the interfaces, probes leave from 0.0.0.0) without any traffic
reaching a real network. Prints one JSON object:

* ``default``: a multicast-only round with no interfaces configured;
* ``configured``: a round from ``--interface`` that also probes ``--device`` by unicast;
* ``port_busy``: a multicast round while port 3702 is held by a socket that does not share it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import json
import logging
import socket
import sys
import threading
from typing import Any

from wsdiscovery.threaded import AddressMonitorThread, NetworkingThread

from bridges.onvif.discovery import WSD_PORT, DeviceFinder, MulticastProber
from gateway.config import DiscoverySection, Duration


def describe(finder: DeviceFinder, candidates: list[Any]) -> dict[str, Any]:
    report = finder.last_report
    assert report is not None and report.multicast_round is not None
    return {
        "candidates": [
            dataclasses.asdict(candidate) | {"scopes": sorted(candidate.scopes)} for candidate in candidates
        ],
        "sources": list(report.multicast_round.source_addresses),
        "unicast": report.unicast,
        "multicast": report.multicast,
    }


async def find_with(discovery: DiscoverySection) -> dict[str, Any]:
    finder = DeviceFinder(discovery)
    return describe(finder, await finder.find())


async def search_while_port_is_held(window: float) -> dict[str, Any]:
    error = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("0.0.0.0", WSD_PORT))  # no SO_REUSEADDR: nobody else may bind the port
        try:
            await MulticastProber(window=window).search()
        except OSError as exc:
            error = errno.errorcode.get(exc.errno or 0, str(exc))
    threads_left = [
        thread.name
        for thread in threading.enumerate()
        if isinstance(thread, NetworkingThread | AddressMonitorThread) or thread.name == "wsdiscovery-round"
    ]
    return {"error": error, "threads_left": threads_left}


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    window = Duration(arguments.window)
    return {
        "default": await find_with(DiscoverySection(probe_timeout=window)),
        "configured": await find_with(
            DiscoverySection(
                probe_timeout=window, interfaces=(arguments.interface,), unicast_hosts=(arguments.device,)
            )
        ),
        "port_busy": await search_while_port_is_held(arguments.window),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", required=True, help="the device's address, probed by unicast")
    parser.add_argument("--interface", required=True, help="this namespace's veth address")
    parser.add_argument("--window", type=float, default=1.0, help="multicast round length, seconds")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(run(arguments))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
