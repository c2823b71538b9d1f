"""``make demo``: the whole flow on a simulated site, narrated step by step.

A cloud emulator and a simulated site (cameras, an NVR, RTSP streams, WS-Discovery) start on
loopback; the real ``ivc-gateway`` daemon runs as its own process against them; the official
Tencent SDK, pointed at the emulator, sees the site appear and drives it. Everything lives in a
temporary directory and is torn down at the end. ``--keep DIR`` keeps the files (the daemon's
log is ``DIR/gateway.log``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iss.v20230517 import iss_client

from sim.cloud import CloudEmulator, seeds
from sim.site import SimulatedSite

REGION = "ap-guangzhou"
T = TypeVar("T")


def say(step: str, detail: Any = "") -> None:
    """Print one narrated step."""
    print(f"==> {step}" + (f": {detail}" if detail != "" else ""), flush=True)


class Sdk:
    """The official SDK client; every call runs in a thread so the emulator keeps serving."""

    def __init__(self, endpoint: str, secret_id: str, secret_key: str) -> None:
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=30))
        self._client = iss_client.IssClient(credential.Credential(secret_id, secret_key), REGION, profile)

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """Call ``action`` with JSON params; return ``Response``."""
        answer = await asyncio.to_thread(self._client.call_json, action, params)
        return dict(answer["Response"])


async def until(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 90) -> T:
    """Ask ``probe`` every half second until it returns something; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.5)


def gateway_config(workdir: Path, cloud: CloudEmulator, site: SimulatedSite, keys: dict[str, str]) -> Path:
    """A config file in which every secret lives in a file next to it, as on a real box."""
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(mode=0o700)
    for name in ("cloud.secret_key", "api.secret_key", "onvif.password"):
        (secrets_dir / name).write_text(keys[name] + "\n", encoding="utf-8")
    path = workdir / "gateway.toml"
    path.write_text(
        f"""[gateway]
name = "demo-site"
gateway_id = "{seeds.GATEWAY_ID}"
state_dir = "{workdir / 'gateway-state'}"
[cloud]
secret_id = "{keys['cloud.secret_id']}"
secret_key_file = "secrets/cloud.secret_key"
cluster_id = "{seeds.GUANGZHOU_CLUSTER_ID}"
organization_id = "{seeds.SITE_ORGANIZATION_ID}"
endpoint = "http://{cloud.endpoint}"
[api]
listen = "127.0.0.1:0"
secret_id = "demo-local"
secret_key_file = "secrets/api.secret_key"
[relay]
url = "ws://{cloud.endpoint}/relay"
max_backoff = "2s"
[recording]
segment_seconds = 5
plan_refresh = "10s"
[discovery]
multicast = false
unicast_hosts = ["{site.network}"]
username = "admin"
password_file = "secrets/onvif.password"
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


async def demo(workdir: Path) -> None:
    """Run the flow; raise on anything unexpected."""
    keys = {
        "cloud.secret_id": "AKIDdemo" + secrets.token_hex(4),
        "cloud.secret_key": secrets.token_hex(16),
        "api.secret_key": secrets.token_hex(16),
    }
    async with (
        CloudEmulator(workdir / "cloud", keys["cloud.secret_id"], keys["cloud.secret_key"]) as cloud,
        SimulatedSite(state_dir=workdir / "site", cameras=2, nvrs=1, nvr_channels=2, width=640, height=360,
                      host="127.0.99.0") as site,
    ):
        keys["onvif.password"] = site.password
        say("cloud emulator", f"http://{cloud.endpoint} (relay ws://{cloud.endpoint}/relay)")
        for device in site.devices:
            say(f"simulated {device.kind.value}", f"{device.name} at {device.host}:{device.port}, "
                f"{len(device.channels)} channel(s), MAC {device.mac}")
        sdk = Sdk(cloud.endpoint, keys["cloud.secret_id"], keys["cloud.secret_key"])
        config = gateway_config(workdir, cloud, site, keys)
        log = (workdir / "gateway.log").open("wb")
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "--config", str(config), "run", stderr=log
        )
        say("gateway daemon started", f"pid {daemon.pid}, log {workdir / 'gateway.log'}")
        try:
            await flow(sdk, site)
            await control(sdk, site)
            await recording(sdk, site)
        finally:
            if daemon.returncode is None:
                daemon.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(daemon.wait(), 60)
            log.close()
            say("gateway daemon stopped", f"exit code {code}")
    say("done")


async def flow(sdk: Sdk, site: SimulatedSite) -> None:
    """What a user of the cloud sees once the gateway runs."""

    async def registered() -> list[dict[str, Any]] | None:
        data = (await sdk.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID, PageNumber=1, PageSize=100))["Data"]
        devices = data["List"] or []
        return devices if len(devices) == len(site.devices) else None

    devices = await until("the gateway to register every device", registered)
    for device in sorted(devices, key=lambda d: d["Ip"]):
        say("registered in the cloud", f"{device['Name']} {device['Ip']}:{device['Port']} DeviceId {device['DeviceId']}")

    channels: list[dict[str, Any]] = []
    for device in devices:
        async def listed(device_id: str = device["DeviceId"], wanted: int = 0) -> list[dict[str, Any]] | None:
            data = (await sdk.call("DescribeDeviceChannel", DeviceId=device_id))["Data"] or []
            return data if data and all(c.get("ChannelCode") for c in data) else None

        channels += await until(f"channels of {device['Name']}", listed)
    for channel in channels:
        say("channel", f"{channel['Name']} ChannelId {channel['ChannelId']} PTZ {'yes' if channel['PTZType'] else 'no'}")
    try:
        await sdk.call("AddUserDevice", Name="bad", AccessProtocol=3, Type=1, OrganizationId=seeds.SITE_ORGANIZATION_ID,
                       ClusterId=seeds.GUANGZHOU_CLUSTER_ID, GatewayId=seeds.GATEWAY_ID, ProtocolType=4,
                       Ip="999.1.1.1", Port=80, Username="admin", Password="x")
    except TencentCloudSDKException as err:
        say("a bad request is refused with the documented code", err.get_code())


async def _channel_of(sdk: Sdk, site: SimulatedSite, name: str, position: int = 0) -> tuple[str, str]:
    """``(DeviceId, ChannelId)`` of a simulated device's channel, as the cloud knows it."""
    device = site.device(name)
    listed = (await sdk.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID, PageNumber=1, PageSize=100))["Data"]["List"]
    device_id = next(d["DeviceId"] for d in listed if (d["Ip"], d["Port"]) == (device.host, device.port))
    channels = (await sdk.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    code = device.channels[position].token
    return device_id, next(c["ChannelId"] for c in channels if c["ChannelCode"] == code)


async def control(sdk: Sdk, site: SimulatedSite) -> None:
    """PTZ, a preset and a snapshot, sent to the cloud and relayed to the camera by the gateway."""
    _, channel = await _channel_of(sdk, site, "cam1")
    camera = site.server("cam1")
    before = camera.ptz_position(0)
    await sdk.call("ControlDevicePTZ", ChannelId=channel, Type="right", Speed=8)
    await until("the camera to pan", lambda: _moved(camera, before), timeout=10)
    after = camera.ptz_position(0)
    say("ControlDevicePTZ right via the cloud", f"camera pan {before.pan:+.2f} -> {after.pan:+.2f}")
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="set", Index=1)
    await sdk.call("ControlDevicePTZ", ChannelId=channel, Type="left", Speed=8)
    await asyncio.sleep(1.0)  # let the left step finish so the preset visibly brings it back
    await sdk.call("ControlDevicePreset", ChannelId=channel, Cmd="goto", Index=1)
    presets = (await sdk.call("DescribeDevicePreset", ChannelId=channel))["Data"]
    say("preset 1 set, camera moved away, preset recalled",
        f"pan now {camera.ptz_position(0).pan:+.2f}; presets {[(p['Index'], p['Name']) for p in presets]}")
    shot = await sdk.call("ControlDeviceSnapshot", ChannelId=channel, SnapNum=1, Interval=1)
    listing = (await sdk.call("ListDeviceSnapshots", ChannelId=channel))["Data"]
    item = next(i for i in listing if i["SessionId"] == shot["RequestId"])
    say("ControlDeviceSnapshot", f"{item['FileName']}, {item['ImageSize']} bytes of JPEG, link {item['DownloadUrl'][:60]}...")


async def _moved(camera: Any, before: Any) -> bool:
    return bool(camera.ptz_position(0).pan > before.pan + 0.05)


async def recording(sdk: Sdk, site: SimulatedSite) -> None:
    """A record plan made in the cloud runs on the gateway; the timeline shows the footage."""
    device_id, channel = await _channel_of(sdk, site, "nvr1", 1)
    sections = [{"DayOfWeek": day, "StartTime": "00:00:00", "EndTime": "23:59:59"} for day in range(1, 8)]
    template = (await sdk.call("AddRecordTemplate", TemplateName="all-week", TimeSections=sections))["Data"]
    await sdk.call("AddRecordPlan", PlanName="demo-plan", TemplateId=template["TemplateId"],
                   LifeCycle={"Transition": 7, "Expiration": 0}, Channels=[{"DeviceId": device_id, "ChannelId": channel}])
    say("record plan added in the cloud", f"all week, channel {channel}")
    started = int(time.time())

    async def recorded() -> list[dict[str, Any]] | None:
        now = int(time.time())
        spans = (await sdk.call("ControlRecordTimeline", ChannelId=channel, Start=started - 60, End=now))["Data"] or []
        return spans if sum(s["End"] - s["Begin"] for s in spans) >= 10 else None

    spans = await until("10 s of footage in the local timeline", recorded, timeout=120)
    say("ControlRecordTimeline via the cloud", ", ".join(f"{s['Begin']}-{s['End']}" for s in spans))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m sim.demo``."""
    parser = argparse.ArgumentParser(prog="python -m sim.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the demo's files in this directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("sim").setLevel(logging.WARNING)
    if args.keep:
        if args.keep.exists():
            shutil.rmtree(args.keep)
        args.keep.mkdir(parents=True)
        asyncio.run(demo(args.keep))
        return 0
    with tempfile.TemporaryDirectory(prefix="ivc-demo-") as workdir:
        asyncio.run(demo(Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
