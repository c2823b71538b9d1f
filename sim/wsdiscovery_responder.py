"""WS-Discovery (2005/04) responder for simulated ONVIF devices.

ONVIF devices announce themselves with the 2005/04 draft of WS-Discovery over SOAP-over-UDP: they
join 239.255.255.250:3702, answer a multicast ``Probe`` with a unicast ``ProbeMatches`` sent to the
prober, answer a ``Probe`` sent straight to ``<device ip>:3702`` the same way, and multicast
``Hello`` when they come up and ``Bye`` when they go away. :class:`WsDiscoveryResponder` does that
for one or more :class:`DiscoverableDevice` so the gateway's discovery can be tested against
something that behaves like a site full of cameras.

Socket layout, chosen so that several responders (and a WS-Discovery client such as the
``wsdiscovery`` package, which binds ``0.0.0.0:3702``) coexist in one process and one network
namespace:

* one *group socket* per responder, bound to ``239.255.255.250:3702`` and joined on one interface
  address. Binding the group address (not the wildcard) means it never steals unicast datagrams;
  ``IP_MULTICAST_ALL=0`` means it only hears the group on the interface it joined, so a responder
  on ``lo`` never answers probes from a real LAN.
* one *device socket* per device address (``127.0.0.11:3702``, a veth address, ...). It receives
  unicast probes (the kernel prefers the most specific bound address, so they reach it and not a
  wildcard listener), and it is the source of every reply, ``Hello`` and ``Bye`` of its devices,
  so the daemon sees each device speak from its own address as real cameras do.

All sockets set ``SO_REUSEADDR`` and ``SO_REUSEPORT``: sharing port 3702 is the normal state of a
host running WS-Discovery. One device address belongs to one responder, though: the kernel hands a
unicast datagram to a single socket, so two responders bound to the same address would split
unicast probes between them. Several devices may share an address inside one responder.

Messages are parsed and built here with the standard library rather than with the ``wsdiscovery``
package, so the simulator is an independent implementation to test the daemon's client against.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import ipaddress
import logging
import random
import signal
import socket
import struct
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, cast
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
WSD_PORT = 3702
#: Upper bound of the random wait before answering a multicast Probe or sending Hello, in seconds.
#: WS-Discovery uses it to spread the replies of many devices; the spec's 0.5 s would only slow tests.
DEFAULT_APP_MAX_DELAY = 0.1
MULTICAST_TTL = 1
#: How many answered Probe MessageIDs a device remembers. SOAP-over-UDP clients repeat a Probe with
#: the same MessageID (``wsdiscovery`` sends it 4 times); a device answers it once.
ANSWERED_PROBE_MEMORY = 256
#: Linux's IP_MULTICAST_ALL (not exported by the socket module): 0 restricts a socket to the groups
#: and interfaces it joined itself instead of every group joined by anyone on the host.
_IP_MULTICAST_ALL = 49
_CLOSE_TIMEOUT = 1.0

NS_SOAP_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
NS_ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_DISCOVERY = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_ONVIF_NETWORK = "http://www.onvif.org/ver10/network/wsdl"
NS_ONVIF_DEVICE = "http://www.onvif.org/ver10/device/wsdl"

ACTION_PROBE = NS_DISCOVERY + "/Probe"
ACTION_PROBE_MATCHES = NS_DISCOVERY + "/ProbeMatches"
ACTION_HELLO = NS_DISCOVERY + "/Hello"
ACTION_BYE = NS_DISCOVERY + "/Bye"
TO_DISCOVERY = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
TO_ANONYMOUS = NS_ADDRESSING + "/role/anonymous"

MATCH_BY_RFC2396 = NS_DISCOVERY + "/rfc2396"
MATCH_BY_RFC3986 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/rfc3986"
MATCH_BY_STRCMP0 = NS_DISCOVERY + "/strcmp0"

ONVIF_SCOPE_ROOT = "onvif://www.onvif.org"

_PREFIXES = {
    NS_SOAP_ENVELOPE: "s",
    NS_ADDRESSING: "a",
    NS_DISCOVERY: "d",
    NS_ONVIF_NETWORK: "dn",
    NS_ONVIF_DEVICE: "tds",
}


@dataclass(frozen=True)
class QualifiedName:
    """An XML qualified name by namespace URI; prefixes are only spelling and never compared."""

    namespace: str
    local_name: str


NETWORK_VIDEO_TRANSMITTER = QualifiedName(NS_ONVIF_NETWORK, "NetworkVideoTransmitter")
ONVIF_DEVICE = QualifiedName(NS_ONVIF_DEVICE, "Device")


def _scope_segment(value: str) -> str:
    """Percent-encode one scope path segment: scopes are a space-separated list of URIs."""
    return quote(value, safe=":")


@dataclass(frozen=True)
class DiscoverableDevice:
    """What one simulated ONVIF device announces over WS-Discovery.

    ``address`` is the IPv4 address the device answers unicast probes on and sends from; ``xaddr``
    is its ONVIF device-service URL (normally on the same address). ``type_scopes`` and
    ``profile_scopes`` fill ``onvif://www.onvif.org/type/...`` and ``.../Profile/...``; an NVR
    would announce e.g. ``("video_encoder", "Network_Video_Storage")`` and ``("Streaming", "G")``.
    """

    name: str
    address: str
    xaddr: str
    hardware: str = "SimCam"
    mac: str = "02:00:00:00:00:01"
    location: str = "site"
    endpoint_reference: str = field(default_factory=lambda: uuid.uuid4().urn)
    types: tuple[QualifiedName, ...] = (NETWORK_VIDEO_TRANSMITTER, ONVIF_DEVICE)
    type_scopes: tuple[str, ...] = ("video_encoder",)
    profile_scopes: tuple[str, ...] = ("Streaming",)
    metadata_version: int = 1

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.address)
        if not self.xaddr or any(character.isspace() for character in self.xaddr):
            raise ValueError(f"xaddr must be one URL without whitespace, got {self.xaddr!r}")
        if not self.endpoint_reference.strip():
            raise ValueError("endpoint_reference must not be empty")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ONVIF scopes, in the order cameras usually list them."""
        return (
            *(f"{ONVIF_SCOPE_ROOT}/type/{_scope_segment(kind)}" for kind in self.type_scopes),
            *(f"{ONVIF_SCOPE_ROOT}/Profile/{_scope_segment(profile)}" for profile in self.profile_scopes),
            f"{ONVIF_SCOPE_ROOT}/name/{_scope_segment(self.name)}",
            f"{ONVIF_SCOPE_ROOT}/hardware/{_scope_segment(self.hardware)}",
            f"{ONVIF_SCOPE_ROOT}/MAC/{_scope_segment(self.mac)}",
            f"{ONVIF_SCOPE_ROOT}/location/{_scope_segment(self.location)}",
        )


@dataclass(frozen=True)
class Probe:
    """A parsed WS-Discovery Probe: what the prober wants to find."""

    message_id: str
    types: frozenset[QualifiedName]
    scopes: tuple[str, ...]
    match_by: str | None


@dataclass(frozen=True)
class AppSequence:
    """WS-Discovery AppSequence header: lets receivers order one device's messages."""

    instance_id: int
    message_number: int


class MalformedMessageError(ValueError):
    """A datagram that is not a well-formed SOAP envelope; it is dropped, never answered."""


# --- matching ----------------------------------------------------------------------------------


def _path_segments(path: str) -> list[str] | None:
    """Canonical path segments, or None when the path holds '.' or '..' (never matches)."""
    segments = [unquote(segment) for segment in path.split("/")]
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    if any(segment in (".", "..") for segment in segments):
        return None
    return segments


def _uri_prefix_matches(probe_scope: str, device_scope: str) -> bool:
    """The default WS-Discovery rule: same scheme and authority, segment-wise path prefix.

    Scheme and authority compare case-insensitively, path segments case-sensitively after
    percent-decoding; query and fragment are ignored. ``.../name/cam`` does not match
    ``.../name/camera`` (segments, not strings).
    """
    try:
        probe_uri, device_uri = urlsplit(probe_scope), urlsplit(device_scope)
    except ValueError:
        return False
    if probe_uri.scheme.lower() != device_uri.scheme.lower():
        return False
    if unquote(probe_uri.netloc).lower() != unquote(device_uri.netloc).lower():
        return False
    probe_segments = _path_segments(probe_uri.path)
    device_segments = _path_segments(device_uri.path)
    if probe_segments is None or device_segments is None:
        return False
    return device_segments[: len(probe_segments)] == probe_segments


def scope_matches(probe_scope: str, device_scope: str, match_by: str | None) -> bool:
    """Whether one scope of a Probe is satisfied by one scope of a device.

    An absent MatchBy means the RFC 2396/3986 prefix rule (the default of both WS-Discovery
    versions); ``strcmp0`` is exact string equality; any other rule is unsupported, and the spec
    says a device must not match a Probe whose rule it does not support.
    """
    if match_by in (None, "", MATCH_BY_RFC2396, MATCH_BY_RFC3986):
        return _uri_prefix_matches(probe_scope, device_scope)
    if match_by == MATCH_BY_STRCMP0:
        return probe_scope == device_scope
    return False


def device_matches_probe(device: DiscoverableDevice, probe: Probe) -> bool:
    """A device matches when it has every probed type and every probed scope is matched."""
    if not probe.types <= frozenset(device.types):
        return False
    return all(
        any(scope_matches(probe_scope, device_scope, probe.match_by) for device_scope in device.scopes)
        for probe_scope in probe.scopes
    )


# --- parsing -----------------------------------------------------------------------------------


def _tag(namespace: str, local_name: str) -> str:
    return f"{{{namespace}}}{local_name}"


_PROBE_TYPES_TAG = _tag(NS_DISCOVERY, "Types")


def _parse_with_types_namespaces(datagram: bytes) -> tuple[ET.Element, dict[str, str]]:
    """Parse the envelope and keep the namespace prefixes in scope at the Probe's ``d:Types``.

    ElementTree drops namespace declarations, but Types holds QNames like ``dn:Device`` whose
    prefix must be resolved where it appears, so declarations are tracked while parsing.
    """
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start-ns", "start", "end"))
    try:
        parser.feed(datagram)
        parser.close()
    except ET.ParseError as exc:
        raise MalformedMessageError(f"not XML: {exc}") from exc
    scope_stack: list[dict[str, str]] = [{}]
    declared: dict[str, str] = {}
    types_namespaces: dict[str, str] = {}
    root: ET.Element | None = None
    for entry in parser.read_events():
        event, item = entry[0], entry[-1]
        if event == "start-ns" and isinstance(item, tuple) and len(item) == 2:
            declared[str(item[0])] = str(item[1])
        elif event == "start" and isinstance(item, ET.Element):
            in_scope = {**scope_stack[-1], **declared}
            declared = {}
            scope_stack.append(in_scope)
            if root is None:
                root = item
            if item.tag == _PROBE_TYPES_TAG and not types_namespaces:
                types_namespaces = in_scope
        elif event == "end":
            scope_stack.pop()
    if root is None:
        raise MalformedMessageError("empty document")
    return root, types_namespaces


def _required_text(parent: ET.Element, path: str, what: str) -> str:
    element = parent.find(path)
    text = (element.text or "").strip() if element is not None else ""
    if not text:
        raise MalformedMessageError(f"missing {what}")
    return text


def _resolve_qualified_name(token: str, namespaces: Mapping[str, str]) -> QualifiedName:
    prefix, _, local_name = token.rpartition(":")
    namespace = namespaces.get(prefix)
    if namespace is None or not local_name:
        raise MalformedMessageError(f"type {token!r} uses an undeclared prefix")
    return QualifiedName(namespace, local_name)


def parse_probe(datagram: bytes) -> Probe | None:
    """Parse a datagram as a 2005/04 Probe.

    Returns None for a well-formed SOAP message that is not a Probe (Hello, Bye, ProbeMatches,
    other WS-Discovery versions); raises :class:`MalformedMessageError` for anything broken.
    """
    root, types_namespaces = _parse_with_types_namespaces(datagram)
    if root.tag != _tag(NS_SOAP_ENVELOPE, "Envelope"):
        raise MalformedMessageError(f"root element is {root.tag}, not a SOAP 1.2 Envelope")
    header = f"{_tag(NS_SOAP_ENVELOPE, 'Header')}/"
    action = _required_text(root, header + _tag(NS_ADDRESSING, "Action"), "wsa:Action")
    if action != ACTION_PROBE:
        return None
    message_id = _required_text(root, header + _tag(NS_ADDRESSING, "MessageID"), "wsa:MessageID")
    probe = root.find(f"{_tag(NS_SOAP_ENVELOPE, 'Body')}/{_tag(NS_DISCOVERY, 'Probe')}")
    if probe is None:
        raise MalformedMessageError("Probe action without a d:Probe body")
    types_element = probe.find(_PROBE_TYPES_TAG)
    type_tokens = (types_element.text or "").split() if types_element is not None else []
    scopes_element = probe.find(_tag(NS_DISCOVERY, "Scopes"))
    scopes = tuple((scopes_element.text or "").split()) if scopes_element is not None else ()
    match_by = scopes_element.get("MatchBy") if scopes_element is not None else None
    return Probe(
        message_id=message_id,
        types=frozenset(_resolve_qualified_name(token, types_namespaces) for token in type_tokens),
        scopes=scopes,
        match_by=match_by.strip() if match_by else None,
    )


# --- message construction ----------------------------------------------------------------------


def _element(qualified_tag: str, text: str) -> str:
    return f"<{qualified_tag}>{escape(text)}</{qualified_tag}>"


def _type_prefixes(types: Iterable[QualifiedName]) -> dict[str, str]:
    """Prefix per namespace of the device's types: conventional ones first, generated otherwise."""
    prefixes: dict[str, str] = {}
    for qualified_name in types:
        if qualified_name.namespace not in prefixes:
            prefixes[qualified_name.namespace] = _PREFIXES.get(qualified_name.namespace, f"t{len(prefixes)}")
    return prefixes


def _envelope(
    action: str,
    to: str,
    app_sequence: AppSequence,
    body: str,
    *,
    relates_to: str | None = None,
    extra_namespaces: Mapping[str, str] | None = None,
) -> bytes:
    namespaces = {ns: _PREFIXES[ns] for ns in (NS_SOAP_ENVELOPE, NS_ADDRESSING, NS_DISCOVERY)}
    namespaces.update(extra_namespaces or {})
    declarations = "".join(f" xmlns:{prefix}={quoteattr(ns)}" for ns, prefix in namespaces.items())
    header = [
        _element("a:MessageID", uuid.uuid4().urn),
        *([_element("a:RelatesTo", relates_to)] if relates_to is not None else []),
        _element("a:To", to),
        _element("a:Action", action),
        (
            f'<d:AppSequence InstanceId="{app_sequence.instance_id}"'
            f' MessageNumber="{app_sequence.message_number}"/>'
        ),
    ]
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<s:Envelope{declarations}>"
        f"<s:Header>{''.join(header)}</s:Header>"
        f"<s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )
    return document.encode("utf-8")


def _endpoint_reference(device: DiscoverableDevice) -> str:
    return f"<a:EndpointReference>{_element('a:Address', device.endpoint_reference)}</a:EndpointReference>"


def _device_description(device: DiscoverableDevice, type_prefixes: Mapping[str, str]) -> str:
    """EndpointReference, Types, Scopes, XAddrs and MetadataVersion, shared by Hello and ProbeMatch."""
    types = " ".join(f"{type_prefixes[name.namespace]}:{name.local_name}" for name in device.types)
    return (
        _endpoint_reference(device)
        + _element("d:Types", types)
        + _element("d:Scopes", " ".join(device.scopes))
        + _element("d:XAddrs", device.xaddr)
        + _element("d:MetadataVersion", str(device.metadata_version))
    )


def render_probe_matches(device: DiscoverableDevice, relates_to: str, app_sequence: AppSequence) -> bytes:
    """ProbeMatches for one device, answering the Probe whose MessageID is ``relates_to``."""
    prefixes = _type_prefixes(device.types)
    body = f"<d:ProbeMatches><d:ProbeMatch>{_device_description(device, prefixes)}</d:ProbeMatch></d:ProbeMatches>"
    return _envelope(
        ACTION_PROBE_MATCHES,
        TO_ANONYMOUS,
        app_sequence,
        body,
        relates_to=relates_to,
        extra_namespaces=prefixes,
    )


def render_hello(device: DiscoverableDevice, app_sequence: AppSequence) -> bytes:
    """Hello announcing the device to the multicast group."""
    prefixes = _type_prefixes(device.types)
    body = f"<d:Hello>{_device_description(device, prefixes)}</d:Hello>"
    return _envelope(ACTION_HELLO, TO_DISCOVERY, app_sequence, body, extra_namespaces=prefixes)


def render_bye(device: DiscoverableDevice, app_sequence: AppSequence) -> bytes:
    """Bye telling the multicast group the device is leaving."""
    return _envelope(ACTION_BYE, TO_DISCOVERY, app_sequence, f"<d:Bye>{_endpoint_reference(device)}</d:Bye>")


# --- sockets -----------------------------------------------------------------------------------

_DatagramHandler = Callable[[bytes, tuple[str, int]], None]


class _DatagramSocket(asyncio.DatagramProtocol):
    """One UDP socket's protocol: hands datagrams to the responder and tells when it has closed."""

    def __init__(self, label: str, on_datagram: _DatagramHandler) -> None:
        self.label = label
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport (3.11).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:
            # A bug in handling one datagram must not take the simulated device off the network.
            logger.exception("%s: failed to handle a datagram from %s:%d", self.label, addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        # Typically ICMP port-unreachable from a prober that already closed its socket.
        logger.debug("%s: socket error %s", self.label, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def send(self, datagram: bytes, destination: tuple[str, int]) -> None:
        if self._transport is None or self._transport.is_closing():
            logger.debug("%s: not sending to %s:%d, socket closed", self.label, *destination)
            return
        self._transport.sendto(datagram, destination)

    async def aclose(self) -> None:
        """Close the transport and wait until the socket is really released."""
        if self._transport is None:
            return
        self._transport.close()
        # asyncio.wait, unlike wait_for, leaves the future alone on timeout, so it can be awaited again.
        done, _ = await asyncio.wait({self._closed}, timeout=_CLOSE_TIMEOUT)
        if not done:
            self._transport.abort()
            await self._closed


def _shareable_udp_socket() -> socket.socket:
    """A UDP socket that may share its port: every WS-Discovery party on a host binds 3702."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    return sock


def _open_group_socket(group: str, port: int, interface_address: str) -> socket.socket:
    sock = _shareable_udp_socket()
    try:
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        sock.bind((group, port))
        membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface_address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError:
        sock.close()
        raise
    return sock


def _open_device_socket(address: str, port: int, interface_address: str) -> socket.socket:
    sock = _shareable_udp_socket()
    try:
        sock.bind((address, port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        # Loop multicast back so probers on the same host (the usual test setup) hear Hello/Bye.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    except OSError:
        sock.close()
        raise
    return sock


# --- responder ---------------------------------------------------------------------------------


@dataclass
class _DeviceState:
    """Per-device protocol state: message numbering and the Probes already answered."""

    device: DiscoverableDevice
    message_number: int = 0
    answered_probe_ids: collections.OrderedDict[str, None] = field(default_factory=collections.OrderedDict)

    def next_app_sequence(self, instance_id: int) -> AppSequence:
        self.message_number += 1
        return AppSequence(instance_id, self.message_number)

    def is_first_sighting(self, message_id: str) -> bool:
        """Record a Probe's MessageID; False when it was seen already (a SOAP-over-UDP repeat)."""
        if message_id in self.answered_probe_ids:
            return False
        self.answered_probe_ids[message_id] = None
        if len(self.answered_probe_ids) > ANSWERED_PROBE_MEMORY:
            self.answered_probe_ids.popitem(last=False)
        return True


class WsDiscoveryResponder:
    """Makes simulated ONVIF devices discoverable with WS-Discovery 2005/04.

    Use as ``async with WsDiscoveryResponder([device, ...], interface_address="127.0.0.1"):``.
    ``interface_address`` names the interface whose multicast group is joined and on which Hello
    and Bye go out (127.0.0.1 for ``lo``, the veth address inside a namespace). Devices passed in
    are announced on start; :meth:`add_device` and :meth:`remove_device` make devices appear and
    leave while running. ``app_max_delay`` bounds the random wait before answering a multicast
    Probe or sending Hello (0 answers at once, which tests want). Unicast probes are answered at
    once, as they reach one device only.
    """

    def __init__(
        self,
        devices: Iterable[DiscoverableDevice] = (),
        *,
        interface_address: str = "127.0.0.1",
        port: int = WSD_PORT,
        multicast_group: str = MULTICAST_GROUP,
        app_max_delay: float = DEFAULT_APP_MAX_DELAY,
        rng: random.Random | None = None,
    ) -> None:
        ipaddress.IPv4Address(interface_address)
        if app_max_delay < 0:
            raise ValueError("app_max_delay must not be negative")
        self.interface_address = interface_address
        self.port = port
        self.multicast_group = multicast_group
        self.app_max_delay = app_max_delay
        self._rng = rng or random.Random()
        self._devices: dict[str, _DeviceState] = {}
        self._device_sockets: dict[str, _DatagramSocket] = {}
        self._group_socket: _DatagramSocket | None = None
        self._pending_sends: set[asyncio.TimerHandle] = set()
        # Devices increment InstanceId on every restart; seconds since the epoch does that.
        self._instance_id = int(time.time())
        self._started = False
        self._announced = False
        self._closed = False
        for device in devices:
            self._register(device)

    @property
    def devices(self) -> tuple[DiscoverableDevice, ...]:
        return tuple(state.device for state in self._devices.values())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the group and device sockets, then announce every device with Hello."""
        if self._started or self._closed:
            raise RuntimeError("a WsDiscoveryResponder starts once")
        self._started = True
        try:
            self._group_socket = await self._open(
                f"wsd group {self.multicast_group} on {self.interface_address}",
                _open_group_socket(self.multicast_group, self.port, self.interface_address),
                self._on_multicast_datagram,
            )
            for address in {state.device.address for state in self._devices.values()}:
                await self._ensure_device_socket(address)
        except BaseException:
            await self.close()
            raise
        self._announced = True
        for state in self._devices.values():
            self._announce_hello(state)
        logger.info(
            "WS-Discovery responder up on %s for %d device(s)", self.interface_address, len(self._devices)
        )

    async def close(self) -> None:
        """Say Bye for every device and release all sockets; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        for handle in self._pending_sends:
            handle.cancel()
        self._pending_sends.clear()
        if self._announced:
            for state in self._devices.values():
                self._send_bye(state)
        sockets = [*self._device_sockets.values(), *([self._group_socket] if self._group_socket else [])]
        self._device_sockets.clear()
        self._group_socket = None
        for datagram_socket in sockets:
            await datagram_socket.aclose()
        if self._started:
            logger.info("WS-Discovery responder on %s closed", self.interface_address)

    async def add_device(self, device: DiscoverableDevice) -> None:
        """Register a device; when running, bind its address if new and send its Hello."""
        if self._closed:
            raise RuntimeError("responder is closed")
        state = self._register(device)
        if self._started:
            try:
                await self._ensure_device_socket(device.address)
            except BaseException:
                del self._devices[device.endpoint_reference]
                raise
            self._announce_hello(state)

    async def remove_device(self, endpoint_reference: str) -> None:
        """Send the device's Bye and forget it; its address is released once no device uses it."""
        state = self._devices.pop(endpoint_reference)
        if not self._started or self._closed:
            return
        self._send_bye(state)
        address = state.device.address
        if all(other.device.address != address for other in self._devices.values()):
            await self._device_sockets.pop(address).aclose()

    def _register(self, device: DiscoverableDevice) -> _DeviceState:
        if device.endpoint_reference in self._devices:
            raise ValueError(f"device {device.endpoint_reference} is already registered")
        state = _DeviceState(device)
        self._devices[device.endpoint_reference] = state
        return state

    async def _open(self, label: str, sock: socket.socket, handler: _DatagramHandler) -> _DatagramSocket:
        protocol = _DatagramSocket(label, handler)
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        return protocol

    async def _ensure_device_socket(self, address: str) -> None:
        if address not in self._device_sockets:
            self._device_sockets[address] = await self._open(
                f"wsd device socket {address}",
                _open_device_socket(address, self.port, self.interface_address),
                functools.partial(self._on_unicast_datagram, address),
            )

    def _devices_on(self, address: str) -> list[_DeviceState]:
        return [state for state in self._devices.values() if state.device.address == address]

    def _on_multicast_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        probe = self._parse_probe(data, sender, "multicast")
        if probe is not None:
            self._answer(probe, self._devices.values(), sender, self.app_max_delay)

    def _on_unicast_datagram(self, address: str, data: bytes, sender: tuple[str, int]) -> None:
        probe = self._parse_probe(data, sender, "unicast")
        if probe is not None:
            self._answer(probe, self._devices_on(address), sender, 0.0)

    def _parse_probe(self, data: bytes, sender: tuple[str, int], how: str) -> Probe | None:
        try:
            probe = parse_probe(data)
        except MalformedMessageError as exc:
            logger.debug("ignoring malformed %s datagram from %s:%d: %s", how, sender[0], sender[1], exc)
            return None
        if probe is None:
            logger.debug("ignoring %s non-Probe message from %s:%d", how, sender[0], sender[1])
        return probe

    def _answer(
        self, probe: Probe, candidates: Iterable[_DeviceState], prober: tuple[str, int], max_delay: float
    ) -> None:
        for state in list(candidates):
            if not state.is_first_sighting(probe.message_id):
                continue
            if not device_matches_probe(state.device, probe):
                logger.debug("%s: Probe %s does not match", state.device.name, probe.message_id)
                continue
            self._after_app_delay(max_delay, self._send_probe_matches, state, probe.message_id, prober)

    def _after_app_delay(self, max_delay: float, send: Callable[..., None], *args: object) -> None:
        """Run ``send`` after a random 0..max_delay wait, keeping the handle so close() can cancel it."""
        if max_delay <= 0:
            send(*args)
            return
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self._pending_sends.discard(handle)
            send(*args)

        handle = asyncio.get_running_loop().call_later(self._rng.uniform(0, max_delay), fire)
        self._pending_sends.add(handle)

    def _send_probe_matches(self, state: _DeviceState, relates_to: str, prober: tuple[str, int]) -> None:
        device_socket = self._device_sockets.get(state.device.address)
        if device_socket is None or state.device.endpoint_reference not in self._devices:
            return
        datagram = render_probe_matches(state.device, relates_to, state.next_app_sequence(self._instance_id))
        device_socket.send(datagram, prober)
        logger.debug("%s: ProbeMatches for %s sent to %s:%d", state.device.name, relates_to, *prober)

    def _announce_hello(self, state: _DeviceState) -> None:
        self._after_app_delay(self.app_max_delay, self._send_hello, state)

    def _send_hello(self, state: _DeviceState) -> None:
        if state.device.endpoint_reference not in self._devices:
            return  # removed while its Hello was waiting out the application delay
        self._multicast(state, render_hello(state.device, state.next_app_sequence(self._instance_id)))
        logger.info("%s: Hello sent from %s", state.device.name, state.device.address)

    def _send_bye(self, state: _DeviceState) -> None:
        self._multicast(state, render_bye(state.device, state.next_app_sequence(self._instance_id)))
        logger.info("%s: Bye sent from %s", state.device.name, state.device.address)

    def _multicast(self, state: _DeviceState, datagram: bytes) -> None:
        device_socket = self._device_sockets.get(state.device.address)
        if device_socket is not None:
            device_socket.send(datagram, (self.multicast_group, self.port))


# --- command line ------------------------------------------------------------------------------


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.wsdiscovery_responder",
        description="Answer WS-Discovery probes for one simulated ONVIF device until SIGTERM/SIGINT.",
    )
    parser.add_argument("--address", required=True, help="device IPv4 address to answer unicast probes on")
    parser.add_argument("--xaddr", required=True, help="ONVIF device-service URL to announce")
    parser.add_argument("--name", required=True, help="device name (onvif://www.onvif.org/name/...)")
    parser.add_argument("--hardware", default="SimCam", help="model (onvif://www.onvif.org/hardware/...)")
    parser.add_argument("--mac", default="02:00:00:00:00:01", help="MAC scope value")
    parser.add_argument("--location", default="site", help="location scope value")
    parser.add_argument("--endpoint-reference", default=None, help="urn:uuid:... (random if omitted)")
    parser.add_argument(
        "--interface", default=None, help="interface address to join the group on (default: --address)"
    )
    parser.add_argument("--port", type=int, default=WSD_PORT)
    parser.add_argument("--app-max-delay", type=float, default=DEFAULT_APP_MAX_DELAY, help="seconds")
    parser.add_argument("--verbose", action="store_true", help="log at debug level")
    return parser.parse_args(argv)


async def _serve_until_signalled(arguments: argparse.Namespace) -> None:
    device = DiscoverableDevice(
        name=arguments.name,
        address=arguments.address,
        xaddr=arguments.xaddr,
        hardware=arguments.hardware,
        mac=arguments.mac,
        location=arguments.location,
        **({"endpoint_reference": arguments.endpoint_reference} if arguments.endpoint_reference else {}),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    async with WsDiscoveryResponder(
        [device],
        interface_address=arguments.interface or arguments.address,
        port=arguments.port,
        app_max_delay=arguments.app_max_delay,
    ):
        # One line on stdout tells a supervising process (or test) that probes will be answered.
        print(f"ready {device.endpoint_reference}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    arguments = _parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve_until_signalled(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
