"""``CameraSession`` against simulated ONVIF cameras and NVRs on loopback.

Every device is a real ``OnvifDeviceServer`` on 127.0.0.1 (port 0). PTZ and focus motion read a
fake monotonic clock that the tests advance, so positions are asserted exactly without sleeping.
Only the tests about slowness use real time, with short delays and bounds.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestServer

from bridges.errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceBusy,
    DeviceRequestRejected,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)
from bridges.onvif.channels import MediaProfileInfo, plan_channels
from bridges.onvif.models import DeviceAddress, DeviceFault, DeviceKind, Preset
from bridges.onvif.session import CameraSession
from bridges.onvif.snapshot import HttpAuthScheme
from bridges.onvif.soap import PasswordMode
from bridges.onvif.transport import retry_connection_error, tls_setting
from bridges.onvif.wsdl import WsdlCatalog
from bridges.onvif.xaddrs import rebase_xaddr
from sim.onvif import (
    AuthRejection,
    DateTimeSource,
    DeviceDescription,
    OnvifDeviceServer,
    Quirk,
    SnapshotAuthMode,
    StreamKind,
)
from tests.sim.onvif_fixtures import (
    PASSWORD,
    USERNAME,
    FakeMonotonicClock,
    camera_description,
    decode_jpeg,
    nvr_description,
    rtsp_url,
)

CAMERA_SOURCE = "VideoSource_1"
StartDevice = Callable[..., Awaitable[OnvifDeviceServer]]
OpenSession = Callable[..., Awaitable[CameraSession]]


@pytest.fixture
def clock() -> FakeMonotonicClock:
    return FakeMonotonicClock()


@pytest.fixture
async def start_device(clock: FakeMonotonicClock) -> AsyncIterator[StartDevice]:
    """Start simulated devices on demand; all are closed at the end of the test."""
    started: list[OnvifDeviceServer] = []

    async def start(description: DeviceDescription, **kwargs: Any) -> OnvifDeviceServer:
        kwargs.setdefault("clock", clock)
        device = OnvifDeviceServer(description, **kwargs)
        await device.start()
        started.append(device)
        return device

    yield start
    for device in started:
        await device.close()


def session_for(device: OnvifDeviceServer, password: str = PASSWORD, **kwargs: Any) -> CameraSession:
    """A (not yet opened) session for a simulated device."""
    kwargs.setdefault("timeout", 5.0)
    return CameraSession(DeviceAddress(device.host, device.port), USERNAME, password, **kwargs)


@pytest.fixture
async def open_session() -> AsyncIterator[OpenSession]:
    """Open sessions on demand; all are closed (and checked closed) at the end of the test."""
    sessions: list[CameraSession] = []

    async def open_(device: OnvifDeviceServer, **kwargs: Any) -> CameraSession:
        session = session_for(device, **kwargs)
        sessions.append(session)
        await session.open()
        return session

    yield open_
    for session in sessions:
        await session.close()
        assert not session.is_open


async def started_session(
    start_device: StartDevice, open_session: OpenSession, **overrides: Any
) -> tuple[OnvifDeviceServer, CameraSession]:
    """A simulated camera (with description overrides) and an open session to it."""
    device = await start_device(camera_description(**overrides))
    return device, await open_session(device)


# --- describe -----------------------------------------------------------------------------------


async def test_describe_camera(start_device: StartDevice, open_session: OpenSession) -> None:
    device, session = await started_session(start_device, open_session)
    description = await session.describe()

    assert description.identity == "mac:02:00:5e:00:00:01"
    assert description.kind is DeviceKind.IPC
    assert (description.manufacturer, description.model, description.serial) == (
        "Acme Vision",
        "AV-PTZ-200",
        "AV200-0001",
    )
    assert description.firmware == "V5.7.3 build 240110"
    assert description.address == DeviceAddress("127.0.0.1", device.port)
    assert abs(description.clock_skew) < 2
    (channel,) = description.channels
    assert (channel.source_token, channel.position, channel.name) == (CAMERA_SOURCE, 1, "AV-PTZ-200")
    assert (channel.main_profile, channel.sub_profile) == ("Profile_101", "Profile_102")
    assert channel.main_uri == rtsp_url("cam1", 1, "main")
    assert channel.sub_uri == rtsp_url("cam1", 1, "sub")
    assert (channel.width, channel.height) == (1920, 1080)
    assert channel.ptz and channel.imaging
    assert session.password_mode is PasswordMode.DIGEST
    assert session.fault is DeviceFault.NONE
    assert device.auth_failures.total() == 0


async def test_describe_nvr_with_four_channels(start_device: StartDevice, open_session: OpenSession) -> None:
    device = await start_device(nvr_description())
    session = await open_session(device)
    description = await session.describe()

    assert description.identity == "mac:02:00:5e:00:00:42"
    assert description.kind is DeviceKind.NVR
    assert [c.source_token for c in description.channels] == [f"VideoSource_{n}" for n in range(1, 5)]
    assert [c.position for c in description.channels] == [1, 2, 3, 4]
    assert [c.name for c in description.channels] == [f"AV-NVR-8 ch{n}" for n in range(1, 5)]
    assert [(c.main_uri, c.sub_uri) for c in description.channels] == [
        (rtsp_url("nvr1", n, "main"), rtsp_url("nvr1", n, "sub")) for n in range(1, 5)
    ]
    assert [c.ptz for c in description.channels] == [True, True, True, False]
    assert all(c.imaging and (c.width, c.height) == (1280, 720) for c in description.channels)

    await session.absolute_move("VideoSource_3", pan=0.4, tilt=-0.2)
    assert device.ptz_position(2).pan == pytest.approx(0.4)
    assert device.ptz_position(0).pan == 0.0, "each channel drives its own head"
    with pytest.raises(DeviceUnsupported):
        await session.continuous_move("VideoSource_4", 0.5, 0.0, 0.0)


@pytest.mark.parametrize(
    ("serial", "configured_id", "identity"),
    [("AV200-0001", "", "sn:AV200-0001"), ("", "gate-cam", "id:gate-cam"), ("", "", None)],
)
async def test_identity_without_a_mac(
    start_device: StartDevice,
    open_session: OpenSession,
    serial: str,
    configured_id: str,
    identity: str | None,
) -> None:
    device = await start_device(
        camera_description(serial_number=serial, quirks=frozenset({Quirk.NO_NETWORK_INTERFACES}))
    )
    session = await open_session(device, configured_id=configured_id)
    if identity is None:
        with pytest.raises(DeviceUnsupported):
            await session.describe()
        assert session.is_open, "commands still work on a device we cannot identify"
        await session.goto_home(CAMERA_SOURCE)
    else:
        description = await session.describe()
        assert (description.identity, description.mac) == (identity, "")
    assert device.request_counts["device.GetNetworkInterfaces"] == 1


async def test_describe_refresh_reprobes(start_device: StartDevice, open_session: OpenSession) -> None:
    device, session = await started_session(start_device, open_session)
    first = await session.describe()
    assert device.request_counts["media.GetProfiles"] == 1
    assert await session.describe() == first, "cached without refresh"
    assert await session.describe(refresh=True) == first
    assert device.request_counts["media.GetProfiles"] == 2


# --- quirks -------------------------------------------------------------------------------------


async def test_clock_skew_is_signed_around_without_touching_the_camera_clock(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    device = await start_device(
        camera_description(
            quirks=frozenset({Quirk.CLOCK_SKEW}),
            clock_offset_s=3600.0,
            date_time_source=DateTimeSource.MANUAL,
        )
    )
    session = await open_session(device)
    description = await session.describe()
    assert description.clock_skew == pytest.approx(3600, abs=2)
    assert (await session.ptz_status(CAMERA_SOURCE)).pan == 0.0
    assert device.state.clock_offset_s == 3600.0, "the camera's clock is left alone"
    assert device.request_counts["device.SetSystemDateAndTime"] == 0
    assert device.auth_failures.total() == 0


async def test_sync_clock_sets_a_manual_camera_clock(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    device = await start_device(
        camera_description(
            quirks=frozenset({Quirk.CLOCK_SKEW}),
            clock_offset_s=-900.0,
            date_time_source=DateTimeSource.MANUAL,
        )
    )
    session = await open_session(device, sync_clock=True)
    assert device.request_counts["device.SetSystemDateAndTime"] == 1
    assert abs(device.state.clock_offset_s) < 2
    assert abs(session.clock_offset_s) < 2
    assert (await session.describe()).identity == "mac:02:00:5e:00:00:01"


async def test_sync_clock_leaves_an_ntp_camera_alone(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    device = await start_device(
        camera_description(quirks=frozenset({Quirk.CLOCK_SKEW}), date_time_source=DateTimeSource.NTP)
    )
    session = await open_session(device, sync_clock=True)
    assert device.request_counts["device.SetSystemDateAndTime"] == 0
    assert session.clock_offset_s == pytest.approx(3600, abs=2)


async def test_requests_are_signed_with_the_injected_clock(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    device = await start_device(camera_description())

    def two_hours_slow() -> float:
        return time.time() - 7200  # our clock is wrong this time, not the camera's

    session = await open_session(device, clock=two_hours_slow)
    assert session.clock_offset_s == pytest.approx(7200, abs=2)
    assert (await session.describe()).channels[0].ptz
    assert device.auth_failures.total() == 0


async def test_no_snapshot(start_device: StartDevice, open_session: OpenSession) -> None:
    device, session = await started_session(start_device, open_session, quirks=frozenset({Quirk.NO_SNAPSHOT}))
    for _ in range(2):
        with pytest.raises(DeviceUnsupported):
            await session.snapshot(CAMERA_SOURCE)
    assert device.request_counts["media.GetSnapshotUri"] == 0, "the capability said so; nothing asked"
    assert sum(device.state.snapshot_requests.values()) == 0
    assert session.fault is DeviceFault.NONE, "an unsupported feature does not isolate the device"


async def test_no_stop_falls_back_to_a_zero_velocity_move(
    start_device: StartDevice, open_session: OpenSession, clock: FakeMonotonicClock
) -> None:
    device, session = await started_session(start_device, open_session, quirks=frozenset({Quirk.NO_STOP}))
    await session.continuous_move(CAMERA_SOURCE, 0.3, 0.0, 0.0)
    clock.advance(1.0)
    await session.stop(CAMERA_SOURCE)
    clock.advance(5.0)
    position = await session.ptz_status(CAMERA_SOURCE)
    assert (position.pan, position.tilt, position.zoom) == pytest.approx((0.3, 0.0, 0.0))
    assert not position.pan_tilt_moving

    await session.continuous_move(CAMERA_SOURCE, -0.1, 0.0, 0.0)
    clock.advance(1.0)
    await session.stop(CAMERA_SOURCE)
    clock.advance(3.0)
    assert device.ptz_position().pan == pytest.approx(0.2), "frozen again"
    assert device.request_counts["ptz.Stop"] == 1, "the missing Stop is remembered"
    assert device.request_counts["ptz.ContinuousMove"] == 4


async def test_bad_xaddrs_are_normalised(start_device: StartDevice, open_session: OpenSession) -> None:
    device, session = await started_session(start_device, open_session, quirks=frozenset({Quirk.BAD_XADDRS}))
    assert session.service_addresses == {
        "devicemgmt": f"{device.base_url}/onvif/device_service",
        "media": f"{device.base_url}/onvif/media_service",
        "ptz": f"{device.base_url}/onvif/ptz_service",
        "imaging": f"{device.base_url}/onvif/imaging_service",
    }
    await session.relative_move(CAMERA_SOURCE, pan=0.25)
    assert device.ptz_position().pan == pytest.approx(0.25)
    assert (await session.describe()).channels[0].main_uri == rtsp_url("cam1", 1, "main")


async def test_ptz_on_one_profile_only(start_device: StartDevice, open_session: OpenSession) -> None:
    device = await start_device(nvr_description(quirks=frozenset({Quirk.PTZ_ONE_PROFILE})))
    session = await open_session(device)
    description = await session.describe()
    assert [c.ptz for c in description.channels] == [True, False, False, False]
    with pytest.raises(DeviceUnsupported):
        await session.goto_home("VideoSource_2")
    assert device.request_counts["ptz.GotoHomePosition"] == 0, "refused before anything is sent"
    await session.goto_home("VideoSource_1")
    assert device.request_counts["ptz.GotoHomePosition"] == 1


async def test_bad_utf8_is_cleaned_once_and_other_devices_are_unaffected(
    start_device: StartDevice, open_session: OpenSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridges.onvif.session")
    broken = await start_device(camera_description(quirks=frozenset({Quirk.BAD_UTF8})))
    healthy = await start_device(nvr_description())
    broken_session, healthy_session = await asyncio.gather(open_session(broken), open_session(healthy))

    broken_description = await broken_session.describe(refresh=True)
    assert broken_description.model == "AV-PTZ-200"
    assert broken_description.channels[0].name == "AV-PTZ-200"
    assert broken_description.serial == "AV200-0001"
    warnings = [r for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(warnings) == 1, "logged once per field, not per refresh"
    assert (await healthy_session.describe()).model == "AV-NVR-8"


async def test_malformed_xml_isolates_only_that_device(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    async def garbage(_request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(
            body=b"<?xml version='1.0'?><env:Envelope><oops", content_type="application/soap+xml"
        )

    healthy = await start_device(camera_description())
    async with RawTestServer(garbage, host="127.0.0.1", port=0) as server:
        broken = CameraSession(DeviceAddress("127.0.0.1", server.port or 0), USERNAME, PASSWORD, timeout=5.0)
        results = await asyncio.gather(broken.open(), open_session(healthy), return_exceptions=True)
        assert isinstance(results[0], DeviceBadResponse)
        assert broken.fault is DeviceFault.BAD_RESPONSE
        assert not broken.is_open
        await broken.close()
    assert isinstance(results[1], CameraSession) and results[1].is_open
    assert (await results[1].describe()).model == "AV-PTZ-200"


EMPTY_BODY = b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>'


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b"not xml at all", DeviceBadResponse),
        (200, b"\xff\xfe\x00 not even text", DeviceBadResponse),
        (200, EMPTY_BODY, DeviceBadResponse),
        (200, b"", DeviceBadResponse),
        (500, b"<html>internal error</html>", DeviceBadResponse),
        (401, b"<html>401 Unauthorized</html>", DeviceAuthFailed),
        (403, b"", DeviceAuthFailed),
        (404, b"<html>no such page</html>", DeviceUnsupported),
        (503, b"", DeviceBusy),
    ],
    ids=["text", "binary", "empty-body", "empty", "500-html", "401-html", "403", "404-html", "503"],
)
async def test_http_answers_that_are_not_soap(status: int, body: bytes, expected: type[Exception]) -> None:
    async def answer(_request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type="application/soap+xml")

    async with RawTestServer(answer, host="127.0.0.1", port=0) as server:
        session = CameraSession(DeviceAddress("127.0.0.1", server.port or 0), USERNAME, PASSWORD, timeout=5.0)
        with pytest.raises(expected):
            await session.open()
        await session.close()


async def test_slow_device_times_out_within_the_bound(start_device: StartDevice) -> None:
    device = await start_device(camera_description(quirks=frozenset({Quirk.SLOW}), slow_delay_s=2.0))
    session = session_for(device, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DeviceTimeout):
        await session.open()
    assert time.monotonic() - started < 1.0
    assert session.fault is DeviceFault.UNREACHABLE
    await session.close()


# --- failures at set-up ---------------------------------------------------------------------------


async def test_wrong_password_is_auth_failed(start_device: StartDevice) -> None:
    device = await start_device(camera_description())
    session = session_for(device, password="wrong")
    with pytest.raises(DeviceAuthFailed) as refused:
        await session.open()
    assert refused.value.host == "127.0.0.1"
    assert device.auth_failures[AuthRejection.BAD_PASSWORD] == 2, "digest, then the text fallback"
    assert session.fault is DeviceFault.AUTH_FAILED and not session.is_open
    await session.close()


async def test_closed_port_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = CameraSession(DeviceAddress("127.0.0.1", port), USERNAME, PASSWORD, timeout=2.0)
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await session.open()
    assert time.monotonic() - started < 2.0, "three quick attempts with a short backoff"
    await session.close()


async def test_password_text_fallback(start_device: StartDevice, open_session: OpenSession) -> None:
    device = await start_device(camera_description(wsse_text_only=True))
    session = await open_session(device)
    assert session.password_mode is PasswordMode.TEXT
    assert (await session.describe()).identity == "mac:02:00:5e:00:00:01"
    await session.goto_home(CAMERA_SOURCE)
    assert device.auth_failures[AuthRejection.DIGEST_REFUSED] == 1, "digest tried once, then never again"
    assert device.auth_failures.total() == 1


# --- PTZ, imaging, snapshots -----------------------------------------------------------------------


async def test_ptz_moves(
    start_device: StartDevice, open_session: OpenSession, clock: FakeMonotonicClock
) -> None:
    device, session = await started_session(start_device, open_session)
    await session.continuous_move(CAMERA_SOURCE, 0.5, -0.25, 0.1)
    clock.advance(1.0)
    moving = await session.ptz_status(CAMERA_SOURCE)
    assert (moving.pan, moving.tilt, moving.zoom) == pytest.approx((0.5, -0.25, 0.1))
    assert moving.pan_tilt_moving and moving.zoom_moving
    await session.stop(CAMERA_SOURCE)
    clock.advance(2.0)
    stopped = device.ptz_position()
    assert (stopped.pan, stopped.tilt, stopped.zoom) == pytest.approx((0.5, -0.25, 0.1))

    await session.continuous_move(CAMERA_SOURCE, -1.0, 0.0, 0.0, timeout=1.0)
    clock.advance(5.0)
    assert device.ptz_position().pan == pytest.approx(-0.5), "stopped by the move timeout"

    await session.relative_move(CAMERA_SOURCE, pan=0.25, tilt=0.5)
    assert (device.ptz_position().pan, device.ptz_position().tilt) == pytest.approx((-0.25, 0.25))
    await session.absolute_move(CAMERA_SOURCE, zoom=0.75)
    assert device.ptz_position().zoom == pytest.approx(0.75)
    assert device.ptz_position().pan == pytest.approx(-0.25), "omitted axes stay"
    await session.goto_home(CAMERA_SOURCE)
    home = await session.ptz_status(CAMERA_SOURCE)
    assert (home.pan, home.tilt, home.zoom) == (0.0, 0.0, 0.0)

    requests_before = device.request_counts.total()
    with pytest.raises(DeviceRequestRejected):
        await session.continuous_move(CAMERA_SOURCE, 1.5, 0.0, 0.0)
    with pytest.raises(DeviceRequestRejected):
        await session.absolute_move(CAMERA_SOURCE, pan=0.5)
    with pytest.raises(DeviceRequestRejected):
        await session.ptz_status("VideoSource_9")
    assert device.request_counts.total() == requests_before, "refused locally"
    assert session.fault is DeviceFault.NONE


async def test_presets_round_trip(start_device: StartDevice, open_session: OpenSession) -> None:
    device, session = await started_session(start_device, open_session)
    assert await session.get_presets(CAMERA_SOURCE) == []
    await session.absolute_move(CAMERA_SOURCE, pan=0.2, tilt=0.1, zoom=0.3)
    gate = await session.set_preset(CAMERA_SOURCE, "Gate")
    await session.absolute_move(CAMERA_SOURCE, pan=-0.6, tilt=0.4)
    yard = await session.set_preset(CAMERA_SOURCE, "Yard", preset_token="17")
    assert (gate, yard) == ("1", "17")
    assert await session.get_presets(CAMERA_SOURCE) == [Preset("1", "Gate"), Preset("17", "Yard")]

    await session.goto_preset(CAMERA_SOURCE, gate)
    position = device.ptz_position()
    assert (position.pan, position.tilt, position.zoom) == pytest.approx((0.2, 0.1, 0.3))
    await session.absolute_move(CAMERA_SOURCE, pan=0.9, tilt=0.9)
    assert await session.set_preset(CAMERA_SOURCE, "Gate", preset_token=gate) == gate
    assert device.presets()[0].position.pan == pytest.approx(0.9), "overwritten in place"

    await session.remove_preset(CAMERA_SOURCE, yard)
    assert await session.get_presets(CAMERA_SOURCE) == [Preset("1", "Gate")]
    with pytest.raises(DeviceRequestRejected):
        await session.remove_preset(CAMERA_SOURCE, yard)
    with pytest.raises(DeviceRequestRejected):
        await session.goto_preset(CAMERA_SOURCE, "99")
    assert session.fault is DeviceFault.NONE


async def test_focus_and_iris(
    start_device: StartDevice, open_session: OpenSession, clock: FakeMonotonicClock
) -> None:
    device, session = await started_session(start_device, open_session)
    await session.focus_move(CAMERA_SOURCE, 0.2)
    clock.advance(1.0)
    await session.focus_stop(CAMERA_SOURCE)
    clock.advance(1.0)
    assert device.imaging().focus.position() == pytest.approx(0.7)

    assert await session.iris_step(CAMERA_SOURCE, -3.0) == pytest.approx(-3.0)
    assert (device.imaging().iris, device.imaging().exposure_mode) == (-3.0, "MANUAL")
    assert await session.iris_step(CAMERA_SOURCE, -30.0) == pytest.approx(-22.0), "clamped to the range"
    assert await session.iris_step(CAMERA_SOURCE, 50.0) == pytest.approx(0.0)
    settings = await session.imaging_settings(CAMERA_SOURCE)
    assert (settings.iris, settings.iris_min, settings.iris_max) == (0.0, -22.0, 0.0)
    assert (settings.exposure_mode, settings.brightness, settings.focus_mode) == ("MANUAL", 50.0, "AUTO")
    with pytest.raises(DeviceRequestRejected):
        await session.focus_move(CAMERA_SOURCE, 2.0)


@pytest.mark.parametrize(
    ("mode", "scheme"),
    [
        (SnapshotAuthMode.DIGEST, HttpAuthScheme.DIGEST),
        (SnapshotAuthMode.BOTH, HttpAuthScheme.DIGEST),
        (SnapshotAuthMode.BASIC, HttpAuthScheme.BASIC),
    ],
)
async def test_snapshot_is_a_jpeg(
    start_device: StartDevice, open_session: OpenSession, mode: SnapshotAuthMode, scheme: HttpAuthScheme
) -> None:
    device, session = await started_session(start_device, open_session, snapshot_auth=mode)
    for _ in range(2):
        image = await session.snapshot(CAMERA_SOURCE)
        assert image[:2] == b"\xff\xd8"
        assert decode_jpeg(image) == (1920, 1080)
    assert session.snapshot_auth is scheme
    # First snapshot: a 401 challenge, then the authenticated GET; the second authenticates at once.
    assert device.state.snapshot_requests[device.profile_token(0, StreamKind.MAIN)] == 3
    assert device.request_counts["media.GetSnapshotUri"] == 1, "the URI is cached"


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_verification_is_on_unless_switched_off() -> None:
    assert tls_setting(True) is True, "aiohttp's default context: verifies chain and hostname"
    relaxed = tls_setting(False)
    assert isinstance(relaxed, ssl.SSLContext) and relaxed.verify_mode is ssl.CERT_NONE
    assert CameraSession(DeviceAddress("127.0.0.1"), USERNAME, PASSWORD).verifies_tls
    assert not CameraSession(DeviceAddress("127.0.0.1"), USERNAME, PASSWORD, verify_tls=False).verifies_tls


@pytest.fixture(scope="module")
def self_signed_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ssl.SSLContext]:
    """A server context with a throw-away self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory: Path = tmp_path_factory.mktemp("tls")
    key, certificate = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    yield context


@pytest.fixture
async def tls_front(
    start_device: StartDevice, self_signed_tls: ssl.SSLContext
) -> AsyncIterator[tuple[TestServer, list[str]]]:
    """An HTTPS front for a simulated camera (the simulator speaks plain HTTP only)."""
    device = await start_device(camera_description())
    forwarded: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        forwarded.append(request.path)
        async with (
            aiohttp.ClientSession() as client,
            client.request(
                request.method,
                f"{device.base_url}{request.path_qs}",
                data=await request.read(),
                headers={"Content-Type": request.headers.get("Content-Type", "application/soap+xml")},
            ) as answer,
        ):
            return web.Response(status=answer.status, body=await answer.read(), headers={
                "Content-Type": answer.headers.get("Content-Type", "application/soap+xml")
            })  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(ssl=self_signed_tls)
    try:
        yield server, forwarded
    finally:
        await server.close()


async def test_tls_certificate_is_verified_by_default(tls_front: tuple[TestServer, list[str]]) -> None:
    server, forwarded = tls_front
    address = DeviceAddress("127.0.0.1", server.port or 0, https=True)
    strict = CameraSession(address, USERNAME, PASSWORD, timeout=5.0)
    with pytest.raises(DeviceUnreachable):
        await strict.open()
    await strict.close()
    assert forwarded == [], "the handshake failed before any request"

    async with CameraSession(address, USERNAME, PASSWORD, timeout=5.0, verify_tls=False) as relaxed:
        assert (await relaxed.describe()).identity == "mac:02:00:5e:00:00:01"
        assert relaxed.service_addresses["media"] == f"https://127.0.0.1:{server.port}/onvif/media_service"
    assert "/onvif/media_service" in forwarded


# --- serialisation, lifecycle and shared resources -------------------------------------------------


async def test_commands_to_one_device_never_overlap(
    start_device: StartDevice, open_session: OpenSession
) -> None:
    delay = 0.15
    slow = await start_device(camera_description(quirks=frozenset({Quirk.SLOW}), slow_delay_s=delay))
    fast = await start_device(nvr_description())
    slow_session = await open_session(slow, timeout=0.4)
    fast_session = await open_session(fast)

    started = time.monotonic()
    first = asyncio.create_task(slow_session.ptz_status(CAMERA_SOURCE))
    second = asyncio.create_task(slow_session.ptz_status(CAMERA_SOURCE))
    await fast_session.ptz_status("VideoSource_1")
    assert not first.done() and not second.done(), "the slow device does not hold up another one"
    await asyncio.wait_for(asyncio.gather(first, second), timeout=5)
    assert time.monotonic() - started >= 2 * delay * 0.95, "one after the other, not side by side"

    queued = [asyncio.create_task(slow_session.ptz_status(CAMERA_SOURCE)) for _ in range(4)]
    outcomes = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), timeout=5)
    assert not isinstance(outcomes[0], BaseException) and not isinstance(outcomes[1], BaseException)
    assert isinstance(outcomes[3], DeviceBusy), "the fourth waits 3 x 0.15 s > its 0.4 s limit"
    assert slow_session.fault is DeviceFault.NONE, "busy is not a reason to isolate the device"


async def test_open_and_close_are_idempotent(start_device: StartDevice) -> None:
    device = await start_device(camera_description())
    session = session_for(device)
    with pytest.raises(RuntimeError):
        await session.ptz_status(CAMERA_SOURCE)
    await session.open()
    await session.open()
    assert device.request_counts["device.GetDeviceInformation"] == 1
    await session.close()
    await session.close()
    with pytest.raises(DeviceUnreachable):
        await session.ptz_status(CAMERA_SOURCE)
    with pytest.raises(RuntimeError):
        await session.open()


async def test_wsdl_documents_are_parsed_once_for_all_sessions(start_device: StartDevice) -> None:
    catalog = WsdlCatalog()
    devices = [await start_device(camera_description()) for _ in range(3)]
    sessions = [session_for(device, wsdl=catalog) for device in devices]
    await asyncio.gather(*(session.open() for session in sessions))
    try:
        assert catalog.loads == 4, "devicemgmt, media, ptz and imaging, once each"
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    async with session_for(devices[0], wsdl=catalog):
        assert catalog.loads == 4


# --- the pieces on their own ---------------------------------------------------------------------


def test_rebase_xaddr_keeps_the_path_and_repairs_the_origin() -> None:
    reached = DeviceAddress("192.0.2.7", 8080)
    assert (
        rebase_xaddr("http://10.1.1.5:80:80/onvif/Media?x=1", reached)
        == "http://192.0.2.7:8080/onvif/Media?x=1"
    )
    assert rebase_xaddr("http://cam.local/onvif/ptz", DeviceAddress("::1", 443, https=True)) == (
        "https://[::1]:443/onvif/ptz"
    )
    assert rebase_xaddr("http://10.1.1.5:80", reached) is None


def test_plan_channels_picks_main_and_sub_by_size() -> None:
    def profile(token: str, source: str, width: int, height: int, ptz: bool = False) -> MediaProfileInfo:
        return MediaProfileInfo(token, token, source, width, height, ptz)

    channels = plan_channels(
        [
            profile("b-low", "B", 640, 360),
            profile("a-sub", "A", 352, 288, ptz=True),
            profile("a-main", "A", 1920, 1080),
            profile("a-mid", "A", 1280, 720),
            profile("b-high", "B", 2560, 1440),
        ],
        ["A"],
    )
    assert [(c.source_token, c.position) for c in channels] == [("A", 1), ("B", 2)]
    first, second = channels
    assert (first.main.token, first.sub and first.sub.token, first.ptz_profile) == (
        "a-main",
        "a-sub",
        "a-sub",
    )
    assert (second.main.token, second.sub and second.sub.token, second.ptz_profile) == ("b-high", "b-low", "")


async def test_only_connect_errors_are_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    attempts: list[str] = []

    @retry_connection_error(attempts=3, backoff_s=0.01)
    async def fetch(http: aiohttp.ClientSession, url: str) -> int:
        attempts.append(url)
        async with http.get(url) as response:
            return response.status

    @retry_connection_error(attempts=3, backoff_s=0.01)
    async def parse(text: str) -> int:
        attempts.append(text)
        return int(text)

    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorError):
            await fetch(http, f"http://127.0.0.1:{closed_port}/")
    assert len(attempts) == 3
    attempts.clear()
    with pytest.raises(ValueError):
        await parse("not a number")
    assert attempts == ["not a number"]
