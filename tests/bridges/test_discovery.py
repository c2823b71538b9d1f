"""Discovery of a simulated site: multicast, unicast, static entries and their merge.

Devices are ``WsDiscoveryResponder`` devices on their own loopback addresses (a random 127.X.Y per
run), answering at once. Multicast rounds run the ``wsdiscovery`` package confined to ``lo`` by the
``wsdiscovery_loopback`` fixture; devices of other runs on this host may answer them too, so the
assertions look at this run's addresses only. Unicast scans stay inside this run's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

import pytest

from bridges.onvif.discovery import (
    ROUND_STOP_GRACE,
    DeviceFinder,
    DiscoverySource,
    MulticastProber,
    MulticastRoundStats,
    UnicastProber,
    address_from_xaddr,
    merge_candidates,
)
from bridges.onvif.models import DeviceAddress, Discovered
from gateway.config import CameraEntry, DiscoverySection, Duration, expand_hosts
from sim.wsdiscovery_responder import (
    WSD_PORT,
    AppSequence,
    DiscoverableDevice,
    WsDiscoveryResponder,
    parse_probe,
    render_probe_matches,
)
from tests.sim.wsd_fixtures import (
    loopback_multicast,  # noqa: F401  (fixture, used by name)
    namespace_command,
    random_loopback_prefix,
    udp_sockets_held,
    veth_namespace_pair,
    wsdiscovery_loopback,  # noqa: F401  (fixture, used by name)
    wsdiscovery_threads_alive,
)

pytestmark = pytest.mark.timeout(60)

NET = random_loopback_prefix()
REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE_SCRIPT = Path(__file__).resolve().parent / "discovery_in_namespace.py"
#: Multicast round length and Probe spacing in tests: devices answer at once, so 0.8 s is plenty.
WINDOW = 0.8
REPROBE = 0.3
UNICAST_TIMEOUT = 0.5
SCOPE = "onvif://www.onvif.org"


def device(number: int, *, xaddr: str | None = None, **details: object) -> DiscoverableDevice:
    """A device on NET.<number>, its device service on port 8000 unless ``xaddr`` says otherwise."""
    address = f"{NET}.{number}"
    return DiscoverableDevice(
        name=str(details.pop("name", f"Camera {number}")),
        address=address,
        xaddr=xaddr or f"http://{address}:8000/onvif/device_service",
        mac=f"02:00:00:38:00:{number:02x}",
        **details,  # type: ignore[arg-type]
    )


def site_devices() -> list[DiscoverableDevice]:
    """Four cameras on NET.1-4 and an NVR on NET.5."""
    cameras = [device(number, hardware="SimCam-2000") for number in range(1, 5)]
    nvr = device(
        5,
        name="Site NVR",
        hardware="SimNVR-16",
        type_scopes=("video_encoder", "Network_Video_Storage"),
        profile_scopes=("Streaming", "G"),
    )
    return [*cameras, nvr]


def expected_scopes(simulated: DiscoverableDevice) -> set[str]:
    """Scopes as the client decodes them (``%20`` back to spaces)."""
    return {scope.replace("%20", " ") for scope in simulated.scopes}


def ours(candidates: Iterable[Discovered]) -> dict[str, Discovered]:
    """This run's candidates by host; fails on a duplicate host."""
    by_host: dict[str, Discovered] = {}
    for candidate in candidates:
        if candidate.address.host.startswith(f"{NET}."):
            assert candidate.address.host not in by_host, f"duplicate candidate {candidate}"
            by_host[candidate.address.host] = candidate
    return by_host


def round_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "wsdiscovery-round"]


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    """After each test: no thread of the package or of a round, no socket of ours on port 3702."""
    yield
    assert not wsdiscovery_threads_alive()
    assert not round_threads()
    assert not udp_sockets_held(WSD_PORT)


@contextlib.asynccontextmanager
async def responders(devices: Iterable[DiscoverableDevice]) -> AsyncIterator[list[DiscoverableDevice]]:
    """One responder per device, answering without delay."""
    started = list(devices)
    async with contextlib.AsyncExitStack() as stack:
        for simulated in started:
            await stack.enter_async_context(WsDiscoveryResponder([simulated], app_max_delay=0))
        yield started


@pytest.fixture
async def site(loopback_multicast: str) -> AsyncIterator[list[DiscoverableDevice]]:  # noqa: F811
    async with responders(site_devices()) as devices:
        yield devices


def loopback_unicast(concurrency: int = 8, timeout: float = UNICAST_TIMEOUT) -> UnicastProber:
    return UnicastProber(timeout=timeout, concurrency=concurrency, bind_address="127.0.0.1")


def assert_describes(candidate: Discovered, simulated: DiscoverableDevice, source: str) -> None:
    assert candidate.address == DeviceAddress(simulated.address, 8000)
    assert candidate.xaddrs == (simulated.xaddr,)
    assert set(candidate.scopes) == expected_scopes(simulated)
    assert candidate.endpoint_reference == simulated.endpoint_reference
    assert candidate.source == source


def default_receive_buffer() -> int:
    return int(Path("/proc/sys/net/core/rmem_default").read_text())


async def wait_until(condition: Callable[[], object], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --- multicast ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_multicast_round_finds_the_cameras_and_the_nvr_without_blocking_the_loop(
    site: list[DiscoverableDevice],
) -> None:
    prober = MulticastProber(window=WINDOW, reprobe_interval=REPROBE)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    async with asyncio.TaskGroup() as tasks:
        ticker = tasks.create_task(tick())
        found = ours(await prober.search())
        ticker.cancel()
    assert not wsdiscovery_threads_alive(), "the round must stop the package's threads"

    assert found.keys() == {simulated.address for simulated in site}
    for simulated in site:
        assert_describes(found[simulated.address], simulated, "multicast")
    assert f"{SCOPE}/type/Network_Video_Storage" in found[f"{NET}.5"].scopes
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) >= 10 and max(gaps) < WINDOW / 2, f"the loop stalled: longest gap {max(gaps):.2f} s"
    stats = prober.last_round
    assert stats is not None
    assert stats.source_addresses == ("127.0.0.1",)
    assert stats.probes_sent >= 2
    assert stats.reply_buffer_bytes > default_receive_buffer()
    assert 0 <= stats.settled_seconds < WINDOW


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_field_quirks_malformed_xaddrs_and_cloned_endpoint_references(
    loopback_multicast: str,  # noqa: F811
) -> None:
    doubled_port = device(21, xaddr=f"http://{NET}.21:8000:8000/onvif/device_service")
    not_http = device(22, xaddr=f"ftp://{NET}.22/onvif/device_service")
    ipv6_only = device(23, xaddr="http://[fe80::1]:80/onvif/device_service")
    clone = device(24)
    other_clone = device(25, endpoint_reference=clone.endpoint_reference)  # same firmware image
    async with responders([doubled_port, not_http, ipv6_only, clone, other_clone]):
        by_multicast = ours(await MulticastProber(window=WINDOW, reprobe_interval=REPROBE).search())
        by_unicast = ours(await loopback_unicast().scan(expand_hosts([f"{NET}.21-{NET}.23"])))

    assert by_multicast.keys() == {doubled_port.address, clone.address, other_clone.address}
    assert_describes(by_multicast[other_clone.address], other_clone, "multicast")
    assert by_multicast[doubled_port.address].address == DeviceAddress(doubled_port.address, 8000)
    assert by_multicast[doubled_port.address].xaddrs == (doubled_port.xaddr,)
    # A unicast answer comes from the probed host, so it stays a candidate (port 80 as a guess).
    assert by_unicast[doubled_port.address].address == DeviceAddress(doubled_port.address, 8000)
    assert by_unicast[not_http.address].address == DeviceAddress(not_http.address, 80)
    assert by_unicast[ipv6_only.address].xaddrs == (ipv6_only.xaddr,)


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_interface_address_not_on_this_host_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    prober = MulticastProber(window=WINDOW, interfaces=["192.0.2.1"])  # TEST-NET-1: never local

    assert await prober.search() == []

    assert prober.last_round == MulticastRoundStats()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("192.0.2.1 is not an address of this host" in message for message in warnings)


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_cancelling_a_round_stops_its_threads() -> None:
    prober = MulticastProber(window=60, reprobe_interval=REPROBE)
    search = asyncio.ensure_future(prober.search())
    try:
        await wait_until(lambda: len(wsdiscovery_threads_alive()) >= 2, timeout=5)
        cancelled_at = time.monotonic()
        search.cancel()
        with pytest.raises(asyncio.CancelledError):
            await search
        stopped_after = time.monotonic() - cancelled_at
    finally:
        if not search.done():
            search.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await search

    assert stopped_after < ROUND_STOP_GRACE
    assert not wsdiscovery_threads_alive()
    assert not round_threads()


# --- unicast -----------------------------------------------------------------------------------


async def test_unicast_cidr_scan_finds_every_device_in_the_block() -> None:
    async with responders(site_devices()) as devices:
        # NET.0/29 holds NET.1-6: five devices and one address where nothing listens.
        found = ours(await loopback_unicast().scan(expand_hosts([f"{NET}.0/29"])))

    assert found.keys() == {simulated.address for simulated in devices}
    for simulated in devices:
        assert_describes(found[simulated.address], simulated, "unicast")


async def test_unicast_answer_keeps_the_probed_host_when_xaddrs_name_another() -> None:
    behind_nat = device(31, xaddr="http://192.168.1.64:8080/onvif/device_service")
    async with responders([behind_nat]):
        found = ours(await loopback_unicast().scan([behind_nat.address]))

    candidate = found[behind_nat.address]
    assert candidate.address == DeviceAddress(behind_nat.address, 8080)
    assert candidate.xaddrs == (behind_nat.xaddr,)


class SlowDevices:
    """Devices that answer unicast Probes after ``answer_delay`` (never when None) and keep count.

    ``outstanding`` holds the Probes received and not yet answered across all of them, so its peak
    is the number of hosts the prober was waiting on at once, seen from the network side.
    """

    def __init__(self, devices: Sequence[DiscoverableDevice], answer_delay: float | None) -> None:
        self.devices = {simulated.address: simulated for simulated in devices}
        self.answer_delay = answer_delay
        self.probed: dict[str, set[str]] = {address: set() for address in self.devices}
        self.outstanding: set[str] = set()
        self.peak_outstanding = 0
        self._transports: dict[str, asyncio.DatagramTransport] = {}
        self._closed: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        for address in self.devices:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, WSD_PORT))
            closed = loop.create_future()
            self._closed.append(closed)
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_SlowDeviceSocket, self, address, closed), sock=sock
            )
            self._transports[address] = transport
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for transport in self._transports.values():
            transport.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._closed)

    def received(self, address: str, data: bytes, sender: tuple[str, int]) -> None:
        probe = parse_probe(data)
        if probe is None or probe.message_id in self.probed[address]:
            return  # the prober's repeat of a Probe already counted
        self.probed[address].add(probe.message_id)
        self.outstanding.add(probe.message_id)
        self.peak_outstanding = max(self.peak_outstanding, len(self.outstanding))
        if self.answer_delay is not None:
            asyncio.get_running_loop().call_later(
                self.answer_delay, self.answer, address, probe.message_id, sender
            )

    def answer(self, address: str, message_id: str, prober: tuple[str, int]) -> None:
        self.outstanding.discard(message_id)
        reply = render_probe_matches(
            self.devices[address], message_id, AppSequence(1, len(self.probed[address]))
        )
        self._transports[address].sendto(reply, prober)


class _SlowDeviceSocket(asyncio.DatagramProtocol):
    def __init__(self, devices: SlowDevices, address: str, closed: asyncio.Future[None]) -> None:
        self.devices, self.address, self.closed = devices, address, closed

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.devices.received(self.address, data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def test_unicast_probes_only_listed_hosts_and_at_most_concurrency_at_once() -> None:
    listed = [device(number) for number in range(41, 53)]
    unlisted = [device(number) for number in range(53, 57)]
    prober = loopback_unicast(concurrency=4, timeout=2.0)
    async with SlowDevices(listed, answer_delay=0.2) as answering, SlowDevices(unlisted, None) as silent:
        found = ours(await prober.scan(expand_hosts([f"{NET}.41-{NET}.52"])))

    assert found.keys() == {simulated.address for simulated in listed}
    assert all(len(message_ids) == 1 for message_ids in answering.probed.values())
    assert answering.peak_outstanding == 4
    assert prober.peak_in_flight == 4 and prober.in_flight == 0
    assert not any(silent.probed.values()), "a probe went to a host that is not in the list"


# --- static entries and the finder -------------------------------------------------------------


async def test_static_entries_are_candidates_without_probing() -> None:
    probed: list[object] = []

    async def multicast() -> list[Discovered]:
        probed.append("multicast")
        return []

    async def unicast(hosts: Sequence[str]) -> list[Discovered]:
        probed.append(hosts)
        return []

    cameras = [
        CameraEntry(host=f"{NET}.62", port=8443, https=True, name="Gate"),
        CameraEntry(host=f"{NET}.61", name="Lobby"),
    ]
    finder = DeviceFinder(DiscoverySection(multicast=False), cameras, multicast=multicast, unicast=unicast)

    found = await finder.find()

    assert found == [
        Discovered(DeviceAddress(f"{NET}.61", 80), source="static"),
        Discovered(DeviceAddress(f"{NET}.62", 8443, https=True), source="static"),
    ]
    assert probed == []


@pytest.mark.usefixtures("wsdiscovery_loopback")
async def test_one_round_merges_the_three_sources_without_duplicates(
    site: list[DiscoverableDevice],
) -> None:
    outside_the_range = device(20, name="Annex Camera")
    discovery = DiscoverySection(
        probe_timeout=Duration(WINDOW), interfaces=("127.0.0.1",), unicast_hosts=(f"{NET}.0/29",)
    )
    cameras = [CameraEntry(host=f"{NET}.1", port=8000, name="Lobby"), CameraEntry(host=f"{NET}.30")]
    multicast = MulticastProber(window=WINDOW, interfaces=discovery.interfaces, reprobe_interval=REPROBE)
    finder = DeviceFinder(discovery, cameras, multicast=multicast.search, unicast=loopback_unicast().scan)
    async with responders([outside_the_range]):
        found = ours(await finder.find())

    assert found.keys() == {f"{NET}.{number}" for number in (1, 2, 3, 4, 5, 20, 30)}
    assert_describes(found[f"{NET}.1"], site[0], "static")  # scopes, XAddr and EPR merged in
    for simulated in site[1:]:
        assert_describes(found[simulated.address], simulated, "unicast")
    assert_describes(found[outside_the_range.address], outside_the_range, "multicast")
    assert found[f"{NET}.30"] == Discovered(DeviceAddress(f"{NET}.30", 80), source="static")
    report = finder.last_report
    assert report is not None
    assert (report.static, report.unicast, report.failed_sources) == (2, 5, ())
    assert report.multicast >= 6  # other runs' devices on this host may answer too
    assert multicast.last_round is not None and multicast.last_round.source_addresses == ("127.0.0.1",)


def test_merge_keeps_the_strongest_source_and_unites_scopes() -> None:
    address = DeviceAddress("10.1.2.3", 80)
    candidates = [
        Discovered(address, ("http://10.1.2.3/onvif/device_service",), ("a", "b"), "urn:uuid:1", "multicast"),
        Discovered(DeviceAddress("10.1.2.3", 80, https=True), source="static"),
        Discovered(
            address, ("http://10.1.2.3:80/onvif/device_service",), ("b", "c"), "urn:uuid:1", "unicast"
        ),
        Discovered(DeviceAddress("10.1.2.3", 8080), source="multicast"),
        Discovered(DeviceAddress("10.1.2.20", 80), source="multicast"),
        Discovered(DeviceAddress("CAM.example", 80), source="static"),
        Discovered(DeviceAddress("cam.example", 80), source="unicast"),
    ]

    merged = merge_candidates(candidates)

    assert merged == [
        Discovered(
            DeviceAddress("10.1.2.3", 80, https=True),
            ("http://10.1.2.3:80/onvif/device_service", "http://10.1.2.3/onvif/device_service"),
            ("b", "c", "a"),
            "urn:uuid:1",
            "static",
        ),
        Discovered(DeviceAddress("10.1.2.3", 8080), source="multicast"),
        Discovered(DeviceAddress("10.1.2.20", 80), source="multicast"),
        Discovered(DeviceAddress("CAM.example", 80), source="static"),
    ]


async def test_finder_reports_the_round_and_survives_a_failing_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readings = iter([100.0, 102.5])
    unicast_calls: list[Sequence[str]] = []

    async def multicast() -> list[Discovered]:
        return [
            Discovered(DeviceAddress("10.0.0.7", 80), endpoint_reference="urn:uuid:7", source="multicast")
        ]

    async def unicast(hosts: Sequence[str]) -> list[Discovered]:
        unicast_calls.append(hosts)
        raise OSError(101, "Network is unreachable")

    discovery = DiscoverySection(unicast_hosts=("10.0.0.1-10.0.0.3",))
    finder = DeviceFinder(discovery, multicast=multicast, unicast=unicast, clock=lambda: next(readings))

    found = await finder.find()

    assert found == [Discovered(DeviceAddress("10.0.0.7", 80), endpoint_reference="urn:uuid:7")]
    assert unicast_calls == [["10.0.0.1", "10.0.0.2", "10.0.0.3"]]
    report = finder.last_report
    assert report is not None
    assert (report.started, report.seconds, report.multicast, report.unicast) == (100.0, 2.5, 1, 0)
    assert report.failed_sources == (DiscoverySource.UNICAST,)
    assert any(
        "unicast discovery failed" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


@pytest.mark.parametrize(
    ("xaddr", "expected"),
    [
        ("http://10.0.0.5/onvif/device_service", DeviceAddress("10.0.0.5", 80)),
        ("http://10.0.0.5:8000/onvif/device_service", DeviceAddress("10.0.0.5", 8000)),
        ("https://10.0.0.5/onvif/device_service", DeviceAddress("10.0.0.5", 443, https=True)),
        ("HTTP://Cam-1.Site.Lan:8080/onvif", DeviceAddress("cam-1.site.lan", 8080)),
        ("http://10.0.0.5:80:80/onvif/device_service", DeviceAddress("10.0.0.5", 80)),
        ("http://10.0.0.5:8000:8000", DeviceAddress("10.0.0.5", 8000)),
        ("http://admin:secret@10.0.0.5:81/onvif", DeviceAddress("10.0.0.5", 81)),
        ("http://10.0.0.5:0/onvif", None),
        ("http://10.0.0.5:99999/onvif", None),
        ("http://10.0.0.5:http/onvif", None),
        ("http://[fe80::1]:80/onvif/device_service", None),
        ("http://0.0.0.0/onvif/device_service", None),
        ("http://239.255.255.250:3702/", None),
        ("http://255.255.255.255/onvif/device_service", None),
        ("http://10.0.0.5:80:80:80/onvif/device_service", None),
        ("soap.udp://10.0.0.5:3702", None),
        ("10.0.0.5:80", None),
        ("http:///onvif", None),
        ("", None),
    ],
)
def test_address_from_xaddr(xaddr: str, expected: DeviceAddress | None) -> None:
    assert address_from_xaddr(xaddr) == expected


# --- network namespaces ------------------------------------------------------------------------


@pytest.mark.netns
async def test_discovery_over_a_veth_interface_in_namespaces(tmp_path: Path) -> None:
    processes: list[asyncio.subprocess.Process] = []
    async with veth_namespace_pair(subnet="10.238.0") as pair:
        annex = DiscoverableDevice(
            name="Annex Camera",
            address=pair.device_address,
            xaddr=f"http://{pair.device_address}:8000/onvif/device_service",
        )
        stderr_path = tmp_path / "responder.stderr"
        try:
            with stderr_path.open("wb") as stderr:
                responder = await asyncio.create_subprocess_exec(
                    *namespace_command(
                        pair.device_namespace, sys.executable, "-m", "sim.wsdiscovery_responder",
                        "--address", annex.address, "--xaddr", annex.xaddr, "--name", annex.name,
                        "--endpoint-reference", annex.endpoint_reference, "--app-max-delay", "0",
                    ),
                    stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=REPO_ROOT,
                )  # fmt: skip
            processes.append(responder)
            assert responder.stdout is not None
            ready = await asyncio.wait_for(responder.stdout.readline(), 15)
            assert ready.decode().split() == ["ready", annex.endpoint_reference], stderr_path.read_text()

            finder = await asyncio.create_subprocess_exec(
                *namespace_command(
                    pair.client_namespace, sys.executable, str(NAMESPACE_SCRIPT),
                    "--device", annex.address, "--interface", pair.client_address, "--window", str(WINDOW),
                ),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
            )  # fmt: skip
            processes.append(finder)
            output, errors = await asyncio.wait_for(finder.communicate(), 30)
            assert finder.returncode == 0, errors.decode()
            responder.terminate()
            assert await asyncio.wait_for(responder.wait(), 10) == 0, stderr_path.read_text()
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    assert all(process.returncode is not None for process in processes)

    result = json.loads(output)
    expected = {
        "address": {"host": annex.address, "port": 8000, "https": False},
        "xaddrs": [annex.xaddr],
        "scopes": sorted(expected_scopes(annex)),
        "endpoint_reference": annex.endpoint_reference,
    }
    # Default interfaces: the package picks the veth address (it skips loopback) and finds the device.
    assert result["default"]["candidates"] == [{**expected, "source": "multicast"}]
    assert result["default"]["sources"] == [pair.client_address]
    # Configured interface plus a unicast host: one candidate, found both ways.
    assert result["configured"]["candidates"] == [{**expected, "source": "unicast"}]
    assert result["configured"]["sources"] == [pair.client_address]
    assert (result["configured"]["unicast"], result["configured"]["multicast"]) == (1, 1)
    # Port 3702 held by a socket that does not share it: the round fails, no thread is left behind.
    assert result["port_busy"]["error"] == "EADDRINUSE"
    assert result["port_busy"]["threads_left"] == []
