"""Test helpers for WS-Discovery: run the ``wsdiscovery`` client on loopback, probe by hand, namespaces.

Shared by the simulator's responder tests and the daemon's discovery tests:

* :func:`wsdiscovery_on_loopback` / the ``wsdiscovery_loopback`` fixture: let the ``wsdiscovery``
  package's threaded client discover responders on 127.0.0.0/8 (it ignores loopback by default);
  the ``loopback_multicast`` fixture only checks that multicast works on ``lo``.
* :func:`running_wsdiscovery_client` and :func:`search_until_found`: drive ``ThreadedWSDiscovery``
  from async tests without blocking the event loop.
* :class:`ProbeClient`: a plain asyncio UDP prober, for checks the threaded client hides (it
  filters results itself and never reads replies to unicast probes).
* :func:`veth_namespace_pair`: two network namespaces joined by a veth pair.

Run as a script (``python wsd_fixtures.py --expect URN``) it probes with ``ThreadedWSDiscovery`` on
every non-loopback interface and prints what it found as JSON; tests start it inside a namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast
from unittest import mock

import pytest
import wsdiscovery.threaded
from wsdiscovery.actions import NS_ACTION_PROBE_MATCH, constructProbe
from wsdiscovery.discovery import ThreadedWSDiscovery
from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
from wsdiscovery.namespaces import NS_ACTION_BYE, NS_ACTION_HELLO
from wsdiscovery.qname import QName
from wsdiscovery.scope import Scope

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WSD_PORT = 3702
LOOPBACK_INTERFACE = "127.0.0.1"
#: This file, for running it as the in-namespace probe script.
PROBE_SCRIPT = Path(__file__).resolve()
_IP_MULTICAST_ALL = 49  # Linux; not exported by the socket module


# --- the wsdiscovery package on loopback -------------------------------------------------------


@contextlib.contextmanager
def wsdiscovery_on_loopback(interface: str = LOOPBACK_INTERFACE) -> Iterator[None]:
    """Make ``wsdiscovery``'s threaded client (and publisher) use the loopback interface only.

    What it patches: ``wsdiscovery.threaded._getNetworkAddrs``, the one function that decides on
    which interfaces the client works. ``AddressMonitorThread`` calls it at start (and every 5 s)
    and, for each address returned, the client joins 239.255.255.250 on that interface and opens
    a socket with ``IP_MULTICAST_IF`` set to it, from which it multicasts its probes. The
    replacement returns only ``interface`` (127.0.0.1) for IPv4 and nothing for IPv6.

    Why: the package's version (``wsdiscovery.util._getNetworkAddrs``) drops every loopback and
    link-local address, so on a test host the client would probe on the real NICs only and never
    reach responders on 127.0.0.0/8. Returning loopback *only* (rather than adding it) also keeps
    every test probe on ``lo``, so no test traffic leaves 127.0.0.0/8.

    Why that name: ``threaded.py`` does ``from .util import _getNetworkAddrs``, so it holds its own
    reference; patching ``wsdiscovery.util`` would change nothing. Sockets, message handling and
    timing are the package's real code, untouched.

    Multicast on ``lo``: ``ip link show lo`` has no MULTICAST flag, but Linux delivers multicast
    sent with ``IP_MULTICAST_IF=127.0.0.1`` to members joined on ``lo`` regardless (the flag is
    advisory; routing ignores it), so no host state needs changing. The ``wsdiscovery_loopback``
    fixture checks delivery first with :func:`require_loopback_multicast`.
    """
    loopback = ipaddress.ip_address(interface)

    def loopback_only(protocol_version: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [loopback] if protocol_version == socket.AF_INET else []

    with mock.patch.object(wsdiscovery.threaded, "_getNetworkAddrs", loopback_only):
        yield


def require_loopback_multicast(interface: str = LOOPBACK_INTERFACE, timeout: float = 1.0) -> None:
    """Skip the test unless a datagram multicast on ``lo`` reaches a member joined on ``lo``.

    Linux does deliver it without ``ip link set lo multicast on``; this guards against a kernel or
    sandbox that does not, with the fix in the skip reason instead of a confusing timeout.
    """
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        if sys.platform.startswith("linux"):
            receiver.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        receiver.bind((MULTICAST_GROUP, 0))
        membership = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton(interface))
        receiver.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        token = secrets.token_bytes(16)
        sender.sendto(token, (MULTICAST_GROUP, receiver.getsockname()[1]))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([receiver], [], [], remaining)
            if readable and receiver.recv(64) == token:
                return
    pytest.skip(
        f"multicast on the loopback interface ({interface}) is not delivered here; "
        "`ip link set lo multicast on` (as root) may enable it"
    )


@pytest.fixture
def loopback_multicast() -> str:
    """Skip unless multicast works on ``lo`` (a sync fixture, so the check never blocks a loop)."""
    require_loopback_multicast()
    return LOOPBACK_INTERFACE


@pytest.fixture
def wsdiscovery_loopback() -> Iterator[str]:
    """Check loopback multicast works, then confine ``wsdiscovery`` to ``lo``; yields 127.0.0.1."""
    require_loopback_multicast()
    with wsdiscovery_on_loopback():
        yield LOOPBACK_INTERFACE


def random_loopback_prefix() -> str:
    """A random ``127.X.Y`` prefix for one test run's device addresses.

    Linux answers on all of 127.0.0.0/8, so each device can have its own address without setup.
    Randomising keeps two runs on one host (say, two checkouts tested at once) from binding the
    same ``address:3702``, where the kernel would hand each unicast probe to only one of them.
    """
    return f"127.{64 + secrets.randbelow(190)}.{1 + secrets.randbelow(254)}"


@dataclass(frozen=True)
class DiscoveredService:
    """What a WS-Discovery client learnt about one endpoint, as plain values."""

    endpoint_reference: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: frozenset[str]  # "namespace:LocalName"
    metadata_version: str


def describe_service(service: Any) -> DiscoveredService:
    """Turn a ``wsdiscovery`` Service (or ProbeMatch) into a :class:`DiscoveredService`."""
    return DiscoveredService(
        endpoint_reference=service.getEPR(),
        xaddrs=tuple(service.getXAddrs() or ()),
        scopes=tuple(scope.getValue() for scope in service.getScopes()),
        types=frozenset(qname.getFullname() for qname in service.getTypes()),
        metadata_version=str(service.getMetadataVersion()),
    )


def wsdiscovery_threads_alive() -> list[threading.Thread]:
    """Threads of the ``wsdiscovery`` package still running (there must be none after a test)."""
    owned = (wsdiscovery.threaded.NetworkingThread, wsdiscovery.threaded.AddressMonitorThread)
    return [thread for thread in threading.enumerate() if isinstance(thread, owned)]


@contextlib.asynccontextmanager
async def running_wsdiscovery_client(**options: Any) -> AsyncIterator[ThreadedWSDiscovery]:
    """A started ``ThreadedWSDiscovery``; start and stop run off the loop (they join threads)."""
    client = ThreadedWSDiscovery(**options)
    await asyncio.to_thread(client.start)
    try:
        yield client
    finally:
        await asyncio.to_thread(client.stop)


def search_until_found(
    client: ThreadedWSDiscovery,
    expected: Iterable[str],
    *,
    timeout: float,
    types: list[QName] | None = None,
    scopes: list[Scope] | None = None,
    probe_window: float = 0.3,
) -> dict[str, DiscoveredService]:
    """Probe repeatedly until every expected endpoint reference is known or ``timeout`` passes.

    Blocking (``searchServices`` sleeps for its window): call through ``asyncio.to_thread``.
    Returns everything found, keyed by endpoint reference; other processes' devices may be there.
    """
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        found = {
            service.getEPR(): describe_service(service)
            for service in client.searchServices(types=types, scopes=scopes, timeout=probe_window)
        }
        if wanted <= found.keys() or time.monotonic() >= deadline:
            return found


# --- a plain asyncio prober --------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeMatchesReply:
    """One ProbeMatches datagram received by :class:`ProbeClient`."""

    sender: tuple[str, int]
    relates_to: str
    matches: tuple[DiscoveredService, ...]


class ProbeClient(asyncio.DatagramProtocol):
    """Sends Probes (built with ``wsdiscovery``'s helpers) and collects ProbeMatches replies.

    Bound to ``127.0.0.1:0``; multicast leaves through ``lo`` only. Replies are parsed with the
    ``wsdiscovery`` package, i.e. independently of the simulator's own code.
    """

    def __init__(self, interface: str = LOOPBACK_INTERFACE) -> None:
        self.interface = interface
        self._transport: asyncio.DatagramTransport | None = None
        self._received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.interface, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport (3.11).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._received.put_nowait((data, addr))

    def send_datagram(self, data: bytes, destination: tuple[str, int]) -> None:
        assert self._transport is not None, "use ProbeClient as an async context manager"
        self._transport.sendto(data, destination)

    def send_probe(
        self,
        destination: tuple[str, int] = (MULTICAST_GROUP, WSD_PORT),
        *,
        types: Iterable[QName] = (),
        scopes: Iterable[str] = (),
        match_by: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Send one Probe and return its MessageID (pass ``message_id`` to repeat a Probe)."""
        envelope = constructProbe(list(types), [Scope(value, match_by) for value in scopes])
        if message_id is not None:
            envelope.setMessageId(message_id)
        self.send_datagram(createSOAPMessage(envelope).encode("utf-8"), destination)
        return str(envelope.getMessageId())

    async def receive(self, timeout: float) -> ProbeMatchesReply:
        """The next ProbeMatches datagram; other datagrams are skipped."""
        async with asyncio.timeout(timeout):
            while True:
                data, sender = await self._received.get()
                envelope = parseSOAPMessage(data, sender[0])
                if envelope is not None and envelope.getAction() == NS_ACTION_PROBE_MATCH:
                    matches = tuple(describe_service(match) for match in envelope.getProbeResolveMatches())
                    return ProbeMatchesReply(sender, envelope.getRelatesTo(), matches)

    async def collect_until_answered(
        self, message_id: str, endpoint_references: Iterable[str], timeout: float
    ) -> list[ProbeMatchesReply]:
        """Every reply received until each listed endpoint has answered ``message_id``.

        Used as a barrier: a responder handles its datagrams in order and answers at once when its
        delay is 0, so once it has answered a later Probe, any answer to an earlier one is in.
        """
        waiting = set(endpoint_references)
        replies: list[ProbeMatchesReply] = []
        async with asyncio.timeout(timeout):
            while waiting:
                reply = await self.receive(timeout)
                replies.append(reply)
                if reply.relates_to == message_id:
                    waiting -= {match.endpoint_reference for match in reply.matches}
        return replies


def udp_sockets_held(port: int) -> list[str]:
    """Local addresses of this process's own UDP sockets bound to ``port`` (none may outlive a test).

    Matches ``/proc/net/udp{,6}`` entries against the socket inodes in ``/proc/self/fd``, so other
    processes sharing port 3702 on the host do not count.
    """
    inodes: set[str] = set()
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    held: list[str] = []
    for table in (Path("/proc/net/udp"), Path("/proc/net/udp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address_hex, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[9] in inodes:
                if len(address_hex) == 8:
                    address = socket.inet_ntoa(bytes.fromhex(address_hex)[::-1])
                else:
                    address = address_hex
                held.append(f"{address}:{port}")
    return held


class MulticastListener(asyncio.DatagramProtocol):
    """Hears what devices multicast on ``lo`` (Hello, Bye); messages are parsed with ``wsdiscovery``.

    Reads every datagram as it arrives, unlike ``ThreadedWSDiscovery``, whose networking thread
    reads one datagram per socket per loop turn and sleeps 0.1 s when idle, so that it falls
    seconds behind when other runs on the host fill 239.255.255.250:3702 on ``lo``.
    """

    def __init__(self, interface: str = LOOPBACK_INTERFACE) -> None:
        self.interface = interface
        self._transport: asyncio.DatagramTransport | None = None
        self._received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        sock.bind((MULTICAST_GROUP, WSD_PORT))
        membership = struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton(self.interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._received.put_nowait((data, addr))

    async def next_message(
        self,
        endpoint_reference: str,
        timeout: float,
        actions: Collection[str] = (NS_ACTION_HELLO, NS_ACTION_BYE),
    ) -> tuple[Any, str]:
        """The next message with one of ``actions`` about ``endpoint_reference``, and its sender.

        Returns the ``wsdiscovery`` envelope; others' messages (probes, other runs' devices, the
        malformed datagrams of robustness tests, which make ``wsdiscovery``'s parser raise) are
        skipped.
        """
        async with asyncio.timeout(timeout):
            while True:
                data, sender = await self._received.get()
                try:
                    envelope = parseSOAPMessage(data, sender[0])
                except Exception as exc:  # noqa: BLE001  robustness tests multicast broken datagrams
                    logger.debug("skipping unparsable multicast from %s: %r", sender[0], exc)
                    continue
                if (
                    envelope is not None
                    and envelope.getAction() in actions
                    and envelope.getEPR() == endpoint_reference
                ):
                    return envelope, sender[0]


# --- network namespaces ------------------------------------------------------------------------


@dataclass(frozen=True)
class VethNamespacePair:
    """Two namespaces joined by a veth pair: one for a device, one for a prober."""

    device_namespace: str
    client_namespace: str
    device_address: str
    client_address: str


async def run_ip(*arguments: str, timeout: float = 10.0) -> tuple[int, str]:
    """Run ``ip ARGUMENTS``; returns (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        "ip", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace").strip()


async def check_ip(*arguments: str) -> None:
    code, stderr = await run_ip(*arguments)
    if code != 0:
        raise RuntimeError(f"`ip {' '.join(arguments)}` failed ({code}): {stderr}")


async def namespace_pids(namespace: str) -> list[int]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "pids", namespace, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 10)
    return [int(token) for token in stdout.split()]


async def list_namespaces() -> set[str]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "list", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 10)
    return {line.split()[0] for line in stdout.decode().splitlines() if line.strip()}


@contextlib.asynccontextmanager
async def veth_namespace_pair(subnet: str = "10.237.0") -> AsyncIterator[VethNamespacePair]:
    """Create two namespaces joined by a veth pair (``SUBNET.1`` and ``SUBNET.2``/24), lo up.

    Skips the test when ``ip`` is missing or ``ip netns add`` is not permitted. On exit every
    process still inside either namespace is killed (they are the test's own children) and the
    namespaces are deleted, which also removes the veth pair; then it asserts that nothing was
    left running and that both namespaces are gone.
    """
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    token = secrets.token_hex(3)
    pair = VethNamespacePair(f"wsd-{token}-dev", f"wsd-{token}-cli", f"{subnet}.1", f"{subnet}.2")
    created: list[str] = []
    leftover_pids: list[int] = []
    try:
        code, stderr = await run_ip("netns", "add", pair.device_namespace)
        if code != 0:
            pytest.skip(f"`ip netns add` is not permitted here: {stderr}")
        created.append(pair.device_namespace)
        await check_ip("netns", "add", pair.client_namespace)
        created.append(pair.client_namespace)
        device_link, client_link = f"wsd{token}d", f"wsd{token}c"
        await check_ip(
            "link", "add", device_link, "netns", pair.device_namespace,
            "type", "veth", "peer", "name", client_link, "netns", pair.client_namespace,
        )  # fmt: skip
        for namespace, link, address in (
            (pair.device_namespace, device_link, pair.device_address),
            (pair.client_namespace, client_link, pair.client_address),
        ):
            await check_ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
            await check_ip("-n", namespace, "link", "set", link, "up")
            await check_ip("-n", namespace, "link", "set", "lo", "up")
        yield pair
    finally:
        for namespace in created:
            for pid in await namespace_pids(namespace):
                leftover_pids.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for namespace in reversed(created):
            await run_ip("netns", "delete", namespace)
        remaining = await list_namespaces()
    assert not leftover_pids, f"processes left running in the test namespaces: {leftover_pids}"
    assert not remaining & set(created), f"namespaces not deleted: {remaining & set(created)}"


def namespace_command(namespace: str, *argv: str) -> list[str]:
    """argv running ``argv`` inside ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]


# --- in-namespace probe script -----------------------------------------------------------------


def _probe_and_report(expected: list[str], timeout: float, emit: Callable[[str], None]) -> None:
    client = ThreadedWSDiscovery()
    client.start()
    try:
        found = search_until_found(client, expected, timeout=timeout)
    finally:
        client.stop()
    emit(json.dumps([asdict(service) | {"types": sorted(service.types)} for service in found.values()]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Probe with ThreadedWSDiscovery and print JSON results.")
    parser.add_argument("--expect", action="append", default=[], help="endpoint reference to wait for")
    parser.add_argument("--timeout", type=float, default=5.0, help="give up after this many seconds")
    arguments = parser.parse_args(argv)
    _probe_and_report(arguments.expect, arguments.timeout, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
