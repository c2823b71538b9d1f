"""Issue acceptance: PTZ, presets and snapshots through the official SDK, locally and via the cloud.

One site (2 cameras + 1 NVR with 2 channels, 320x240), one cloud emulator and one gateway are
shared by the module (a module event loop); tests that restart, stop devices or need other
settings build their own. ``local`` calls go to the gateway's API with the API key; ``cloud``
calls go to the emulator, which relays them to the gateway over its WebSocket.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import pytest_asyncio

from gateway.config import Config, load_config
from gateway.daemon import Gateway
from gateway.snapshots import channel_key
from sim.cloud import CloudEmulator
from sim.onvif import OnvifDeviceServer, Quirk
from sim.onvif.motion import PtzPosition
from sim.site import SimulatedSite
from tests.api.conftest import API_ID, API_KEY, LocalApiSdk
from tests.cloud.conftest import IssSdk
from tests.integration.conftest import SECRET_ID, SECRET_KEY, gateway_config, running_gateway
from tests.sim.conftest import rtsp_clip_cache  # noqa: F401 - fixture
from tests.sim.wsd_fixtures import random_loopback_prefix

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STEP_SECONDS = 0.3
WAIT_SECONDS = 10.0
PATHS = ("local", "cloud")
UNKNOWN_CHANNEL = "2f6b1b9e-0000-4000-8000-00000000dead"


def control_config(
    tmp_path: Path,
    cloud: CloudEmulator | None,
    site: SimulatedSite,
    *,
    command_timeout: str = "5s",
    step: float = STEP_SECONDS,
) -> Config:
    """The integration config with static cameras, an API key and a short PTZ step."""
    base = gateway_config(tmp_path, cloud, site, static=True)
    text = base.path.read_text(encoding="utf-8")
    text = text.replace("[api]\n", f'[api]\nsecret_id = "{API_ID}"\nsecret_key = "{API_KEY}"\n', 1)
    text += f'[ptz]\nstep_seconds = {step}\ncommand_timeout = "{command_timeout}"\n'
    base.path.write_text(text, encoding="utf-8")
    return load_config(base.path)


class ShiftableClock:
    """Wall time plus an offset a test can move (link expiry without waiting an hour)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = WAIT_SECONDS) -> None:
    """Poll a condition every 50 ms until it holds; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            outcome = predicate()
            if outcome if isinstance(outcome, bool) else await outcome:
                return
            await asyncio.sleep(0.05)


async def channels_by_name(gateway: Gateway, *, cloud: bool) -> dict[str, str]:
    """``{"cam1": ChannelId, "nvr1-2": ChannelId, ...}`` once every device is in the inventory
    (with cloud ids when ``cloud``) and every channel in the device manager's index."""
    expected = len(gateway.config.cameras)

    async def ready() -> bool:
        records = await gateway.inventory.all()
        return len(records) == expected and (not cloud or all(c.cloud_channel_id for r in records for c in r.channels))

    await wait_until(ready, 60)
    ids = {}
    for record in await gateway.inventory.all():
        for channel in record.channels:
            name = record.name if record.kind.value == "ipc" else f"{record.name}-{channel.position}"
            ids[name] = channel.channel_id
    await wait_until(lambda: all(gateway.devices.channel(i) is not None for i in ids.values()), 60)
    return ids


@dataclass
class Env:
    """The shared site, emulator and gateway, and SDK clients for both paths."""

    site: SimulatedSite
    cloud: CloudEmulator
    gateway: Gateway
    clock: ShiftableClock
    channels: dict[str, str]
    local: LocalApiSdk
    remote: IssSdk

    def sdk(self, path: str) -> IssSdk:
        return self.local if path == "local" else self.remote

    def server(self, name: str) -> OnvifDeviceServer:
        return self.site.server(name.partition("-")[0])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, rtsp_clip_cache: Path) -> AsyncIterator[Env]:  # noqa: F811
    tmp_path = tmp_path_factory.mktemp("device-control")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "rtsp-cache").symlink_to(rtsp_clip_cache)
    quirks = {"cam2": frozenset({Quirk.NO_SNAPSHOT, Quirk.NO_STOP})}
    async with (
        SimulatedSite(
            state_dir=tmp_path / "site", cameras=2, nvrs=1, nvr_channels=2, width=320, height=240,
            host=f"{random_loopback_prefix()}.0", discovery=False, quirks=quirks,
        ) as site,
        CloudEmulator(tmp_path / "cloud", SECRET_ID, SECRET_KEY) as cloud,
    ):
        clock = ShiftableClock()
        async with running_gateway(control_config(tmp_path, cloud, site), clock) as gateway:
            channels = await channels_by_name(gateway, cloud=True)
            yield Env(
                site, cloud, gateway, clock, channels,
                local=LocalApiSdk(f"127.0.0.1:{gateway.api_port}"),
                remote=IssSdk(cloud.endpoint, secret_id=SECRET_ID, secret_key=SECRET_KEY),
            )


# --- PTZ ------------------------------------------------------------------------------------------

DIRECTIONS = {
    "up": (0, 1, 0), "down": (0, -1, 0), "left": (-1, 0, 0), "right": (1, 0, 0),
    "leftup": (-1, 1, 0), "rightup": (1, 1, 0), "leftdown": (-1, -1, 0), "rightdown": (1, -1, 0),
    "zoomin": (0, 0, 1), "zoomout": (0, 0, -1),
}


def sign(value: float) -> int:
    return 0 if abs(value) < 1e-9 else (1 if value > 0 else -1)


async def wait_for_stop(server: OnvifDeviceServer, stops_before: int) -> None:
    await asyncio.wait_for(server.wait_for_request("ptz.Stop", stops_before + 1), WAIT_SECONDS)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("command", sorted(DIRECTIONS))
async def test_every_type_moves_the_head_its_way_for_one_step(env: Env, path: str, command: str) -> None:
    name = "cam1" if path == "local" else "nvr1-1"
    server = env.server(name)
    server.state.ptz[0].move_to(0.0, 0.0, 0.5)
    stops = server.request_counts["ptz.Stop"]
    await env.sdk(path).call("ControlDevicePTZ", ChannelId=env.channels[name], Type=command, Speed=7)
    await wait_for_stop(server, stops)
    position = server.ptz_position(0)
    moved = (sign(position.pan), sign(position.tilt), sign(position.zoom - 0.5))
    assert moved == DIRECTIONS[command]
    for axis in (position.pan, position.tilt, position.zoom - 0.5):
        assert abs(axis) < 2.5 * STEP_SECONDS, "the gateway's Stop, not the move Timeout, ended the step"
    await asyncio.sleep(0.2)
    assert server.ptz_position(0) == position, "the head stands still after the step"


@pytest.mark.parametrize("name", ["cam1", "cam2"])
async def test_a_step_stops_by_itself_also_without_onvif_stop(env: Env, name: str) -> None:
    server = env.server(name)
    server.state.ptz[0].move_to(0.0, 0.0, 0.0)
    moves = server.request_counts["ptz.ContinuousMove"]
    stops = server.request_counts["ptz.Stop"]
    started = time.monotonic()
    await env.local.call("ControlDevicePTZ", ChannelId=env.channels[name], Type="right", Speed=6)
    if name == "cam1":
        await wait_for_stop(server, stops)
    else:  # no_stop: Stop is refused once, then a zero-velocity ContinuousMove stops the head
        await asyncio.wait_for(server.wait_for_request("ptz.ContinuousMove", moves + 2), WAIT_SECONDS)
    assert time.monotonic() - started >= STEP_SECONDS
    frozen = server.ptz_position(0)
    assert 0 < frozen.pan < 2.5 * STEP_SECONDS * 6 / 8
    await asyncio.sleep(0.3)
    assert server.ptz_position(0) == frozen
    assert not server.state.ptz[0].pan_tilt_moving()


@pytest.mark.parametrize("path", PATHS)
async def test_a_new_command_replaces_the_running_step(env: Env, path: str) -> None:
    name = "cam1" if path == "local" else "nvr1-1"
    server, channel = env.server(name), env.channels[name]
    server.state.ptz[0].move_to(0.0, 0.0, 0.0)
    stops = server.request_counts["ptz.Stop"]
    sdk = env.sdk(path)
    await sdk.call("ControlDevicePTZ", ChannelId=channel, Type="right", Speed=5)
    await sdk.call("ControlDevicePTZ", ChannelId=channel, Type="up", Speed=4)
    second_sent = time.monotonic()
    assert server.request_counts["ptz.Stop"] == stops, "the first step's stop was called off"
    await wait_for_stop(server, stops)
    assert time.monotonic() - second_sent >= STEP_SECONDS * 0.9
    position = server.ptz_position(0)
    assert position.pan > 0 and position.tilt > 0
    await asyncio.sleep(0.2)
    assert server.request_counts["ptz.Stop"] == stops + 1, "one stop for the two commands"


@pytest.mark.parametrize("path", PATHS)
async def test_speed_scales_the_velocity(env: Env, path: str) -> None:
    name = "cam1" if path == "local" else "nvr1-1"
    server, channel = env.server(name), env.channels[name]
    distances = []
    for speed, command in ((8, "left"), (2, "down")):
        server.state.ptz[0].move_to(0.0, 0.0, 0.0)
        stops = server.request_counts["ptz.Stop"]
        await env.sdk(path).call("ControlDevicePTZ", ChannelId=channel, Type=command, Speed=speed)
        await wait_for_stop(server, stops)
        position = server.ptz_position(0)
        distances.append(abs(position.pan) + abs(position.tilt))
    assert 0.1 < distances[1] / distances[0] < 0.45, f"speed 2 vs 8 should be ~1/4: {distances}"


async def test_focus_and_iris_steps(env: Env) -> None:
    server, channel = env.server("cam1"), env.channels["cam1"]
    imaging = server.imaging(0)
    focus_stops = server.request_counts["imaging.Stop"]
    start = imaging.focus.position()
    await env.local.call("ControlDevicePTZ", ChannelId=channel, Type="focusfar", Speed=4)
    await asyncio.wait_for(server.wait_for_request("imaging.Stop", focus_stops + 1), WAIT_SECONDS)
    farther = imaging.focus.position()
    assert farther > start
    await env.remote.call("ControlDevicePTZ", ChannelId=channel, Type="focusnear", Speed=8)
    await asyncio.wait_for(server.wait_for_request("imaging.Stop", focus_stops + 2), WAIT_SECONDS)
    assert imaging.focus.position() < farther
    await asyncio.sleep(0.2)
    assert not imaging.focus.is_moving()

    iris = imaging.iris
    await env.local.call("ControlDevicePTZ", ChannelId=channel, Type="irisout", Speed=8)
    closed = imaging.iris
    assert closed < iris and imaging.exposure_mode == "MANUAL"
    await env.remote.call("ControlDevicePTZ", ChannelId=channel, Type="irisin", Speed=4)
    assert closed < imaging.iris <= iris


# --- presets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_presets_set_goto_delete_round_trip(env: Env, path: str) -> None:
    name = "cam1" if path == "local" else "nvr1-1"
    server, channel, sdk = env.server(name), env.channels[name], env.sdk(path)
    head = server.state.ptz[0]
    head.move_to(0.25, -0.5, 0.75)
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=3)
    head.move_to(-0.5, 0.25, 0.1)
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=7)
    listed = (await sdk.call("DescribeDevicePreset", ChannelId=channel))["Data"]
    assert listed == [{"Index": 3, "Name": "preset-3"}, {"Index": 7, "Name": "preset-7"}]

    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="goto", Index=3)
    assert server.ptz_position(0) == PtzPosition(0.25, -0.5, 0.75)
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="goto", Index=7)
    assert (server.ptz_position(0).pan, server.ptz_position(0).tilt) == (-0.5, 0.25)

    tokens = {p.name: p.token for p in server.presets(0)}
    head.move_to(0.9, 0.9, 0.9)
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=3)
    assert {p.name: p.token for p in server.presets(0)} == tokens, "set on a mapped index reuses its token"
    head.move_to(0.0, 0.0, 0.0)
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="goto", Index=3)
    assert server.ptz_position(0).pan == 0.9

    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="del", Index=7)
    assert [p.name for p in server.presets(0)] == ["preset-3"]
    assert (await sdk.call("DescribeDevicePreset", ChannelId=channel))["Data"] == [{"Index": 3, "Name": "preset-3"}]
    assert await sdk.error("ControlDevicePreset", {"ChannelId": channel, "Cmd": "goto", "Index": 7}) == "ResourceNotFound"
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="del", Index=3)
    assert server.presets(0) == []


async def test_a_preset_deleted_on_the_camera_is_forgotten(env: Env) -> None:
    server, channel = env.server("cam1"), env.channels["cam1"]
    await env.local.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=5)
    (preset,) = server.presets(0)
    server.state.presets[0].remove(preset.token)  # a technician deletes it on the camera's web page
    code = await env.local.error("ControlDevicePreset", {"ChannelId": channel, "Cmd": "goto", "Index": 5})
    assert code == "ResourceNotFound"
    assert (await env.local.call("DescribeDevicePreset", ChannelId=channel))["Data"] == []


async def test_a_channel_without_ptz_has_no_presets(env: Env) -> None:
    channel = env.channels["nvr1-2"]
    assert (await env.local.call("DescribeDevicePreset", ChannelId=channel))["Data"] == []
    code = await env.local.error("ControlDevicePreset", {"ChannelId": channel, "Cmd": "set", "Index": 1})
    assert code == "InvalidParameterValue.UnSupportedPresetCMD"


# --- snapshots --------------------------------------------------------------------------------------


def decode_jpeg(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), "r", format="image2pipe") as container:
        frame = next(container.decode(video=0))
        assert container.streams.video[0].codec_context.name == "mjpeg"
        return frame.width, frame.height


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


@pytest.mark.parametrize(("name", "source"), [("cam1", "onvif"), ("cam2", "rtsp")])
async def test_a_snapshot_is_a_real_jpeg_served_by_a_signed_link(env: Env, name: str, source: str) -> None:
    channel = env.channels[name]
    answer = await env.local.call("ControlDeviceSnapshot", ChannelId=channel, SnapNum=1, Interval=1)
    listing = await env.local.call("ListDeviceSnapshots", ChannelId=channel)
    item = next(i for i in listing["Data"] if i["SessionId"] == answer["RequestId"])
    status, content_type, body = await fetch(item["DownloadUrl"])
    assert (status, content_type) == (200, "image/jpeg")
    assert decode_jpeg(body) == (320, 240) and item["ImageSize"] == len(body)
    status, _, preview = await fetch(item["PreviewUrl"])
    assert status == 200 and preview == body
    identity, record = env.gateway.devices.channel(channel)  # type: ignore[misc]
    stored = await env.gateway.snapshots.archive.find(channel_key(identity, record), item["FileName"])
    assert stored is not None and stored.source == source


async def test_snapshot_links_refuse_tampering_and_expiry(env: Env) -> None:
    channel = env.channels["cam1"]
    await env.local.call("ControlDeviceSnapshot", ChannelId=channel, SnapNum=1, Interval=2)
    url = (await env.local.call("ListDeviceSnapshots", ChannelId=channel))["Data"][-1]["DownloadUrl"]
    assert (await fetch(url))[0] == 200
    expires = url.split("expires=")[1].split("&")[0]
    assert (await fetch(url.replace(f"expires={expires}", f"expires={int(expires) + 3600}")))[0] == 403
    assert (await fetch(url[:-1] + ("0" if url[-1] != "0" else "1")))[0] == 403
    assert (await fetch(url.split("?")[0]))[0] == 403
    env.clock.offset = 2 * 3600.0
    try:
        assert (await fetch(url))[0] == 403
    finally:
        env.clock.offset = 0.0


async def test_a_burst_via_the_cloud_is_listed_under_the_call_request_id(env: Env) -> None:
    channel = env.channels["nvr1-1"]
    answer = await env.remote.call("ControlDeviceSnapshot", ChannelId=channel, SnapNum=2, Interval=1, Expire=15)

    identity, record = env.gateway.devices.channel(channel)  # type: ignore[misc]

    async def both_shots() -> bool:
        page = await env.gateway.snapshots.archive.page(channel_key(identity, record), 0, time.time() + 1, 0, 100)
        return sum(1 for shot in page.records if shot.session_id == answer["RequestId"]) == 2

    await wait_until(both_shots)
    listing = await env.local.call("ListDeviceSnapshots", ChannelId=channel, Start=int(time.time()) - 60)
    shots = [i for i in listing["Data"] if i["SessionId"] == answer["RequestId"]]
    assert [s["FileName"][-6:] for s in shots] == ["01.jpg", "02.jpg"]
    assert all(s["DownloadUrl"] and s["PreviewUrl"] for s in shots)


# --- error paths ----------------------------------------------------------------------------------------


def error_cases() -> list[Any]:
    ptz = {"Type": "left", "Speed": 3}
    preset = {"Cmd": "goto", "Index": 1}
    snap = {"SnapNum": 1, "Interval": 1}
    now = int(time.time())
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("ControlDevicePTZ", "unknown", ptz, "ResourceNotFound"),
        ("ControlDevicePTZ", "bad id", ptz, "InvalidParameterValue.InvalidChannelId"),
        ("ControlDevicePTZ", "", ptz, "InvalidParameterValue.InvalidChannelId"),
        ("ControlDevicePTZ", "cam1", {"Type": "stop", "Speed": 3}, "InvalidParameterValue.UnSupportedPTZCMD"),
        ("ControlDevicePTZ", "cam1", {"Type": "Left", "Speed": 3}, "InvalidParameterValue.UnSupportedPTZCMD"),
        ("ControlDevicePTZ", "cam1", {"Type": "left", "Speed": 0}, "InvalidParameterValue"),
        ("ControlDevicePTZ", "cam1", {"Type": "left", "Speed": 9}, "InvalidParameterValue"),
        ("ControlDevicePTZ", "cam1", {"Type": "left", "Speed": "8"}, "InvalidParameter"),
        ("ControlDevicePTZ", "cam1", {"Speed": 3}, "MissingParameter"),
        ("ControlDevicePTZ", "cam1", {**ptz, "Duration": 2}, "UnknownParameter"),
        ("ControlDevicePTZ", "nvr1-2", ptz, "InvalidParameterValue.UnSupportedPTZCMD"),
        ("ControlDevicePreset", "unknown", preset, "ResourceNotFound"),
        ("ControlDevicePreset", "bad id", preset, "InvalidParameterValue.InvalidChannelId"),
        ("ControlDevicePreset", "cam1", {"Cmd": "call", "Index": 1}, "InvalidParameterValue.UnSupportedPresetCMD"),
        ("ControlDevicePreset", "cam1", {"Cmd": "set", "Index": 0}, "InvalidParameterValue"),
        ("ControlDevicePreset", "cam1", {"Cmd": "set", "Index": 11}, "InvalidParameterValue"),
        ("ControlDevicePreset", "cam1", {"Cmd": "goto", "Index": 9}, "ResourceNotFound"),
        ("ControlDevicePreset", "cam1", {"Cmd": "del", "Index": 9}, "ResourceNotFound"),
        ("ControlDevicePreset", "nvr1-2", {"Cmd": "goto", "Index": 1}, "InvalidParameterValue.UnSupportedPresetCMD"),
        ("DescribeDevicePreset", "unknown", {}, "ResourceNotFound"),
        ("DescribeDevicePreset", "bad id", {}, "InvalidParameterValue.InvalidChannelId"),
        ("ControlDeviceSnapshot", "unknown", snap, "ResourceNotFound"),
        ("ControlDeviceSnapshot", "bad id", snap, "InvalidParameterValue.InvalidChannelId"),
        ("ControlDeviceSnapshot", "cam1", {"SnapNum": 0, "Interval": 1}, "InvalidParameterValue"),
        ("ControlDeviceSnapshot", "cam1", {"SnapNum": 11, "Interval": 1}, "InvalidParameterValue"),
        ("ControlDeviceSnapshot", "cam1", {"SnapNum": 1, "Interval": 1801}, "InvalidParameterValue"),
        ("ControlDeviceSnapshot", "cam1", {**snap, "Expire": 8}, "InvalidParameterValue"),
        ("ControlDeviceSnapshot", "cam1", {"SnapNum": 1}, "MissingParameter"),
    ]
    snapshot_listing: list[tuple[str, str, dict[str, Any], str]] = [
        ("ListDeviceSnapshots", "unknown", {}, "ResourceNotFound"),
        ("ListDeviceSnapshots", "bad id", {}, "InvalidParameterValue.InvalidChannelId"),
        ("ListDeviceSnapshots", "cam1", {"PageSize": 2001}, "InvalidParameterValue.PageSizeExceedLimit"),
        ("ListDeviceSnapshots", "cam1", {"PageNumber": 0}, "InvalidParameterValue.InvalidPageNumber"),
        ("ListDeviceSnapshots", "cam1", {"Start": now - 10, "End": now - 20}, "InvalidParameterValue.StartOverEndTime"),
        ("ListDeviceSnapshots", "cam1", {"Start": now + 3600}, "InvalidParameterValue.StartOverNowTime"),
    ]
    return [
        pytest.param(path, *case, id=f"{path}-{case[0]}-{case[-1]}-{index}")
        for path in PATHS
        for index, case in enumerate(cases + snapshot_listing)
    ]


@pytest.mark.parametrize(("path", "action", "name", "params", "code"), error_cases())
async def test_documented_error_codes(env: Env, path: str, action: str, name: str, params: dict[str, Any], code: str) -> None:
    channel = env.channels.get(name, UNKNOWN_CHANNEL if name == "unknown" else name)
    assert await env.sdk(path).error(action, {"ChannelId": channel, **params}) == code


# --- devices that misbehave -------------------------------------------------------------------------------


def small_site(tmp_path: Path, clips: Path, **options: Any) -> SimulatedSite:
    """A site of its own for a test (started by ``async with``)."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "rtsp-cache").symlink_to(clips)
    options = {"width": 320, "height": 240, "discovery": False, "host": f"{random_loopback_prefix()}.0", **options}
    return SimulatedSite(state_dir=tmp_path / "site", **options)


async def test_a_slow_device_never_delays_another_and_times_out(tmp_path: Path, rtsp_clip_cache: Path) -> None:  # noqa: F811
    slow_camera = {"cam2": frozenset({Quirk.SLOW})}
    async with (
        small_site(tmp_path, rtsp_clip_cache, cameras=2, nvrs=0, quirks=slow_camera, slow_delay_s=0.6) as site,
        running_gateway(control_config(tmp_path, None, site, command_timeout="0.5s")) as gateway,
    ):
        channels = await channels_by_name(gateway, cloud=False)
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        identity, record = gateway.devices.channel(channels["cam2"])  # type: ignore[misc]
        slow_channel = gateway.ptz.stepper(identity, record.source_token)
        slow = asyncio.create_task(sdk.error("ControlDevicePTZ", {"ChannelId": channels["cam2"], "Type": "up", "Speed": 4}))
        await wait_until(lambda: slow_channel.busy)  # the slow camera's command is in progress
        started = time.monotonic()
        await sdk.call("ControlDevicePTZ", ChannelId=channels["cam1"], Type="up", Speed=4)
        fast_seconds = time.monotonic() - started
        assert not slow.done(), "the slow device is still busy"
        assert fast_seconds < 0.45, f"the fast camera waited {fast_seconds:.2f} s"
        assert await slow == "FailedOperation.DeviceResponseTimeOut"
        await asyncio.wait_for(site.server("cam1").wait_for_request("ptz.Stop"), WAIT_SECONDS)


async def test_offline_device_and_offline_channel(tmp_path: Path, rtsp_clip_cache: Path) -> None:  # noqa: F811
    async with (
        small_site(tmp_path, rtsp_clip_cache, cameras=1, nvrs=1, nvr_channels=2) as site,
        running_gateway(control_config(tmp_path, None, site)) as gateway,
    ):
        channels = await channels_by_name(gateway, cloud=False)
        sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
        await site.stop_device("cam1")
        params = {"ChannelId": channels["cam1"], "Type": "left", "Speed": 2}
        assert await sdk.error("ControlDevicePTZ", params) == "ResourceUnavailable.DevOffline"
        await gateway.devices.run_round()  # the round isolates it: no session any more
        assert gateway.devices.session(gateway.devices.channel(channels["cam1"])[0]) is None  # type: ignore[index]
        assert await sdk.error("ControlDevicePTZ", params) == "ResourceUnavailable.DevOffline"
        assert await sdk.error("DescribeDevicePreset", {"ChannelId": channels["cam1"]}) == "ResourceUnavailable.DevOffline"

        identity, record = gateway.devices.channel(channels["nvr1-2"])  # type: ignore[misc]
        await gateway.store.execute(  # type: ignore[union-attr]
            "UPDATE channels SET state = 'offline' WHERE device_identity = ? AND source_token = ?",
            (identity, record.source_token),
        )
        await gateway.devices.run_round()  # the channel index is rebuilt from the inventory
        snapshot = {"ChannelId": channels["nvr1-2"], "SnapNum": 1, "Interval": 1}
        assert await sdk.error("ControlDeviceSnapshot", snapshot) == "ResourceUnavailable.ChannelOffline"


# --- restarts and shutdown ----------------------------------------------------------------------------------


async def test_presets_survive_a_restart_and_shutdown_stops_a_running_step(
    tmp_path: Path, rtsp_clip_cache: Path  # noqa: F811
) -> None:
    async with small_site(tmp_path, rtsp_clip_cache, cameras=1, nvrs=0) as site:
        server, head = site.server("cam1"), site.server("cam1").state.ptz[0]
        config = control_config(tmp_path, None, site, step=5.0)
        async with running_gateway(config) as gateway:
            channel = (await channels_by_name(gateway, cloud=False))["cam1"]
            sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
            head.move_to(0.5, 0.5, 0.5)
            await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=2)
            await sdk.call("ControlDevicePTZ", ChannelId=channel, Type="left", Speed=1)
            assert head.pan_tilt_moving()
        # The gateway stopped with a 5 s step running: it sent the Stop before closing the session.
        assert server.request_counts["ptz.Stop"] == 1 and not head.pan_tilt_moving()
        head.move_to(0.0, 0.0, 0.0)
        async with running_gateway(config) as gateway:
            await channels_by_name(gateway, cloud=False)
            sdk = LocalApiSdk(f"127.0.0.1:{gateway.api_port}")
            assert (await sdk.call("DescribeDevicePreset", ChannelId=channel))["Data"] == [{"Index": 2, "Name": "preset-2"}]
            await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="goto", Index=2)
            assert (server.ptz_position(0).pan, server.ptz_position(0).tilt) == (0.5, 0.5)
