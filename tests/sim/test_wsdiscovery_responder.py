"""The simulated site's WS-Discovery responder, probed by the ``wsdiscovery`` package and by hand.

Devices live on their own loopback addresses (127.X.Y.n: Linux routes all of 127/8 to ``lo``),
responders answer with no application delay, and every wait is bounded. Replies from responders
of other test runs on the same host may show up on multicast probes, so assertions look at this
test's endpoint references only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wsdiscovery.namespaces import NS_ACTION_BYE, NS_ACTION_HELLO
from wsdiscovery.qname import QName

from sim.wsdiscovery_responder import (
    MATCH_BY_STRCMP0,
    NS_DISCOVERY,
    NS_ONVIF_DEVICE,
    NS_ONVIF_NETWORK,
    WSD_PORT,
    DiscoverableDevice,
    WsDiscoveryResponder,
    scope_matches,
)
from tests.sim.wsd_fixtures import (
    PROBE_SCRIPT,
    DiscoveredService,
    MulticastListener,
    ProbeClient,
    loopback_multicast,  # noqa: F401  (fixture, used by name)
    namespace_command,
    random_loopback_prefix,
    running_wsdiscovery_client,
    search_until_found,
    udp_sockets_held,
    veth_namespace_pair,
    wsdiscovery_loopback,  # noqa: F401  (fixture, used by name)
    wsdiscovery_threads_alive,
)

pytestmark = pytest.mark.timeout(60)

#: Device addresses are NET.11, NET.12, ...: a random 127.X.Y per run (see random_loopback_prefix).
NET = random_loopback_prefix()
REPO_ROOT = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT = 5.0
SEARCH_TIMEOUT = 10.0
SCOPE = "onvif://www.onvif.org"
ONVIF_TYPES = frozenset({f"{NS_ONVIF_NETWORK}:NetworkVideoTransmitter", f"{NS_ONVIF_DEVICE}:Device"})
CAMERA_LOCATIONS = ("lobby", "garage", "gate", "yard")


def site_devices() -> list[DiscoverableDevice]:
    """Four cameras and an NVR, each on its own loopback address."""
    cameras = [
        DiscoverableDevice(
            name=f"Camera {number}",
            address=f"{NET}.{10 + number}",
            xaddr=f"http://{NET}.{10 + number}:8000/onvif/device_service",
            hardware="SimCam-2000",
            mac=f"02:00:00:37:00:{10 + number:02x}",
            location=location,
        )
        for number, location in enumerate(CAMERA_LOCATIONS, start=1)
    ]
    nvr = DiscoverableDevice(
        name="Site NVR",
        address=f"{NET}.15",
        xaddr=f"http://{NET}.15:8000/onvif/device_service",
        hardware="SimNVR-16",
        mac="02:00:00:37:00:0f",
        location="server_room",
        type_scopes=("video_encoder", "Network_Video_Storage"),
        profile_scopes=("Streaming", "G"),
    )
    return [*cameras, nvr]


def expected_scopes(device: DiscoverableDevice) -> set[str]:
    """Scopes as a client decodes them (``wsdiscovery`` turns %20 back into spaces)."""
    return {
        *(f"{SCOPE}/type/{kind}" for kind in device.type_scopes),
        *(f"{SCOPE}/Profile/{profile}" for profile in device.profile_scopes),
        f"{SCOPE}/name/{device.name}",
        f"{SCOPE}/hardware/{device.hardware}",
        f"{SCOPE}/MAC/{device.mac}",
        f"{SCOPE}/location/{device.location}",
    }


def endpoint_references(devices: Iterable[DiscoverableDevice]) -> set[str]:
    return {device.endpoint_reference for device in devices}


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After each test: no ``wsdiscovery`` thread and no socket of ours on port 3702."""
    yield
    assert not wsdiscovery_threads_alive()
    assert not udp_sockets_held(WSD_PORT)


@pytest.fixture
async def site(loopback_multicast: str) -> AsyncIterator[list[DiscoverableDevice]]:  # noqa: F811
    """Five responders, one per device, all in this process and on port 3702."""
    devices = site_devices()
    async with contextlib.AsyncExitStack() as stack:
        for device in devices:
            await stack.enter_async_context(WsDiscoveryResponder([device], app_max_delay=0))
        yield devices


@dataclass(frozen=True)
class ProbeFilter:
    """What a Probe asks for."""

    types: tuple[QName, ...] = ()
    scopes: tuple[str, ...] = ()
    match_by: str | None = None


async def probe_and_collect(
    client: ProbeClient, devices: list[DiscoverableDevice], probe: ProbeFilter
) -> dict[str, DiscoveredService]:
    """Multicast one Probe, then a match-all barrier Probe; return this site's answers to the first."""
    message_id = client.send_probe(types=probe.types, scopes=probe.scopes, match_by=probe.match_by)
    barrier = client.send_probe()
    replies = await client.collect_until_answered(barrier, endpoint_references(devices), REPLY_TIMEOUT)
    ours = endpoint_references(devices)
    return {
        match.endpoint_reference: match
        for reply in replies
        if reply.relates_to == message_id
        for match in reply.matches
        if match.endpoint_reference in ours
    }


# --- with the wsdiscovery package's client --------------------------------------------------------


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_threaded_wsdiscovery_finds_every_site_device_on_loopback(
    site: list[DiscoverableDevice],
) -> None:
    by_reference = {device.endpoint_reference: device for device in site}
    async with running_wsdiscovery_client() as client:
        found = await asyncio.to_thread(search_until_found, client, by_reference, timeout=SEARCH_TIMEOUT)

    assert by_reference.keys() <= found.keys()
    for reference, device in by_reference.items():
        service = found[reference]
        assert service.xaddrs == (device.xaddr,)
        assert set(service.scopes) == expected_scopes(device)
        assert service.types == ONVIF_TYPES
        assert service.metadata_version == "1"
    assert f"{SCOPE}/type/Network_Video_Storage" in found[site[-1].endpoint_reference].scopes


@pytest.mark.usefixtures("loopback_multicast")
async def test_hello_on_start_and_bye_on_close_are_multicast_from_the_device_address() -> None:
    device = DiscoverableDevice(
        name="Door Camera", address=f"{NET}.31", xaddr=f"http://{NET}.31:8000/onvif/device_service"
    )
    async with MulticastListener() as listener:
        async with WsDiscoveryResponder([device], app_max_delay=0):
            hello, hello_sender = await listener.next_message(device.endpoint_reference, REPLY_TIMEOUT)
        bye, bye_sender = await listener.next_message(device.endpoint_reference, REPLY_TIMEOUT)

    assert (hello.getAction(), bye.getAction()) == (NS_ACTION_HELLO, NS_ACTION_BYE)
    assert hello_sender == bye_sender == device.address
    assert hello.getXAddrs() == [device.xaddr]
    assert {scope.getValue() for scope in hello.getScopes()} == expected_scopes(device)
    assert {qname.getFullname() for qname in hello.getTypes()} == ONVIF_TYPES
    assert int(bye.getMessageNumber()) > int(hello.getMessageNumber())
    assert bye.getInstanceId() == hello.getInstanceId()


@pytest.mark.usefixtures("loopback_multicast")
async def test_application_delay_defers_sends_and_close_cancels_pending_ones() -> None:
    device = DiscoverableDevice(name="Slow", address=f"{NET}.71", xaddr=f"http://{NET}.71:8000/onvif")
    async with MulticastListener() as listener, ProbeClient() as client:
        async with WsDiscoveryResponder([device], app_max_delay=0.2, rng=random.Random(7)):
            hello, _ = await listener.next_message(device.endpoint_reference, REPLY_TIMEOUT)
            message_id = client.send_probe()
            replies = await client.collect_until_answered(
                message_id, [device.endpoint_reference], REPLY_TIMEOUT
            )  # other runs' devices on this host may answer the multicast Probe too
        answer = replies[-1]  # collecting stops at this device's answer
        assert hello.getAction() == NS_ACTION_HELLO
        assert (answer.relates_to, answer.sender) == (message_id, (device.address, WSD_PORT))
        await listener.next_message(device.endpoint_reference, REPLY_TIMEOUT, actions=(NS_ACTION_BYE,))

        # A Hello still waiting out a long delay is cancelled by close(): the next word is Bye.
        async with WsDiscoveryResponder([device], app_max_delay=60):
            pass
        after_restart, _ = await listener.next_message(device.endpoint_reference, REPLY_TIMEOUT)
    assert after_restart.getAction() == NS_ACTION_BYE


# --- filters, unicast and robustness, with a plain UDP prober -------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected_names"),
    [
        pytest.param(
            ProbeFilter(), {"Camera 1", "Camera 2", "Camera 3", "Camera 4", "Site NVR"}, id="no-filter"
        ),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/type/Network_Video_Storage",)), {"Site NVR"}, id="scope-only-on-nvr"
        ),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/name/Camera%202",)), {"Camera 2"}, id="scope-encoded-name"
        ),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/location/garage", f"{SCOPE}/hardware/SimCam-2000")),
            {"Camera 2"},
            id="scopes-all-must-match",
        ),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/location/gar",)), set(), id="scope-is-segment-not-string-prefix"
        ),
        pytest.param(ProbeFilter(scopes=(f"{SCOPE}/location/attic",)), set(), id="scope-nobody-has"),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/Profile/G",), match_by=MATCH_BY_STRCMP0), {"Site NVR"}, id="strcmp0"
        ),
        pytest.param(
            ProbeFilter(scopes=(f"{SCOPE}/Profile",), match_by=f"{NS_DISCOVERY}/unsupported"),
            set(),
            id="unsupported-match-rule",
        ),
        pytest.param(
            ProbeFilter(types=(QName(NS_ONVIF_NETWORK, "NetworkVideoTransmitter", "nvt"),)),
            {"Camera 1", "Camera 2", "Camera 3", "Camera 4", "Site NVR"},
            id="type-with-own-prefix",
        ),
        pytest.param(
            ProbeFilter(types=(QName(NS_ONVIF_NETWORK, "NetworkVideoDisplay"),)), set(), id="type-nobody-has"
        ),
        pytest.param(
            ProbeFilter(types=(QName("http://example.com/other", "NetworkVideoTransmitter"),)),
            set(),
            id="type-in-other-namespace",
        ),
    ],
)
async def test_multicast_probe_is_answered_by_matching_devices_only(
    site: list[DiscoverableDevice], probe: ProbeFilter, expected_names: set[str]
) -> None:
    async with ProbeClient() as client:
        answers = await probe_and_collect(client, site, probe)

    by_reference = {device.endpoint_reference: device for device in site}
    assert {by_reference[reference].name for reference in answers} == expected_names
    for reference, match in answers.items():
        assert match.xaddrs == (by_reference[reference].xaddr,)


async def test_probe_matches_come_from_each_device_address_with_relates_to(
    site: list[DiscoverableDevice],
) -> None:
    async with ProbeClient() as client:
        message_id = client.send_probe()
        replies = await client.collect_until_answered(message_id, endpoint_references(site), REPLY_TIMEOUT)

    senders = {
        reply.matches[0].endpoint_reference: reply.sender
        for reply in replies
        if reply.relates_to == message_id and len(reply.matches) == 1
    }
    assert {senders[device.endpoint_reference] for device in site} == {
        (device.address, WSD_PORT) for device in site
    }


async def test_unicast_probe_gets_exactly_that_devices_match(site: list[DiscoverableDevice]) -> None:
    target = site[1]
    async with ProbeClient() as client:
        first = client.send_probe((target.address, WSD_PORT))
        reply = await client.receive(REPLY_TIMEOUT)
        second = client.send_probe((target.address, WSD_PORT))
        following = await client.receive(REPLY_TIMEOUT)

    assert reply.sender == (target.address, WSD_PORT)
    assert reply.relates_to == first
    assert [match.endpoint_reference for match in reply.matches] == [target.endpoint_reference]
    assert reply.matches[0].xaddrs == (target.xaddr,)
    assert set(reply.matches[0].scopes) == expected_scopes(target)
    assert following.relates_to == second, "one Probe, one reply"


async def test_unicast_probe_that_does_not_match_gets_no_reply(site: list[DiscoverableDevice]) -> None:
    target = site[0]
    async with ProbeClient() as client:
        client.send_probe((target.address, WSD_PORT), scopes=[f"{SCOPE}/type/Network_Video_Storage"])
        barrier = client.send_probe((target.address, WSD_PORT))
        reply = await client.receive(REPLY_TIMEOUT)

    assert reply.relates_to == barrier


async def test_repeated_probe_is_answered_once(site: list[DiscoverableDevice]) -> None:
    async with ProbeClient() as client:
        first = client.send_probe()
        client.send_probe(message_id=first)  # SOAP-over-UDP repeats keep the MessageID
        client.send_probe((site[0].address, WSD_PORT), message_id=first)
        barrier = client.send_probe()
        replies = await client.collect_until_answered(barrier, endpoint_references(site), REPLY_TIMEOUT)

    answers_to_first = [
        match.endpoint_reference
        for reply in replies
        if reply.relates_to == first
        for match in reply.matches
        if match.endpoint_reference in endpoint_references(site)
    ]
    assert sorted(answers_to_first) == sorted(endpoint_references(site))


MALFORMED_DATAGRAMS = [
    b"",
    b"\x00\xffnot xml at all",
    b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Header>",
    b"<Envelope><Header/><Body/></Envelope>",
    (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Header/><s:Body/></s:Envelope>"),
    (
        b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'"
        b" xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing'><s:Header>"
        b"<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        b"</s:Header><s:Body/></s:Envelope>"
    ),
    (
        b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'"
        b" xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing'"
        b" xmlns:d='http://schemas.xmlsoap.org/ws/2005/04/discovery'><s:Header>"
        b"<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        b"<a:MessageID>urn:uuid:00000000-0000-0000-0000-000000000001</a:MessageID>"
        b"</s:Header><s:Body><d:Probe><d:Types>undeclared:NetworkVideoTransmitter</d:Types>"
        b"</d:Probe></s:Body></s:Envelope>"
    ),
]


async def test_malformed_datagrams_are_ignored(
    site: list[DiscoverableDevice], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sim.wsdiscovery_responder")
    target = site[0]
    async with ProbeClient() as client:
        for datagram in MALFORMED_DATAGRAMS:
            client.send_datagram(datagram, ("239.255.255.250", WSD_PORT))
            client.send_datagram(datagram, (target.address, WSD_PORT))
        unicast_barrier = client.send_probe((target.address, WSD_PORT))
        unicast_reply = await client.receive(REPLY_TIMEOUT)
        multicast_barrier = client.send_probe()
        replies = await client.collect_until_answered(
            multicast_barrier, endpoint_references(site), REPLY_TIMEOUT
        )

    assert unicast_reply.relates_to == unicast_barrier
    assert {reply.relates_to for reply in replies} == {multicast_barrier}
    ignored = [record for record in caplog.records if record.getMessage().startswith("ignoring malformed")]
    assert ignored and all(record.levelno == logging.DEBUG for record in ignored)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


# --- lifecycle -----------------------------------------------------------------------------------


async def test_devices_join_share_an_address_and_leave() -> None:
    first = DiscoverableDevice(name="Left", address=f"{NET}.41", xaddr=f"http://{NET}.41:8001/onvif")
    second = DiscoverableDevice(name="Right", address=f"{NET}.41", xaddr=f"http://{NET}.41:8002/onvif")
    elsewhere = DiscoverableDevice(name="Annex", address=f"{NET}.42", xaddr=f"http://{NET}.42:8000/onvif")
    responder = WsDiscoveryResponder([first], app_max_delay=0)
    async with responder, ProbeClient() as client:
        await responder.add_device(second)
        await responder.add_device(elsewhere)
        shared = client.send_probe((first.address, WSD_PORT))
        replies = [await client.receive(REPLY_TIMEOUT), await client.receive(REPLY_TIMEOUT)]
        assert {reply.relates_to for reply in replies} == {shared}
        assert {reply.matches[0].endpoint_reference for reply in replies} == endpoint_references(
            [first, second]
        )

        await responder.remove_device(first.endpoint_reference)
        await responder.remove_device(elsewhere.endpoint_reference)
        after_leaving = client.send_probe((first.address, WSD_PORT))
        reply = await client.receive(REPLY_TIMEOUT)
        barrier = client.send_probe((first.address, WSD_PORT))
        following = await client.receive(REPLY_TIMEOUT)
        assert (reply.relates_to, reply.matches[0].endpoint_reference) == (
            after_leaving,
            second.endpoint_reference,
        )
        assert following.relates_to == barrier
        assert f"{elsewhere.address}:{WSD_PORT}" not in udp_sockets_held(WSD_PORT)
        assert responder.devices == (second,)

    await responder.close()  # a second close is a no-op
    assert not udp_sockets_held(WSD_PORT)


async def test_start_failure_releases_what_was_bound() -> None:
    reachable = DiscoverableDevice(name="Ok", address=f"{NET}.51", xaddr=f"http://{NET}.51:8000/onvif")
    # 240.0.0.0/4 is reserved and never on an interface: binding it fails with EADDRNOTAVAIL.
    unbindable = DiscoverableDevice(name="Gone", address="240.0.0.1", xaddr="http://240.0.0.1:8000/onvif")
    responder = WsDiscoveryResponder([reachable, unbindable], app_max_delay=0)

    with pytest.raises(OSError):
        await responder.start()

    assert not udp_sockets_held(WSD_PORT)
    with pytest.raises(RuntimeError):
        await responder.start()


async def test_command_line_responder_answers_and_exits_on_sigterm(tmp_path: Path) -> None:
    device = DiscoverableDevice(name="CLI Camera", address=f"{NET}.61", xaddr=f"http://{NET}.61:8000/onvif")
    stderr_path = tmp_path / "responder.stderr"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sim.wsdiscovery_responder",
            "--address", device.address, "--interface", "127.0.0.1", "--xaddr", device.xaddr,
            "--name", device.name, "--endpoint-reference", device.endpoint_reference, "--app-max-delay", "0",
            stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=REPO_ROOT,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), REPLY_TIMEOUT)
        assert ready.decode().split() == ["ready", device.endpoint_reference], stderr_path.read_text()
        async with ProbeClient() as client:
            message_id = client.send_probe((device.address, WSD_PORT))
            reply = await client.receive(REPLY_TIMEOUT)
        assert reply.relates_to == message_id
        assert reply.matches[0].xaddrs == (device.xaddr,)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), REPLY_TIMEOUT) == 0, stderr_path.read_text()
        assert "Bye sent" in stderr_path.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None


# --- network namespaces ------------------------------------------------------------------------


@pytest.mark.netns
async def test_threaded_wsdiscovery_in_another_namespace_finds_the_responder(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    stderr_path = tmp_path / "responder.stderr"
    async with veth_namespace_pair() as pair:
        device = DiscoverableDevice(
            name="Annex Camera",
            address=pair.device_address,
            xaddr=f"http://{pair.device_address}:8000/onvif/device_service",
            hardware="SimCam-2000",
            mac="02:00:00:37:01:01",
            location="annex",
        )
        try:
            with stderr_path.open("wb") as stderr:
                responder = await asyncio.create_subprocess_exec(
                    *namespace_command(
                        pair.device_namespace, sys.executable, "-m", "sim.wsdiscovery_responder",
                        "--address", device.address, "--interface", device.address,
                        "--xaddr", device.xaddr, "--name", device.name, "--hardware", device.hardware,
                        "--mac", device.mac, "--location", device.location,
                        "--endpoint-reference", device.endpoint_reference, "--app-max-delay", "0",
                    ),
                    stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=REPO_ROOT,
                )  # fmt: skip
            processes.append(responder)
            assert responder.stdout is not None
            ready = await asyncio.wait_for(responder.stdout.readline(), 15)
            assert ready.decode().split() == ["ready", device.endpoint_reference], stderr_path.read_text()

            prober = await asyncio.create_subprocess_exec(
                *namespace_command(
                    pair.client_namespace, sys.executable, str(PROBE_SCRIPT),
                    "--expect", device.endpoint_reference, "--timeout", "8",
                ),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
            )  # fmt: skip
            processes.append(prober)
            output, errors = await asyncio.wait_for(prober.communicate(), 30)
            assert prober.returncode == 0, errors.decode()

            found = {service["endpoint_reference"]: service for service in json.loads(output)}
            assert device.endpoint_reference in found, errors.decode()
            service = found[device.endpoint_reference]
            assert service["xaddrs"] == [device.xaddr]
            assert set(service["scopes"]) == expected_scopes(device)
            assert set(service["types"]) == ONVIF_TYPES

            responder.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(responder.wait(), 10) == 0, stderr_path.read_text()
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    assert all(process.returncode is not None for process in processes)


# --- scope matching rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe_scope", "device_scope", "match_by", "matches"),
    [
        (f"{SCOPE}/name/cam", f"{SCOPE}/name/cam", None, True),
        (f"{SCOPE}/name", f"{SCOPE}/name/cam", None, True),
        (f"{SCOPE}/name/", f"{SCOPE}/name/cam", None, True),
        (SCOPE, f"{SCOPE}/name/cam", None, True),
        (f"{SCOPE}/name/ca", f"{SCOPE}/name/cam", None, False),
        (f"{SCOPE}/name/cam/front", f"{SCOPE}/name/cam", None, False),
        ("ONVIF://WWW.ONVIF.ORG/name/cam", f"{SCOPE}/name/cam", None, True),
        (f"{SCOPE}/NAME/cam", f"{SCOPE}/name/cam", None, False),
        (f"{SCOPE}/name/front%20door", f"{SCOPE}/name/front door", None, True),
        (f"{SCOPE}/name/../name", f"{SCOPE}/name/cam", None, False),
        ("http://www.onvif.org/name", f"{SCOPE}/name/cam", None, False),
        ("onvif://example.org/name", f"{SCOPE}/name/cam", None, False),
        (f"{SCOPE}/name?x=1", f"{SCOPE}/name/cam", f"{NS_DISCOVERY}/rfc2396", True),
        (
            f"{SCOPE}/name",
            f"{SCOPE}/name/cam",
            "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/rfc3986",
            True,
        ),
        (f"{SCOPE}/name/cam", f"{SCOPE}/name/cam", MATCH_BY_STRCMP0, True),
        (f"{SCOPE}/name", f"{SCOPE}/name/cam", MATCH_BY_STRCMP0, False),
        (f"{SCOPE}/name/cam", f"{SCOPE}/name/cam", f"{NS_DISCOVERY}/ldap", False),
    ],
)
def test_scope_matching_rule(
    probe_scope: str, device_scope: str, match_by: str | None, matches: bool
) -> None:
    assert scope_matches(probe_scope, device_scope, match_by) is matches
