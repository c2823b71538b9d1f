"""The ONVIF device simulator, driven through onvif-zeep-async the way the daemon will drive it.

Every device runs on 127.0.0.1 with a free port. PTZ and focus motion read a fake monotonic clock
the tests advance, so physics is asserted exactly and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from lxml import etree
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError
from onvif.util import is_auth_error
from zeep.exceptions import Fault

from sim.onvif import (
    AuthRejection,
    DateTimeSource,
    DeviceDescription,
    OnvifDeviceServer,
    Quirk,
    SnapshotAuthMode,
    StreamKind,
)

from .onvif_fixtures import (
    PASSWORD,
    USERNAME,
    FakeMonotonicClock,
    OnvifResponseChecker,
    camera_description,
    decode_jpeg,
    digest_authorization,
    fault_subcodes,
    nvr_description,
    onvif_client,
    post_soap,
    record_responses,
    rtsp_url,
    security_header,
    soap_envelope,
    zeep_fault_subcodes,
)

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_IMAGING = "http://www.onvif.org/ver20/imaging/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
MAIN = "Profile_101"
SUB = "Profile_102"
RTSP_UNICAST = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


@pytest.fixture
def clock() -> FakeMonotonicClock:
    return FakeMonotonicClock()


@pytest.fixture
async def start_device(clock: FakeMonotonicClock) -> AsyncIterator[Callable[[DeviceDescription], Any]]:
    """Start devices on demand; all are closed at the end of the test."""
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


@pytest.fixture
async def camera_device(start_device: Callable[..., Any]) -> OnvifDeviceServer:
    device: OnvifDeviceServer = await start_device(camera_description())
    return device


@pytest.fixture
async def nvr_device(start_device: Callable[..., Any]) -> OnvifDeviceServer:
    device: OnvifDeviceServer = await start_device(nvr_description())
    return device


@pytest.fixture
async def camera(camera_device: OnvifDeviceServer) -> AsyncIterator[ONVIFCamera]:
    async with onvif_client(camera_device) as client:
        yield client


@pytest.fixture(scope="module")
def response_checker() -> OnvifResponseChecker:
    return OnvifResponseChecker()


def _utc(date_time: Any) -> dt.datetime:
    return dt.datetime(
        date_time.Date.Year,
        date_time.Date.Month,
        date_time.Date.Day,
        date_time.Time.Hour,
        date_time.Time.Minute,
        date_time.Time.Second,
        tzinfo=dt.UTC,
    )


async def _ptz_status(ptz: Any, token: str = MAIN) -> tuple[tuple[float, float, float], tuple[str, str]]:
    status = await ptz.GetStatus({"ProfileToken": token})
    position = (status.Position.PanTilt.x, status.Position.PanTilt.y, status.Position.Zoom.x)
    return position, (status.MoveStatus.PanTilt, status.MoveStatus.Zoom)


# --- set-up as an integration does it ---------------------------------------------------------


async def test_camera_setup_sequence_reports_identity_services_and_clock(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera
) -> None:
    base = camera_device.base_url
    assert camera.xaddrs == {
        NS_DEVICE: f"{base}/onvif/device_service",
        NS_MEDIA: f"{base}/onvif/media_service",
        NS_PTZ: f"{base}/onvif/ptz_service",
        NS_IMAGING: f"{base}/onvif/imaging_service",
    }
    capabilities = await camera.get_capabilities()
    assert capabilities is not None
    assert capabilities["Events"] is None and capabilities["Analytics"] is None
    assert capabilities["Media"]["XAddr"] == f"{base}/onvif/media_service"
    assert capabilities["PTZ"]["XAddr"] == f"{base}/onvif/ptz_service"
    assert capabilities["Imaging"]["XAddr"] == f"{base}/onvif/imaging_service"
    assert capabilities["Device"]["XAddr"] == camera_device.xaddr

    devicemgmt = await camera.create_devicemgmt_service()
    clock_reply = await devicemgmt.GetSystemDateAndTime()
    assert clock_reply.DateTimeType == "NTP"
    assert abs((_utc(clock_reply.UTCDateTime) - dt.datetime.now(dt.UTC)).total_seconds()) < 3

    info = await devicemgmt.GetDeviceInformation()
    description = camera_device.description
    assert (info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber, info.HardwareId) == (
        description.manufacturer,
        description.model,
        description.firmware_version,
        description.serial_number,
        description.hardware_id,
    )
    interfaces = await devicemgmt.GetNetworkInterfaces()
    assert [(i.Enabled, i.Info.HwAddress) for i in interfaces] == [(True, description.mac_address)]
    scopes = {scope.ScopeItem for scope in await devicemgmt.GetScopes()}
    assert "onvif://www.onvif.org/hardware/AV-PTZ-200" in scopes
    assert "onvif://www.onvif.org/name/Gate%20Camera" in scopes
    assert "onvif://www.onvif.org/Profile/Streaming" in scopes

    for include_capability in (False, True):
        services = await devicemgmt.GetServices({"IncludeCapability": include_capability})
        assert [s.Namespace for s in services] == [NS_DEVICE, NS_MEDIA, NS_PTZ, NS_IMAGING]
        assert all(s.Version.Major == 2 for s in services)
        assert all((s.Capabilities is not None) is include_capability for s in services)
    assert NS_EVENTS not in camera.xaddrs


async def test_camera_media_profiles_streams_and_sources(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera
) -> None:
    media = await camera.create_media_service()
    media_capabilities = await media.GetServiceCapabilities()
    assert media_capabilities.SnapshotUri is True
    assert media_capabilities.ProfileCapabilities.MaximumNumberOfProfiles == 2

    profiles = await media.GetProfiles()
    assert [p.token for p in profiles] == [MAIN, SUB]
    main, sub = profiles
    for profile, (width, height) in ((main, (1920, 1080)), (sub, (640, 360))):
        assert profile.VideoSourceConfiguration.SourceToken == "VideoSource_1"
        encoder = profile.VideoEncoderConfiguration
        assert encoder.Encoding == "H264"
        assert (encoder.Resolution.Width, encoder.Resolution.Height) == (width, height)
        assert encoder.RateControl.FrameRateLimit == 25
        assert profile.PTZConfiguration.NodeToken == "PTZNode_1"
        assert profile.PTZConfiguration.DefaultContinuousPanTiltVelocitySpace.endswith("VelocityGenericSpace")
    single = await media.GetProfile({"ProfileToken": SUB})
    assert single.token == SUB and single.Name == "Channel1_SubStream"

    sources = await media.GetVideoSources()
    assert [(s.token, s.Resolution.Width, s.Resolution.Height, s.Framerate) for s in sources] == [
        ("VideoSource_1", 1920, 1080, 25.0)
    ]
    for token, stream in ((MAIN, "main"), (SUB, "sub")):
        request = {"ProfileToken": token, "StreamSetup": RTSP_UNICAST}
        assert (await media.GetStreamUri(request)).Uri == rtsp_url("cam1", 1, stream)
    snapshot_uri = await media.GetSnapshotUri({"ProfileToken": MAIN})
    assert snapshot_uri.Uri == camera_device.snapshot_url(0, StreamKind.MAIN)
    with pytest.raises(Fault) as unknown:
        await media.GetStreamUri({"ProfileToken": "Profile_999", "StreamSetup": RTSP_UNICAST})
    assert zeep_fault_subcodes(unknown.value) == ["InvalidArgVal", "NoProfile"]


async def test_nvr_with_four_channels(nvr_device: OnvifDeviceServer) -> None:
    async with onvif_client(nvr_device) as nvr:
        assert set(nvr.xaddrs) == {NS_DEVICE, NS_MEDIA, NS_PTZ, NS_IMAGING}
        devicemgmt = await nvr.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        assert (info.Model, info.SerialNumber) == ("AV-NVR-8", "NVR8-0042")
        scopes = {scope.ScopeItem for scope in await devicemgmt.GetScopes()}
        assert "onvif://www.onvif.org/type/Network_Video_Recorder" in scopes
        media = await nvr.create_media_service()
        assert (await media.GetServiceCapabilities()).ProfileCapabilities.MaximumNumberOfProfiles == 8
        profiles = await media.GetProfiles()
        assert [p.token for p in profiles] == [f"Profile_{n}{k}" for n in range(1, 5) for k in ("01", "02")]
        for profile in profiles:
            channel = int(profile.token[8])
            assert profile.VideoSourceConfiguration.SourceToken == f"VideoSource_{channel}"
            kind = "main" if profile.token.endswith("01") else "sub"
            request = {"ProfileToken": profile.token, "StreamSetup": RTSP_UNICAST}
            assert (await media.GetStreamUri(request)).Uri == rtsp_url("nvr1", channel, kind)
            assert (profile.PTZConfiguration is not None) == (channel != 4)
        sources = await media.GetVideoSources()
        assert [s.token for s in sources] == [f"VideoSource_{n}" for n in range(1, 5)]

        ptz = await nvr.create_ptz_service()
        assert [node.token for node in await ptz.GetNodes()] == ["PTZNode_1", "PTZNode_2", "PTZNode_3"]
        configurations = await ptz.GetConfigurations()
        assert [(c.token, c.UseCount) for c in configurations] == [(f"PTZConfig_{n}", 2) for n in (1, 2, 3)]
        options = await ptz.GetConfigurationOptions({"ConfigurationToken": "PTZConfig_2"})
        assert options.PTZTimeout.Min == dt.timedelta(seconds=1)

        await ptz.AbsoluteMove(
            {"ProfileToken": "Profile_302", "Position": {"PanTilt": {"x": 0.3, "y": -0.2}}}
        )
        assert nvr_device.ptz_position(2).pan == pytest.approx(0.3)
        assert nvr_device.ptz_position(0).pan == 0.0, "channels move independently"
        with pytest.raises(Fault) as no_ptz:
            await ptz.GetStatus({"ProfileToken": "Profile_401"})
        assert zeep_fault_subcodes(no_ptz.value) == ["InvalidArgVal", "NoPTZProfile"]

        imaging = await nvr.create_imaging_service()
        await imaging.SetImagingSettings(
            {"VideoSourceToken": "VideoSource_4", "ImagingSettings": {"Brightness": 80}}
        )
        assert nvr_device.imaging(3).brightness == 80.0
        assert nvr_device.imaging(0).brightness == 50.0
        snapshot = await nvr.get_snapshot("Profile_202")
        assert snapshot is not None and decode_jpeg(snapshot) == (352, 288)


# --- PTZ ------------------------------------------------------------------------------------


async def test_continuous_move_integrates_velocity_over_the_injected_clock(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera, clock: FakeMonotonicClock
) -> None:
    ptz = await camera.create_ptz_service()
    await ptz.ContinuousMove(
        {"ProfileToken": MAIN, "Velocity": {"PanTilt": {"x": 0.5, "y": -0.25}, "Zoom": {"x": 0.1}}}
    )
    clock.advance(1.0)
    position, moving = await _ptz_status(ptz)
    assert position == pytest.approx((0.5, -0.25, 0.1))
    assert moving == ("MOVING", "MOVING")
    clock.advance(0.5)
    assert (await _ptz_status(ptz))[0] == pytest.approx((0.75, -0.375, 0.15))

    clock.advance(10.0)
    position, moving = await _ptz_status(ptz)
    assert position == pytest.approx((1.0, -1.0, 1.0)), "clamped at the end stops"
    assert moving == ("IDLE", "IDLE"), "pushing against an end stop is not moving"


async def test_continuous_move_timeout_and_selective_stop(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera, clock: FakeMonotonicClock
) -> None:
    ptz = await camera.create_ptz_service()
    await ptz.ContinuousMove(
        {
            "ProfileToken": MAIN,
            "Velocity": {"PanTilt": {"x": 0.2, "y": 0.0}},
            "Timeout": dt.timedelta(seconds=2),
        }
    )
    clock.advance(5.0)
    position, moving = await _ptz_status(ptz)
    assert position == pytest.approx((0.4, 0.0, 0.0)), "stops after Timeout"
    assert moving == ("IDLE", "IDLE")

    await ptz.ContinuousMove(
        {"ProfileToken": MAIN, "Velocity": {"PanTilt": {"x": -0.1, "y": 0.1}, "Zoom": {"x": 0.2}}}
    )
    clock.advance(1.0)
    await ptz.Stop({"ProfileToken": MAIN, "PanTilt": True, "Zoom": False})
    clock.advance(1.0)
    position, moving = await _ptz_status(ptz)
    assert position == pytest.approx((0.3, 0.1, 0.4)), "pan/tilt frozen at stop, zoom kept going"
    assert moving == ("IDLE", "MOVING")
    await ptz.Stop({"ProfileToken": MAIN})
    clock.advance(3.0)
    stopped = camera_device.ptz_position()
    assert (stopped.pan, stopped.tilt, stopped.zoom) == pytest.approx((0.3, 0.1, 0.4)), (
        "Stop without flags stops all"
    )


async def test_relative_and_absolute_moves_jump_and_validate(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera
) -> None:
    ptz = await camera.create_ptz_service()
    await ptz.AbsoluteMove(
        {"ProfileToken": MAIN, "Position": {"PanTilt": {"x": 0.5, "y": 0.5}, "Zoom": {"x": 0.25}}}
    )
    await ptz.RelativeMove({"ProfileToken": MAIN, "Translation": {"PanTilt": {"x": 0.75, "y": -0.25}}})
    position = camera_device.ptz_position()
    assert (position.pan, position.tilt, position.zoom) == pytest.approx((1.0, 0.25, 0.25))
    await ptz.AbsoluteMove({"ProfileToken": MAIN, "Position": {"Zoom": {"x": 0.75}}})
    assert camera_device.ptz_position().zoom == pytest.approx(0.75)
    assert camera_device.ptz_position().pan == pytest.approx(1.0), "omitted axes stay"

    with pytest.raises(Fault) as out_of_range:
        await ptz.AbsoluteMove({"ProfileToken": MAIN, "Position": {"PanTilt": {"x": 1.5, "y": 0}}})
    assert zeep_fault_subcodes(out_of_range.value) == ["InvalidArgVal", "InvalidPosition"]
    with pytest.raises(Fault) as other_space:
        await ptz.AbsoluteMove(
            {
                "ProfileToken": MAIN,
                "Position": {"PanTilt": {"x": 0.1, "y": 0, "space": "http://example.com/degrees"}},
            }
        )
    assert zeep_fault_subcodes(other_space.value) == ["InvalidArgVal", "SpaceNotSupported"]
    with pytest.raises(Fault) as too_fast:
        await ptz.ContinuousMove({"ProfileToken": MAIN, "Velocity": {"PanTilt": {"x": 2, "y": 0}}})
    assert zeep_fault_subcodes(too_fast.value) == ["InvalidArgVal", "InvalidVelocity"]


async def test_presets_round_trip(camera_device: OnvifDeviceServer, camera: ONVIFCamera) -> None:
    ptz = await camera.create_ptz_service()
    assert await ptz.GetPresets({"ProfileToken": MAIN}) == []
    await ptz.AbsoluteMove(
        {"ProfileToken": MAIN, "Position": {"PanTilt": {"x": 0.2, "y": 0.1}, "Zoom": {"x": 0.3}}}
    )
    gate = await ptz.SetPreset({"ProfileToken": MAIN, "PresetName": "Gate"})
    assert gate == "1"
    await ptz.AbsoluteMove({"ProfileToken": MAIN, "Position": {"PanTilt": {"x": -0.6, "y": 0.4}}})
    yard = await ptz.SetPreset({"ProfileToken": SUB, "PresetName": "Yard"})
    assert yard == "2", "presets belong to the head, whichever profile addresses it"
    explicit = await ptz.SetPreset({"ProfileToken": MAIN, "PresetName": "Dock", "PresetToken": "17"})
    assert explicit == "17"

    presets = await ptz.GetPresets({"ProfileToken": MAIN})
    assert [(p.token, p.Name) for p in presets] == [("1", "Gate"), ("2", "Yard"), ("17", "Dock")]
    assert (presets[0].PTZPosition.PanTilt.x, presets[0].PTZPosition.Zoom.x) == pytest.approx((0.2, 0.3))

    await ptz.AbsoluteMove({"ProfileToken": MAIN, "Position": {"PanTilt": {"x": 0.9, "y": 0.9}}})
    assert await ptz.SetPreset({"ProfileToken": MAIN, "PresetToken": "1"}) == "1", "the given token is reused"
    assert [p.name for p in camera_device.presets()] == ["Gate", "Yard", "Dock"], "names are kept"
    assert camera_device.presets()[0].position.pan == pytest.approx(0.9)

    await ptz.GotoPreset({"ProfileToken": MAIN, "PresetToken": "2"})
    assert (camera_device.ptz_position().pan, camera_device.ptz_position().tilt) == pytest.approx((-0.6, 0.4))
    await ptz.RemovePreset({"ProfileToken": MAIN, "PresetToken": "2"})
    assert [p.token for p in camera_device.presets()] == ["1", "17"]
    with pytest.raises(Fault) as unknown:
        await ptz.RemovePreset({"ProfileToken": MAIN, "PresetToken": "2"})
    assert zeep_fault_subcodes(unknown.value) == ["InvalidArgVal", "NoToken"]
    with pytest.raises(Fault) as duplicate:
        await ptz.SetPreset({"ProfileToken": MAIN, "PresetName": "Gate"})
    assert zeep_fault_subcodes(duplicate.value) == ["InvalidArgVal", "PresetExist"]

    await ptz.GotoHomePosition({"ProfileToken": MAIN})
    home = camera_device.ptz_position()
    assert (home.pan, home.tilt, home.zoom) == (0.0, 0.0, 0.0)


# --- imaging --------------------------------------------------------------------------------


async def test_imaging_settings_and_focus_motor(
    camera_device: OnvifDeviceServer, camera: ONVIFCamera, clock: FakeMonotonicClock
) -> None:
    imaging = await camera.create_imaging_service()
    source = {"VideoSourceToken": "VideoSource_1"}
    settings = await imaging.GetImagingSettings(source)
    assert settings.Brightness == 50.0
    assert settings.Focus.AutoFocusMode == "AUTO"
    assert (settings.Exposure.Mode, settings.Exposure.Iris) == ("AUTO", 0.0)

    await imaging.SetImagingSettings(
        {**source, "ImagingSettings": {"Brightness": 70, "Exposure": {"Mode": "MANUAL", "Iris": -6.5}}}
    )
    settings = await imaging.GetImagingSettings(source)
    assert (settings.Brightness, settings.Exposure.Mode, settings.Exposure.Iris) == (70.0, "MANUAL", -6.5)
    with pytest.raises(Fault) as invalid:
        await imaging.SetImagingSettings(
            {**source, "ImagingSettings": {"Brightness": 20, "Exposure": {"Mode": "MANUAL", "Iris": 5}}}
        )
    assert zeep_fault_subcodes(invalid.value) == ["InvalidArgVal", "SettingsInvalid"]
    assert camera_device.imaging().brightness == 70.0, "a rejected request changes nothing"

    options = await imaging.GetMoveOptions(source)
    assert (options.Continuous.Speed.Min, options.Continuous.Speed.Max) == (-1.0, 1.0)
    assert (options.Relative.Distance.Min, options.Absolute.Position.Max) == (-1.0, 1.0)
    await imaging.Move({**source, "Focus": {"Continuous": {"Speed": 0.2}}})
    clock.advance(1.0)
    status = await imaging.GetStatus(source)
    assert (status.FocusStatus20.Position, status.FocusStatus20.MoveStatus) == (pytest.approx(0.7), "MOVING")
    await imaging.Stop(source)
    clock.advance(1.0)
    await imaging.Move({**source, "Focus": {"Relative": {"Distance": -0.5}}})
    assert camera_device.imaging().focus.position() == pytest.approx(0.2)
    await imaging.Move({**source, "Focus": {"Absolute": {"Position": 0.9}}})
    status = await imaging.GetStatus(source)
    assert (status.FocusStatus20.Position, status.FocusStatus20.MoveStatus) == (pytest.approx(0.9), "IDLE")
    imaging_options = await imaging.GetOptions(source)
    assert (imaging_options.Exposure.Iris.Min, imaging_options.Exposure.Iris.Max) == (-22.0, 0.0)


# --- snapshots --------------------------------------------------------------------------------


_LIBRARY_BASIC_AUTH_DEPRECATION = pytest.mark.filterwarnings(
    # onvif-zeep-async itself still passes aiohttp.BasicAuth for basic_auth=True snapshots.
    "ignore:.*(BasicAuth|'auth' parameter) is deprecated:DeprecationWarning"
)


@_LIBRARY_BASIC_AUTH_DEPRECATION
async def test_snapshot_through_the_library_with_digest_and_basic(camera: ONVIFCamera) -> None:
    main = await camera.get_snapshot(MAIN)
    assert main is not None and main[:2] == b"\xff\xd8"
    assert decode_jpeg(main) == (1920, 1080)
    sub = await camera.get_snapshot(SUB, basic_auth=True)
    assert sub is not None and decode_jpeg(sub) == (640, 360)


async def test_snapshot_challenge_offers_digest_then_basic(camera_device: OnvifDeviceServer) -> None:
    url = camera_device.snapshot_url()
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            challenges = anonymous.headers.getall("WWW-Authenticate")
            assert anonymous.status == 401
        assert [c.split(" ")[0] for c in challenges] == ["Digest", "Basic"]
        assert 'qop="auth"' in challenges[0] and "algorithm=MD5" in challenges[0]
        path = url.removeprefix(camera_device.base_url)
        answer = digest_authorization(challenges[0], "GET", path, USERNAME, PASSWORD)
        async with session.get(url, headers={"Authorization": answer}) as digest:
            assert digest.status == 200 and digest.content_type == "image/jpeg"
            assert decode_jpeg(await digest.read()) == (1920, 1080)
        wrong = digest_authorization(challenges[0], "GET", path, USERNAME, "nope")
        async with session.get(url, headers={"Authorization": wrong}) as refused:
            assert refused.status == 401
        middleware = aiohttp.DigestAuthMiddleware(USERNAME, "nope")
        async with session.get(url, middlewares=(middleware,)) as refused_again:
            assert refused_again.status == 401
        bad_basic_header = {"Authorization": aiohttp.encode_basic_auth(USERNAME, "nope")}
        async with session.get(url, headers=bad_basic_header) as bad_basic:
            assert bad_basic.status == 401


async def test_snapshot_digest_nonce_goes_stale(start_device: Callable[..., Any]) -> None:
    wall = FakeMonotonicClock(start=time.time())
    device: OnvifDeviceServer = await start_device(camera_description(), wall_clock=wall)
    url = device.snapshot_url(0, StreamKind.SUB)
    path = url.removeprefix(device.base_url)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as first:
            challenge = first.headers.getall("WWW-Authenticate")[0]
        wall.advance(301)
        answer = digest_authorization(challenge, "GET", path, USERNAME, PASSWORD)
        async with session.get(url, headers={"Authorization": answer}) as stale:
            assert stale.status == 401
            assert "stale=true" in stale.headers.getall("WWW-Authenticate")[0]


@_LIBRARY_BASIC_AUTH_DEPRECATION
@pytest.mark.parametrize(
    ("mode", "digest_ok", "basic_ok"),
    [
        (SnapshotAuthMode.DIGEST, True, False),
        (SnapshotAuthMode.BASIC, False, True),
        (SnapshotAuthMode.BOTH, True, True),
    ],
)
async def test_snapshot_auth_modes(
    start_device: Callable[..., Any], mode: SnapshotAuthMode, digest_ok: bool, basic_ok: bool
) -> None:
    device: OnvifDeviceServer = await start_device(camera_description(snapshot_auth=mode))
    async with onvif_client(device) as camera:
        for basic_auth, expected_ok in ((False, digest_ok), (True, basic_ok)):
            if expected_ok:
                image = await camera.get_snapshot(SUB, basic_auth=basic_auth)
                assert image is not None and decode_jpeg(image) == (640, 360)
            else:
                with pytest.raises(ONVIFAuthError):
                    await camera.get_snapshot(SUB, basic_auth=basic_auth)


# --- WS-Security --------------------------------------------------------------------------------


async def test_wrong_password_is_an_auth_fault_the_library_recognises(
    camera_device: OnvifDeviceServer,
) -> None:
    async with onvif_client(camera_device, password="wrong", update_xaddrs=False) as camera:
        with pytest.raises(Fault) as refused:
            await camera.update_xaddrs()
        assert is_auth_error(refused.value)
        assert zeep_fault_subcodes(refused.value) == ["NotAuthorized"]
        assert refused.value.code.endswith("Sender")
        devicemgmt = await camera.create_devicemgmt_service()
        clock_reply = await devicemgmt.GetSystemDateAndTime()
        assert clock_reply.UTCDateTime.Date.Year >= 2024, "GetSystemDateAndTime needs no credentials"
        assert (await devicemgmt.authless_GetSystemDateAndTime()).DateTimeType == "NTP"
    assert camera_device.auth_failures[AuthRejection.BAD_PASSWORD] == 2, "GetServices, then GetCapabilities"
    status, body = await post_soap(
        f"{camera_device.base_url}/onvif/device_service",
        soap_envelope(f'<GetDeviceInformation xmlns="{NS_DEVICE}"/>'),
    )
    assert (status, fault_subcodes(body)) == (400, ["NotAuthorized"])
    assert camera_device.auth_failures[AuthRejection.MISSING_TOKEN] == 1


async def test_password_text_accepted_unless_digest_only(start_device: Callable[..., Any]) -> None:
    lenient: OnvifDeviceServer = await start_device(camera_description())
    async with onvif_client(lenient, encrypt=False) as camera:
        media = await camera.create_media_service()
        assert len(await media.GetProfiles()) == 2
    strict: OnvifDeviceServer = await start_device(camera_description(wsse_digest_only=True))
    async with onvif_client(strict, encrypt=False, update_xaddrs=False) as camera:
        with pytest.raises(Fault) as refused:
            await camera.update_xaddrs()
        assert is_auth_error(refused.value)
    assert strict.auth_failures[AuthRejection.TEXT_REFUSED] >= 1


async def test_replayed_nonce_and_stale_created_are_refused(camera_device: OnvifDeviceServer) -> None:
    url = f"{camera_device.base_url}/onvif/device_service"
    body = f'<GetDeviceInformation xmlns="{NS_DEVICE}"/>'
    now = dt.datetime.now(dt.UTC)
    signed = soap_envelope(body, security_header(PASSWORD, now, os.urandom(16)))
    assert (await post_soap(url, signed))[0] == 200
    status, reply = await post_soap(url, signed)
    assert (status, fault_subcodes(reply)) == (400, ["NotAuthorized"])
    assert camera_device.auth_failures[AuthRejection.REPLAYED_NONCE] == 1

    old = soap_envelope(body, security_header(PASSWORD, now - dt.timedelta(seconds=400), os.urandom(16)))
    assert (await post_soap(url, old))[0] == 400
    within_tolerance = soap_envelope(
        body, security_header(PASSWORD, now - dt.timedelta(seconds=200), os.urandom(16))
    )
    assert (await post_soap(url, within_tolerance))[0] == 200
    assert camera_device.auth_failures[AuthRejection.STALE_CREATED] == 1


async def test_clock_skew_needs_the_measured_offset(start_device: Callable[..., Any]) -> None:
    device: OnvifDeviceServer = await start_device(
        camera_description(
            quirks=frozenset({Quirk.CLOCK_SKEW}),
            clock_offset_s=3600.0,
            date_time_source=DateTimeSource.MANUAL,
        )
    )
    async with onvif_client(device, update_xaddrs=False) as unadjusted:
        devicemgmt = await unadjusted.create_devicemgmt_service()
        reported = _utc((await devicemgmt.authless_GetSystemDateAndTime()).UTCDateTime)
        assert abs((reported - dt.datetime.now(dt.UTC)).total_seconds() - 3600) < 3
        with pytest.raises(Fault) as refused:
            await unadjusted.update_xaddrs()
        assert is_auth_error(refused.value)
    assert device.auth_failures[AuthRejection.STALE_CREATED] == 2

    async with onvif_client(device, adjust_time=True) as adjusted:
        assert adjusted.dt_diff is not None
        assert abs(adjusted.dt_diff.total_seconds() - 3600) < 3
        media = await adjusted.create_media_service()
        assert len(await media.GetProfiles()) == 2
        # What Home Assistant does for a camera on manual time: set the clock from the host.
        devicemgmt = await adjusted.create_devicemgmt_service()
        now = dt.datetime.now(dt.UTC)
        await devicemgmt.SetSystemDateAndTime(
            {
                "DateTimeType": "Manual",
                "DaylightSavings": False,
                "UTCDateTime": {
                    "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                    "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
                },
            }
        )
    assert abs(device.state.clock_offset_s) < 3
    async with onvif_client(device) as unadjusted_again:
        media = await unadjusted_again.create_media_service()
        assert len(await media.GetProfiles()) == 2


# --- quirks ---------------------------------------------------------------------------------


async def test_quirk_no_snapshot(start_device: Callable[..., Any]) -> None:
    device: OnvifDeviceServer = await start_device(camera_description(quirks=frozenset({Quirk.NO_SNAPSHOT})))
    async with onvif_client(device) as camera:
        media = await camera.create_media_service()
        assert (await media.GetServiceCapabilities()).SnapshotUri is False
        with pytest.raises(Fault) as refused:
            await media.GetSnapshotUri({"ProfileToken": MAIN})
        assert zeep_fault_subcodes(refused.value) == ["ActionNotSupported"]
        assert await camera.get_snapshot(MAIN) is None
    async with aiohttp.ClientSession() as session:
        basic = {"Authorization": aiohttp.encode_basic_auth(USERNAME, PASSWORD)}
        async with session.get(device.snapshot_url(), headers=basic) as response:
            assert response.status == 404


async def test_quirk_no_stop_leaves_zero_velocity_as_the_way_to_stop(
    start_device: Callable[..., Any], clock: FakeMonotonicClock
) -> None:
    device: OnvifDeviceServer = await start_device(camera_description(quirks=frozenset({Quirk.NO_STOP})))
    async with onvif_client(device) as camera:
        ptz = await camera.create_ptz_service()
        await ptz.ContinuousMove({"ProfileToken": MAIN, "Velocity": {"PanTilt": {"x": 0.3, "y": 0.0}}})
        clock.advance(1.0)
        with pytest.raises(Fault) as refused:
            await ptz.Stop({"ProfileToken": MAIN, "PanTilt": True, "Zoom": True})
        assert zeep_fault_subcodes(refused.value) == ["ActionNotSupported"]
        assert "Action Not Implemented" in refused.value.message
        clock.advance(1.0)
        assert device.ptz_position().pan == pytest.approx(0.6), "Stop did nothing"
        await ptz.ContinuousMove(
            {"ProfileToken": MAIN, "Velocity": {"PanTilt": {"x": 0, "y": 0}, "Zoom": {"x": 0}}}
        )
        clock.advance(5.0)
        position, moving = await _ptz_status(ptz)
        assert position == pytest.approx((0.6, 0.0, 0.0)) and moving == ("IDLE", "IDLE")


async def test_quirk_bad_xaddrs_doubles_the_port_and_the_library_copes(
    start_device: Callable[..., Any],
) -> None:
    device: OnvifDeviceServer = await start_device(camera_description(quirks=frozenset({Quirk.BAD_XADDRS})))
    malformed = f"http://127.0.0.1:{device.port}:{device.port}/onvif/"
    async with onvif_client(device) as camera:
        assert camera.xaddrs[NS_MEDIA] == f"{device.base_url}/onvif/media_service", (
            "normalize_url repaired it"
        )
        devicemgmt = await camera.create_devicemgmt_service()
        services = await devicemgmt.GetServices({"IncludeCapability": False})
        assert all(service.XAddr.startswith(malformed) for service in services)
        capabilities = await devicemgmt.GetCapabilities({"Category": "All"})
        assert capabilities.Media.XAddr == malformed + "media_service"
        media = await camera.create_media_service()
        assert len(await media.GetProfiles()) == 2


async def test_quirk_ptz_one_profile_on_an_nvr(start_device: Callable[..., Any]) -> None:
    device: OnvifDeviceServer = await start_device(nvr_description(quirks=frozenset({Quirk.PTZ_ONE_PROFILE})))
    async with onvif_client(device) as nvr:
        media = await nvr.create_media_service()
        with_ptz = [p.token for p in await media.GetProfiles() if p.PTZConfiguration is not None]
        assert with_ptz == [MAIN]
        ptz = await nvr.create_ptz_service()
        await ptz.ContinuousMove({"ProfileToken": MAIN, "Velocity": {"Zoom": {"x": 0.5}}})
        with pytest.raises(Fault) as refused:
            await ptz.GetStatus({"ProfileToken": "Profile_201"})
        assert zeep_fault_subcodes(refused.value) == ["InvalidArgVal", "NoPTZProfile"]


async def test_quirk_bad_utf8_in_device_information(start_device: Callable[..., Any]) -> None:
    device: OnvifDeviceServer = await start_device(camera_description(quirks=frozenset({Quirk.BAD_UTF8})))
    status, raw = await post_soap(
        f"{device.base_url}/onvif/device_service",
        soap_envelope(
            f'<GetDeviceInformation xmlns="{NS_DEVICE}"/>',
            security_header(PASSWORD, dt.datetime.now(dt.UTC), os.urandom(16)),
        ),
    )
    assert status == 200 and b"<tds:Model>AV-PTZ-200\xff\xfe</tds:Model>" in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(raw)
    async with onvif_client(device) as camera:
        devicemgmt = await camera.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        # onvif-zeep-async parses leniently (lxml recover mode): the bad bytes become U+FFFD.
        assert info.Model == "AV-PTZ-200\ufffd\ufffd"
        assert info.SerialNumber == "AV200-0001", "the rest of the response survives"


async def test_quirk_slow_delays_every_response(start_device: Callable[..., Any]) -> None:
    device: OnvifDeviceServer = await start_device(
        camera_description(quirks=frozenset({Quirk.SLOW}), slow_delay_s=0.3)
    )
    async with onvif_client(device, update_xaddrs=False) as camera:
        devicemgmt = await camera.create_devicemgmt_service()
        started = time.monotonic()
        await devicemgmt.GetSystemDateAndTime()
        assert time.monotonic() - started >= 0.3
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(device.snapshot_url()) as response:
            assert response.status == 401
        assert time.monotonic() - started >= 0.3


# --- protocol edges -------------------------------------------------------------------------


async def test_unimplemented_operations_are_action_not_supported(camera: ONVIFCamera) -> None:
    devicemgmt = await camera.create_devicemgmt_service()
    with pytest.raises(Fault) as dns:
        await devicemgmt.GetDNS()
    assert zeep_fault_subcodes(dns.value) == ["ActionNotSupported"]
    assert dns.value.code.endswith("Receiver")
    media = await camera.create_media_service()
    with pytest.raises(Fault) as audio:
        await media.GetAudioSources()
    assert zeep_fault_subcodes(audio.value) == ["ActionNotSupported"]


async def test_malformed_and_misrouted_requests(camera_device: OnvifDeviceServer) -> None:
    device_url = f"{camera_device.base_url}/onvif/device_service"
    status, body = await post_soap(device_url, b"<not-xml")
    assert (status, fault_subcodes(body)) == (400, ["WellFormed"])
    status, body = await post_soap(
        device_url,
        soap_envelope(
            f'<GetSystemDateAndTime xmlns="{NS_DEVICE}"/>',
            envelope_ns="http://schemas.xmlsoap.org/soap/envelope/",
        ),
    )
    assert status == 400 and b"VersionMismatch" in body
    signed = security_header(PASSWORD, dt.datetime.now(dt.UTC), os.urandom(16))
    status, body = await post_soap(device_url, soap_envelope(f'<GetProfiles xmlns="{NS_MEDIA}"/>', signed))
    assert (status, fault_subcodes(body)) == (500, ["ActionNotSupported"])
    status, body = await post_soap(device_url, soap_envelope(f'<GetSystemDateAndTime xmlns="{NS_DEVICE}"/>'))
    assert status == 200 and b"UTCDateTime" in body


# --- every response is schema-clean -----------------------------------------------------------

_P = {"ProfileToken": MAIN}
_V = {"VideoSourceToken": "VideoSource_1"}
OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("devicemgmt", "GetDeviceInformation", None),
    ("devicemgmt", "GetSystemDateAndTime", None),
    ("devicemgmt", "GetCapabilities", {"Category": "All"}),
    ("devicemgmt", "GetServices", {"IncludeCapability": True}),
    ("devicemgmt", "GetServices", {"IncludeCapability": False}),
    ("devicemgmt", "GetServiceCapabilities", None),
    ("devicemgmt", "GetScopes", None),
    ("devicemgmt", "GetNetworkInterfaces", None),
    ("devicemgmt", "GetHostname", None),
    ("media", "GetServiceCapabilities", None),
    ("media", "GetProfiles", None),
    ("media", "GetProfile", _P),
    ("media", "GetVideoSources", None),
    ("media", "GetStreamUri", {**_P, "StreamSetup": RTSP_UNICAST}),
    ("media", "GetSnapshotUri", _P),
    ("ptz", "GetServiceCapabilities", None),
    ("ptz", "GetNodes", None),
    ("ptz", "GetNode", {"NodeToken": "PTZNode_1"}),
    ("ptz", "GetConfigurations", None),
    ("ptz", "GetConfiguration", {"PTZConfigurationToken": "PTZConfig_1"}),
    ("ptz", "GetConfigurationOptions", {"ConfigurationToken": "PTZConfig_1"}),
    ("ptz", "GetStatus", _P),
    (
        "ptz",
        "ContinuousMove",
        {**_P, "Velocity": {"PanTilt": {"x": 0.1, "y": 0.1}}, "Timeout": dt.timedelta(seconds=2)},
    ),
    ("ptz", "RelativeMove", {**_P, "Translation": {"PanTilt": {"x": 0.1, "y": 0.1}, "Zoom": {"x": 0.1}}}),
    ("ptz", "AbsoluteMove", {**_P, "Position": {"PanTilt": {"x": 0.1, "y": 0.1}, "Zoom": {"x": 0.5}}}),
    ("ptz", "Stop", {**_P, "PanTilt": True, "Zoom": True}),
    ("ptz", "SetPreset", {**_P, "PresetName": "Entrance"}),
    ("ptz", "GetPresets", _P),
    ("ptz", "GotoPreset", {**_P, "PresetToken": "1"}),
    ("ptz", "RemovePreset", {**_P, "PresetToken": "1"}),
    ("ptz", "GotoHomePosition", _P),
    ("ptz", "SetHomePosition", _P),
    ("imaging", "GetServiceCapabilities", None),
    ("imaging", "GetImagingSettings", _V),
    (
        "imaging",
        "SetImagingSettings",
        {**_V, "ImagingSettings": {"Exposure": {"Mode": "MANUAL", "Iris": -3.0}}},
    ),
    ("imaging", "GetOptions", _V),
    ("imaging", "GetMoveOptions", _V),
    ("imaging", "Move", {**_V, "Focus": {"Continuous": {"Speed": 0.2}}}),
    ("imaging", "Stop", _V),
    ("imaging", "GetStatus", _V),
]


DESCRIPTIONS: dict[str, Callable[[], DeviceDescription]] = {
    "camera": camera_description,
    "nvr": nvr_description,
}


@pytest.mark.parametrize("device_kind", sorted(DESCRIPTIONS))
@pytest.mark.parametrize(
    ("service_name", "operation", "params"),
    OPERATIONS,
    ids=[f"{service}.{operation}-{index}" for index, (service, operation, _) in enumerate(OPERATIONS)],
)
async def test_every_response_parses_strictly_and_validates(
    start_device: Callable[..., Any],
    response_checker: OnvifResponseChecker,
    device_kind: str,
    service_name: str,
    operation: str,
    params: dict[str, Any] | None,
) -> None:
    device: OnvifDeviceServer = await start_device(DESCRIPTIONS[device_kind]())
    async with onvif_client(device) as client:
        service = await client.create_onvif_service(service_name)
        if operation in ("GotoPreset", "RemovePreset"):
            await service.SetPreset({**_P, "PresetToken": "1"})
        history = record_responses(service)
        await getattr(service, operation)(params)
    assert history.last_received is not None
    envelope = history.last_received["envelope"]
    assert response_checker.check(service_name, operation, envelope) == []


async def test_response_checker_catches_a_misordered_response(response_checker: OnvifResponseChecker) -> None:
    envelope = etree.fromstring(
        f'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:d="{NS_DEVICE}"><e:Body>'
        "<d:GetDeviceInformationResponse><d:Model>m</d:Model><d:Manufacturer>a</d:Manufacturer>"
        "<d:FirmwareVersion>f</d:FirmwareVersion><d:SerialNumber>s</d:SerialNumber>"
        "</d:GetDeviceInformationResponse></e:Body></e:Envelope>".encode()
    )
    problems = response_checker.check("devicemgmt", "GetDeviceInformation", envelope)
    assert any(p.startswith("strict zeep") for p in problems)
    assert any(p.startswith("schema") for p in problems)


# --- lifecycle ------------------------------------------------------------------------------


async def test_server_lifecycle(clock: FakeMonotonicClock) -> None:
    device = OnvifDeviceServer(camera_description(), clock=clock)
    with pytest.raises(RuntimeError):
        _ = device.port
    async with device:
        assert device.port > 0
        assert device.xaddr == f"http://127.0.0.1:{device.port}/onvif/device_service"
        status, _ = await post_soap(
            device.xaddr, soap_envelope(f'<GetSystemDateAndTime xmlns="{NS_DEVICE}"/>')
        )
        assert status == 200
        await asyncio.wait_for(device.wait_for_request("device.GetSystemDateAndTime"), timeout=5)
        assert device.request_counts["device.GetSystemDateAndTime"] == 1
    await device.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await post_soap(device.xaddr, soap_envelope(f'<GetSystemDateAndTime xmlns="{NS_DEVICE}"/>'))
    with pytest.raises(RuntimeError):
        await device.start()


def test_description_validation() -> None:
    with pytest.raises(ValueError, match="exactly one channel"):
        camera_description(channels=nvr_description().channels)
    with pytest.raises(ValueError, match="MAC"):
        camera_description(mac_address="not-a-mac")
    with pytest.raises(ValueError):
        camera_description(quirks=frozenset({"no_such_quirk"}))
    assert camera_description(quirks=frozenset({"slow"})).quirks == frozenset({Quirk.SLOW})
