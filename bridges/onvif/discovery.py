"""Finding the site's ONVIF devices: the candidates each discovery round hands to the session probe.

Three sources, merged by :class:`DeviceFinder` once per round:

* **multicast** WS-Discovery, with the ``wsdiscovery`` package's ``ThreadedWSDiscovery`` run by
  :class:`MulticastProber` in an owned thread that starts and stops the package's threads every
  round, so nothing of it runs between rounds and the event loop never blocks on it;
* **unicast** probes to the configured hosts, ranges and CIDRs, by :class:`UnicastProber`: one
  asyncio UDP socket, Probes built and ProbeMatches parsed with the package's message helpers.
  The package cannot do this itself: ``searchServices(address=...)`` sends the Probe from a socket
  its networking thread never reads, so the device's answer is lost;
* **static** ``[[camera]]`` entries, taken as they are (the session probes them later).

Two behaviours of ``wsdiscovery`` 2.1 shape the multicast side (numbers from ``bench/discovery.py``
on loopback, devices answering within 0.1-0.5 s as the spec's APP_MAX_DELAY allows):

* its networking loop reads one datagram per socket per pass and sleeps 10 ms between passes while
  a message waits in its send queue, 100 ms when the queue is empty. Replies are therefore read at
  about 45-50/s while a Probe is being repeated and 10/s after: one Probe in a 3 s window found
  51-64 of 64 devices (the last ones heard just before the window closed) and 55-74 of 100, the
  rest still unread in the socket when the round ended;
* all those replies queue on one socket whose default receive buffer (~200 KiB) holds only about
  90 ProbeMatches, so answers to repeated Probes overflow it (re-probing alone: 94-100 of 100).

So a round sends a fresh Probe every :data:`REPROBE_INTERVAL` (each keeps the package's send
queue busy, hence its loop in the fast mode, and gives devices whose answer was lost another
chance) and enlarges the reply socket's receive buffer. With both, 64/64 devices are heard within
1.4-1.9 s and 100/100 within 2.1-2.7 s of a 3 s window. The read rate stays the ceiling: 150 or
200 devices give 103-147 in 3 s, so a site beyond about 100 devices needs a longer window (200/200
in 6 s) or unicast scanning of its subnets, which has no such limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

from onvif.util import normalize_url
from wsdiscovery.actions import NS_ACTION_PROBE_MATCH, constructProbe
from wsdiscovery.discovery import ThreadedWSDiscovery
from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
from wsdiscovery.qname import QName
from wsdiscovery.threaded import AddressMonitorThread, NetworkingThread
from wsdiscovery.udp import UNICAST_UDP_MAX_DELAY, UNICAST_UDP_MIN_DELAY
from wsdiscovery.util import matchesFilter

from gateway.config import CameraEntry, DiscoverySection, expand_hosts

from .models import DeviceAddress, Discovered

logger = logging.getLogger(__name__)

WSD_PORT: Final = 3702
NS_ONVIF_NETWORK: Final = "http://www.onvif.org/ver10/network/wsdl"
#: The type every ONVIF camera and NVR announces; probes ask for it only.
NETWORK_VIDEO_TRANSMITTER: Final = QName(NS_ONVIF_NETWORK, "NetworkVideoTransmitter", "dn")
#: Seconds between the fresh Probes of one multicast round (see the module docstring).
REPROBE_INTERVAL: Final = 1.0
#: SO_RCVBUF asked for on the package's reply socket; Linux doubles it and caps the request at
#: net.core.rmem_max (212992 by default, so a stock host gets 416 KiB, about 180 ProbeMatches).
REPLY_RECEIVE_BUFFER: Final = 1 << 20
#: How long a cancelled multicast round may take to stop the package's threads.
ROUND_STOP_GRACE: Final = 5.0
#: How long ``ThreadedWSDiscovery``'s own threads get to finish when reaped after a failed start.
_REAP_JOIN_TIMEOUT: Final = 2.0
_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")
_HOST_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_T = TypeVar("_T")


class DiscoverySource(enum.StrEnum):
    """Where a candidate came from; the order of the members is the merge precedence."""

    STATIC = "static"
    UNICAST = "unicast"
    MULTICAST = "multicast"


_PRECEDENCE: Final = {source.value: rank for rank, source in enumerate(DiscoverySource)}

MulticastSearch = Callable[[], Awaitable[Sequence[Discovered]]]
UnicastScan = Callable[[Sequence[str]], Awaitable[Sequence[Discovered]]]


# --- XAddrs ------------------------------------------------------------------------------------


def address_from_xaddr(xaddr: str) -> DeviceAddress | None:
    """Where an XAddr says the device service is, or None when it cannot be used.

    Tolerates what cameras send in the field: a repeated port (``http://10.0.0.5:80:80/onvif/...``,
    repaired by onvif-zeep-async's ``normalize_url`` as for Home Assistant), an upper-case scheme
    or host, user info. Refuses other schemes, IPv6 literals (:attr:`DeviceAddress.url` cannot
    bracket them), unspecified, multicast and broadcast addresses (some cameras announce
    ``0.0.0.0`` before DHCP finishes) and ports outside 1-65535.
    """
    try:
        parts = urlsplit(normalize_url(xaddr.strip()) or "")
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("http", "https") or not _HOST_RE.match(host) or not _is_unicast_host(host):
        return None
    if port == 0:
        return None
    https = scheme == "https"
    return DeviceAddress(host, port or (443 if https else 80), https)


def _is_unicast_host(host: str) -> bool:
    """False for the IPv4 addresses no single device has: 0.0.0.0, multicast, broadcast."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return True  # a host name
    return not (address.is_unspecified or address.is_multicast or address == _BROADCAST)


def first_usable_address(xaddrs: Iterable[str]) -> DeviceAddress | None:
    """The address of the first XAddr that :func:`address_from_xaddr` accepts."""
    for xaddr in xaddrs:
        address = address_from_xaddr(xaddr)
        if address is not None:
            return address
    return None


# --- static entries and merging ----------------------------------------------------------------


def static_candidates(cameras: Iterable[CameraEntry]) -> list[Discovered]:
    """The ``[[camera]]`` entries as candidates, unprobed: the session reaches them as configured."""
    return [
        Discovered(
            address=DeviceAddress(camera.host, camera.port, camera.https), source=DiscoverySource.STATIC
        )
        for camera in cameras
    ]


def merge_candidates(candidates: Iterable[Discovered]) -> list[Discovered]:
    """One candidate per (host, port), sorted by address.

    The record of the highest-precedence source (static > unicast > multicast) keeps its address
    (so a configured ``https = true`` wins) and source; XAddrs and scopes are the union of all
    records, highest precedence first, and the endpoint reference is the first one known.
    """
    groups: dict[tuple[str, int], list[Discovered]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.address.host.lower(), candidate.address.port), []).append(candidate)
    merged = []
    for group in groups.values():
        group.sort(key=lambda candidate: _PRECEDENCE.get(candidate.source, len(_PRECEDENCE)))
        merged.append(
            dataclasses.replace(
                group[0],
                xaddrs=_ordered_union(candidate.xaddrs for candidate in group),
                scopes=_ordered_union(candidate.scopes for candidate in group),
                endpoint_reference=next((c.endpoint_reference for c in group if c.endpoint_reference), ""),
            )
        )
    return sorted(merged, key=_address_order)


def _ordered_union(tuples: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for values in tuples for value in values))


def _address_order(candidate: Discovered) -> tuple[int, int, str, int]:
    """IPv4 addresses in numeric order, then host names."""
    host = candidate.address.host
    try:
        return (0, int(ipaddress.IPv4Address(host)), "", candidate.address.port)
    except ValueError:
        return (1, 0, host.lower(), candidate.address.port)


# --- multicast ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MulticastRoundStats:
    """What one multicast round did, for logs, the health page and tests."""

    source_addresses: tuple[str, ...] = ()
    probes_sent: int = 0
    matches: int = 0
    #: Seconds from the first Probe until the last new device was heard: how much of the window
    #: the site needed. Close to the window means the window is too short for the site.
    settled_seconds: float = 0.0
    #: Smallest effective SO_RCVBUF of the reply sockets; 0 when the package's socket was not found.
    reply_buffer_bytes: int = 0


class _RoundClient(ThreadedWSDiscovery):  # type: ignore[misc]  # the package is untyped
    """``ThreadedWSDiscovery`` for one round: chosen interfaces, a bigger reply buffer, a match log.

    Overrides the package's own hooks only: ``_networkAddressAdded``/``_networkAddressRemoved``
    (its address monitor reports interface addresses through them), ``addSourceAddr`` (creates
    the per-interface socket replies arrive on), the ``_handle_<action>`` methods its dispatcher
    looks up, and ``_addRemoteService``/``_removeRemoteService`` (called for every ProbeMatch,
    Hello and Bye its networking thread handles).
    """

    def __init__(self, source_addresses: Sequence[ipaddress.IPv4Address] | None, receive_buffer: int) -> None:
        super().__init__()
        self._configured_sources = tuple(source_addresses) if source_addresses is not None else None
        self._receive_buffer = receive_buffer
        self._lock = threading.Lock()
        # Keyed by endpoint reference *and* XAddrs: cloned firmware gives some cameras the same
        # endpoint reference, and the package's own table (by reference only) would keep one.
        self._services: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._first_heard: dict[tuple[str, tuple[str, ...]], float] = {}
        self.source_addresses: list[str] = []
        self.reply_buffers: list[int] = []

    def start(self) -> None:
        super().start()
        for address in self._configured_sources or ():
            self.addSourceAddr(address)

    def _networkAddressAdded(self, addr: Any) -> None:
        if self._configured_sources is None:  # no interfaces configured: the package's choice
            super()._networkAddressAdded(addr)

    def _networkAddressRemoved(self, addr: Any) -> None:
        if self._configured_sources is None:
            super()._networkAddressRemoved(addr)

    def addSourceAddr(self, addr: Any) -> None:
        super().addSourceAddr(addr)
        self.source_addresses.append(str(addr))
        self.reply_buffers.append(self._enlarge_reply_buffer(addr))

    def _enlarge_reply_buffer(self, addr: Any) -> int:
        """Raise SO_RCVBUF of the socket ProbeMatches for ``addr`` arrive on (unless the wanted size is
        0 or less); returns its effective size, or 0 when the socket is not found.

        The package keeps that socket in ``NetworkingThread._multiOutUniInSockets`` (2.1; pinned
        below 3). If a release renames it, discovery still works, with the default buffer, and
        :attr:`MulticastRoundStats.reply_buffer_bytes` reports 0.
        """
        thread = (
            self._networkingThread_v4
            if ipaddress.ip_address(addr).version == 4
            else self._networkingThread_v6
        )
        reply_sockets = getattr(thread, "_multiOutUniInSockets", None)
        reply_socket = reply_sockets.get(addr) if isinstance(reply_sockets, dict) else None
        if not isinstance(reply_socket, socket.socket):
            logger.debug("wsdiscovery reply socket for %s not found; keeping its receive buffer", addr)
            return 0
        try:
            if self._receive_buffer > 0:
                reply_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            return int(reply_socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        except OSError as exc:
            logger.debug("cannot enlarge the wsdiscovery reply buffer for %s: %s", addr, exc)
            return 0

    def _handle_probe(self, env: Any, addr: Any) -> None:
        """Other clients' Probes (VMS software, Windows hosts) are none of our business.

        Without a handler the package logs a warning for each one it hears during a round.
        """

    def _handle_resolve(self, env: Any, addr: Any) -> None:
        """Other clients' Resolves, likewise."""

    def _addRemoteService(self, service: Any) -> None:
        super()._addRemoteService(service)
        key = (str(service.getEPR()), _xaddrs_of(service))
        with self._lock:
            self._services[key] = service
            self._first_heard.setdefault(key, time.monotonic())

    def _removeRemoteService(self, epr: str) -> None:
        super()._removeRemoteService(epr)
        with self._lock:
            for key in [key for key in self._services if key[0] == epr]:
                del self._services[key]

    def heard(self) -> tuple[list[Any], float | None]:
        """Every service heard and not said Bye for, and when the last new one was first heard."""
        with self._lock:
            last = max(self._first_heard.values(), default=None)
            return list(self._services.values()), last


class MulticastProber:
    """One multicast WS-Discovery round per :meth:`search`, with the ``wsdiscovery`` package.

    ``interfaces`` are the IPv4 addresses to probe from (empty: the package picks every non-loopback,
    non-link-local address). A configured address is used even when the package would not pick it
    (a link-local camera network), and one that is not on this host is skipped with a warning,
    never replaced by a default. The round lasts ``window`` seconds with a fresh Probe every
    ``reprobe_interval``; stopping the package's threads afterwards takes up to about a second,
    as it first sends the repeats still queued.
    """

    def __init__(
        self,
        *,
        window: float,
        interfaces: Sequence[str] = (),
        reprobe_interval: float = REPROBE_INTERVAL,
        receive_buffer: int = REPLY_RECEIVE_BUFFER,
    ) -> None:
        if window <= 0 or reprobe_interval <= 0:
            raise ValueError("window and reprobe_interval must be positive")
        self.window = window
        self.interfaces = tuple(ipaddress.IPv4Address(address) for address in interfaces)
        self.reprobe_interval = reprobe_interval
        self.receive_buffer = receive_buffer
        self.last_round: MulticastRoundStats | None = None

    async def search(self) -> list[Discovered]:
        """Probe for ``window`` seconds; every device that answered or said Hello meanwhile."""
        return await _call_in_owned_thread(self._run_round, "wsdiscovery-round", ROUND_STOP_GRACE)

    def _run_round(self, stop: threading.Event) -> list[Discovered]:
        sources = self._local_interfaces()
        if sources is not None and not sources:
            self.last_round = MulticastRoundStats()
            return []
        client = _RoundClient(sources, self.receive_buffer)
        try:
            client.start()
            started = time.monotonic()
            probes = self._probe_for_window(client, stop)
        finally:
            _stop_client(client)
        services, last_heard = client.heard()
        candidates = [c for c in map(_candidate_from_service, services) if c is not None]
        self.last_round = MulticastRoundStats(
            source_addresses=tuple(client.source_addresses),
            probes_sent=probes,
            matches=len(candidates),
            settled_seconds=max(0.0, last_heard - started) if last_heard is not None else 0.0,
            reply_buffer_bytes=min(client.reply_buffers, default=0),
        )
        return candidates

    def _local_interfaces(self) -> tuple[ipaddress.IPv4Address, ...] | None:
        """The configured interface addresses that are on this host; None when none are configured."""
        if not self.interfaces:
            return None
        usable = []
        for address in self.interfaces:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as check:
                    check.bind((str(address), 0))  # binding fails unless the address is local
            except OSError as exc:
                logger.warning(
                    "discovery interface %s is not an address of this host (%s); not probing from it",
                    address,
                    exc.strerror,
                )
                continue
            usable.append(address)
        return tuple(usable)

    def _probe_for_window(self, client: _RoundClient, stop: threading.Event) -> int:
        """Send a fresh Probe every ``reprobe_interval`` until the window ends; the Probes sent."""
        deadline = time.monotonic() + self.window
        probes = 0
        while True:
            # timeout=0: send the Probe and return at once; answers are collected by _RoundClient.
            client.searchServices(types=[NETWORK_VIDEO_TRANSMITTER], timeout=0)
            probes += 1
            next_probe = min(time.monotonic() + self.reprobe_interval, deadline)
            if stop.wait(max(0.0, next_probe - time.monotonic())) or time.monotonic() >= deadline:
                return probes


def _xaddrs_of(service: Any) -> tuple[str, ...]:
    """A service's XAddrs; () when the package's accessor fails on them.

    ``Service.getXAddrs`` substitutes ``{ip}`` placeholders and trips over stray braces; it runs
    in the package's networking thread too, where an exception would end the thread.
    """
    try:
        return tuple(str(xaddr) for xaddr in service.getXAddrs() or ())
    except Exception as exc:  # noqa: BLE001  any error means: no usable XAddr
        logger.debug("unreadable XAddrs from %s: %r", service.getEPR(), exc)
        return ()


def _candidate_from_service(service: Any) -> Discovered | None:
    """A multicast match as a candidate; None when it is not an ONVIF device or has no usable XAddr."""
    if not matchesFilter(service, [NETWORK_VIDEO_TRANSMITTER], None):
        return None  # a Hello from another kind of device
    xaddrs = _xaddrs_of(service)
    scopes = tuple(scope.getValue() for scope in service.getScopes() or ())
    endpoint_reference = str(service.getEPR())
    address = first_usable_address(xaddrs)
    if address is None:
        logger.debug("skipping %s: no usable XAddr in %s", endpoint_reference, xaddrs)
        return None
    return Discovered(address, xaddrs, scopes, endpoint_reference, DiscoverySource.MULTICAST)


def _stop_client(client: _RoundClient) -> None:
    """Stop the package's threads, even after a start that failed half-way.

    ``ThreadedWSDiscovery.start`` starts each networking thread before creating its sockets. When
    that raises, the thread keeps polling: for IPv4 (port 3702 held by a socket that does not share
    it) ``start`` raises and ``stop`` then fails on the parts never made; for IPv6 (a host without
    it) ``start`` swallows the error and forgets the thread. So after ``stop`` every thread of the
    package that still belongs to this client is stopped and joined.
    """
    try:
        client.stop()
    except Exception:  # stopping a half-started client fails inside the package's code
        logger.debug("wsdiscovery stop failed; reaping its threads", exc_info=True)
    for thread in threading.enumerate():
        owner = getattr(thread, "_observer", None) or getattr(thread, "_wsd", None)
        if isinstance(thread, NetworkingThread | AddressMonitorThread) and owner is client:
            thread.schedule_stop()
            # Thread.join, not the subclass's join, which closes sockets a failed start never made.
            threading.Thread.join(thread, _REAP_JOIN_TIMEOUT)
            logger.debug("stopped a wsdiscovery thread its stop() missed: %s", thread.name)


async def _call_in_owned_thread(
    function: Callable[[threading.Event], _T], name: str, stop_grace: float
) -> _T:
    """Run ``function(stop)`` in a new thread and await its result without blocking the loop.

    Unlike ``asyncio.to_thread``, cancelling the caller sets ``stop`` and waits (up to
    ``stop_grace``) for the thread to finish, so a cancelled round leaves no thread behind.
    """
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    finished = asyncio.Event()
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(function(stop))
        except BaseException as exc:  # noqa: BLE001  handed to the awaiting task, which re-raises it
            failure.append(exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody is waiting
                loop.call_soon_threadsafe(finished.set)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        await finished.wait()
    except asyncio.CancelledError:
        stop.set()
        try:
            await asyncio.wait_for(finished.wait(), stop_grace)
        except TimeoutError:
            logger.warning("%s did not stop within %.1f s of being cancelled", name, stop_grace)
        raise
    thread.join()  # returns at once: setting `finished` was the thread's last act
    if failure:
        raise failure[0]
    return outcome[0]


# --- unicast -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProbeReply:
    sender: str
    matches: tuple[Any, ...]


class _ProbeMatchesSocket(asyncio.DatagramProtocol):
    """The unicast prober's UDP socket: sends Probes, routes each ProbeMatches by its RelatesTo."""

    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[str, asyncio.Future[_ProbeReply]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport (3.11).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def expect(self, message_id: str) -> asyncio.Future[_ProbeReply]:
        """A future resolved by the first ProbeMatches relating to ``message_id``."""
        future: asyncio.Future[_ProbeReply] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        return future

    def forget(self, message_id: str) -> None:
        self._waiting.pop(message_id, None)

    def send(self, datagram: bytes, destination: tuple[str, int]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(datagram, destination)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            envelope = parseSOAPMessage(data, addr[0])
        except Exception as exc:  # noqa: BLE001  the package's parser raises anything on broken XML
            logger.debug("ignoring an unparsable datagram from %s:%d: %r", addr[0], addr[1], exc)
            return
        if envelope is None or envelope.getAction() != NS_ACTION_PROBE_MATCH:
            return
        future = self._waiting.get(envelope.getRelatesTo())
        if future is not None and not future.done():
            future.set_result(_ProbeReply(addr[0], tuple(envelope.getProbeResolveMatches())))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for one destination (host unreachable, port unreachable) on Linux.
        logger.debug("unicast probe socket: %s", exc)


class UnicastProber:
    """Probes listed hosts one by one at ``host:3702`` and returns those that answer.

    At most ``concurrency`` hosts are waited for at once; each gets ``timeout`` seconds, and its
    Probe is sent twice (the second copy after 50-250 ms, SOAP-over-UDP's unicast repetition) in
    case a datagram is lost. Only the listed hosts are ever sent to. A host that answers gives a
    candidate even when its XAddrs name another address (NAT, several interfaces): it keeps the
    probed host with the port and scheme of its first usable XAddr, or port 80 without one.
    """

    def __init__(
        self,
        *,
        timeout: float,
        concurrency: int,
        port: int = WSD_PORT,
        bind_address: str = "0.0.0.0",
        rng: random.Random | None = None,
    ) -> None:
        if timeout <= 0 or concurrency < 1:
            raise ValueError("timeout must be positive and concurrency at least 1")
        self.timeout = timeout
        self.concurrency = concurrency
        self.port = port
        self.bind_address = bind_address
        self._rng = rng or random.Random()
        self.in_flight = 0
        self.peak_in_flight = 0

    async def scan(self, hosts: Sequence[str]) -> list[Discovered]:
        """Probe every host (duplicates once); the candidates, in host order."""
        targets = list(dict.fromkeys(hosts))
        self.peak_in_flight = 0
        if not targets:
            return []
        found: dict[int, list[Discovered]] = {}
        pending = iter(enumerate(targets))
        transport, probe_socket = await asyncio.get_running_loop().create_datagram_endpoint(
            _ProbeMatchesSocket, local_addr=(self.bind_address, 0), family=socket.AF_INET
        )
        try:

            async def work_through_hosts() -> None:
                for index, host in pending:  # the workers share one iterator: each host once
                    found[index] = await self._probe_host(probe_socket, host)

            async with asyncio.TaskGroup() as workers:
                for _ in range(min(self.concurrency, len(targets))):
                    workers.create_task(work_through_hosts())
        finally:
            transport.close()
        return [candidate for index in sorted(found) for candidate in found[index]]

    async def _probe_host(self, probe_socket: _ProbeMatchesSocket, host: str) -> list[Discovered]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        address = await self._resolve(host)
        if address is None or loop.time() >= deadline:
            return []
        envelope = constructProbe([NETWORK_VIDEO_TRANSMITTER], [])
        message_id = str(envelope.getMessageId())
        datagram = createSOAPMessage(envelope).encode("utf-8")
        reply = probe_socket.expect(message_id)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            probe_socket.send(datagram, (address, self.port))
            repeat_after = self._rng.uniform(UNICAST_UDP_MIN_DELAY, UNICAST_UDP_MAX_DELAY) / 1000
            done, _ = await asyncio.wait({reply}, timeout=min(repeat_after, deadline - loop.time()))
            if not done:
                probe_socket.send(datagram, (address, self.port))  # same MessageID: answered once
                done, _ = await asyncio.wait({reply}, timeout=max(0.0, deadline - loop.time()))
        finally:
            self.in_flight -= 1
            probe_socket.forget(message_id)
        if not done:
            logger.debug("no WS-Discovery answer from %s", host)
            return []
        return _candidates_from_reply(host, address, reply.result())

    async def _resolve(self, host: str) -> str | None:
        """The IPv4 address to send to: ``host`` itself when it is one, else looked up off the loop."""
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return await self._look_up(host)
        if not _is_unicast_host(host):
            logger.warning("not probing %s: not a unicast address", host)
            return None
        return host

    async def _look_up(self, name: str) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    name, self.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
        except (OSError, TimeoutError) as exc:
            logger.debug("cannot resolve unicast discovery host %s: %s", name, exc)
            return None
        return str(infos[0][4][0]) if infos else None


def _candidates_from_reply(host: str, address: str, reply: _ProbeReply) -> list[Discovered]:
    candidates = []
    for match in reply.matches:
        xaddrs = tuple(match.getXAddrs() or ())
        scopes = tuple(scope.getValue() for scope in match.getScopes() or ())
        candidates.append(
            Discovered(
                address=_address_for_probed_host(host, address, xaddrs),
                xaddrs=xaddrs,
                scopes=scopes,
                endpoint_reference=str(match.getEPR()),
                source=DiscoverySource.UNICAST,
            )
        )
    if reply.sender != address:
        logger.debug("%s answered a unicast probe from %s", host, reply.sender)
    return candidates


def _address_for_probed_host(host: str, address: str, xaddrs: Sequence[str]) -> DeviceAddress:
    """The XAddr on the probed host if there is one, else the probed host with the first XAddr's port."""
    usable = [parsed for parsed in map(address_from_xaddr, xaddrs) if parsed is not None]
    for parsed in usable:
        if parsed.host in (host.lower(), address):
            return parsed
    if usable:
        return DeviceAddress(host.lower(), usable[0].port, usable[0].https)
    return DeviceAddress(host.lower())


# --- the finder --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """One round in numbers: the daemon logs it and shows it on its health page."""

    started: float
    seconds: float
    static: int
    unicast: int
    multicast: int
    candidates: int
    failed_sources: tuple[str, ...] = ()
    multicast_round: MulticastRoundStats | None = None


class DeviceFinder:
    """Finds the site's candidate devices: static entries, unicast-probed hosts, multicast answers.

    Multicast and unicast run concurrently; a source that fails with a socket error is logged and
    counts as empty, so one broken interface never hides the configured cameras. Rounds do not
    overlap: a second :meth:`find` waits for the running one. ``multicast`` and ``unicast`` replace
    the probers (tests, other transports); ``clock`` times the report.
    """

    def __init__(
        self,
        discovery: DiscoverySection,
        cameras: Sequence[CameraEntry] = (),
        *,
        multicast: MulticastSearch | None = None,
        unicast: UnicastScan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._multicast_prober: MulticastProber | None = None
        if multicast is None and discovery.multicast:
            self._multicast_prober = MulticastProber(
                window=discovery.probe_timeout, interfaces=discovery.interfaces
            )
            multicast = self._multicast_prober.search
        self._multicast = multicast if discovery.multicast else None
        self._unicast = (
            unicast
            or UnicastProber(timeout=discovery.probe_timeout, concurrency=discovery.unicast_concurrency).scan
        )
        self._unicast_hosts = expand_hosts(discovery.unicast_hosts, limit=65536)
        self._static = static_candidates(cameras)
        self._clock = clock
        self._round_lock = asyncio.Lock()
        self.last_report: DiscoveryReport | None = None

    async def find(self) -> list[Discovered]:
        """One discovery round: every candidate once, sorted by address."""
        async with self._round_lock:
            started = self._clock()
            failed: list[str] = []
            async with asyncio.TaskGroup() as sources:
                unicast = sources.create_task(self._unicast_candidates(failed))
                multicast = sources.create_task(self._multicast_candidates(failed))
            candidates = merge_candidates([*self._static, *unicast.result(), *multicast.result()])
            self.last_report = DiscoveryReport(
                started=started,
                seconds=self._clock() - started,
                static=len(self._static),
                unicast=len(unicast.result()),
                multicast=len(multicast.result()),
                candidates=len(candidates),
                failed_sources=tuple(failed),
                multicast_round=self._multicast_prober.last_round if self._multicast_prober else None,
            )
            self._log_round(self.last_report)
            return candidates

    async def _unicast_candidates(self, failed: list[str]) -> Sequence[Discovered]:
        if not self._unicast_hosts:
            return ()
        try:
            return await self._unicast(self._unicast_hosts)
        except OSError as exc:
            logger.warning("unicast discovery failed: %s", exc, exc_info=True)
            failed.append(DiscoverySource.UNICAST.value)
            return ()

    async def _multicast_candidates(self, failed: list[str]) -> Sequence[Discovered]:
        if self._multicast is None:
            return ()
        try:
            return await self._multicast()
        except OSError as exc:
            logger.warning("multicast discovery failed: %s", exc, exc_info=True)
            failed.append(DiscoverySource.MULTICAST.value)
            return ()

    @staticmethod
    def _log_round(report: DiscoveryReport) -> None:
        logger.info(
            "discovery round: %d candidate(s) (static %d, unicast %d, multicast %d) in %.1f s",
            report.candidates,
            report.static,
            report.unicast,
            report.multicast,
            report.seconds,
        )
        round_stats = report.multicast_round
        if round_stats is not None:
            logger.debug(
                "multicast round: %d probe(s) from %s, settled after %.2f s, reply buffer %d bytes",
                round_stats.probes_sent,
                ", ".join(round_stats.source_addresses) or "no interface",
                round_stats.settled_seconds,
                round_stats.reply_buffer_bytes,
            )
