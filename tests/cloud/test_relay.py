"""The gateway relay end to end: the emulator's ``/relay`` and a real ``RelayLink``, the official
SDK as the user.

Frames on one link are handled in order, so a command answered after an event was sent proves
the event has been applied; tests use that as their barrier instead of polling.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from gateway.iss import API_VERSION
from gateway.iss.signing import Tc3Signer
from gateway.relay import CONNECT_ACTION, GATEWAY_HEADER, Backoff, RelayLink
from sim.cloud import CloudEmulator, seeds
from sim.cloud.relay import REPLACED_CLOSE_CODE

from .conftest import SECRET_ID, SECRET_KEY, IssSdk, add_camera, channel_ids, values

WAIT = 5.0
ChannelList = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Command:
    action: str
    params: dict[str, Any]
    request_id: str


class SiteGateway:
    """The gateway end: a real RelayLink whose handler records commands and answers per action.

    ``answers[action](params)`` gives the Response fields (default: none); actions in ``held``
    wait for ``release`` first; ``channels[device_id]`` is what RefreshDeviceChannel returns.
    """

    def __init__(self, cloud: CloudEmulator, gateway_id: str = seeds.GATEWAY_ID) -> None:
        self.gateway_id = gateway_id
        self.commands: list[Command] = []
        self.arrived: asyncio.Queue[Command] = asyncio.Queue()
        self.answers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.channels: dict[str, ChannelList] = {}
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.answers["RefreshDeviceChannel"] = lambda params: {"Data": self.channels[params["DeviceId"]]}
        self.link = RelayLink(
            cloud.relay_url,
            gateway_id,
            Tc3Signer(SECRET_ID, SECRET_KEY),
            self.handle,
            backoff=Backoff(base=0.01, cap=0.05),
        )

    async def handle(self, action: str, params: dict[str, Any], request_id: str) -> dict[str, Any]:
        command = Command(action, params, request_id)
        self.commands.append(command)
        self.arrived.put_nowait(command)
        if action in self.held:
            await self.release.wait()
        answer = self.answers.get(action)
        return {**(answer(params) if answer else {}), "RequestId": request_id}

    def executed(self, action: str) -> list[Command]:
        return [command for command in self.commands if command.action == action]


@contextlib.asynccontextmanager
async def connected(cloud: CloudEmulator, site: SiteGateway) -> AsyncIterator[SiteGateway]:
    """Run the site's link until the emulator shows the gateway online; stop it on exit."""
    task = asyncio.create_task(site.link.run())
    try:
        await asyncio.wait_for(cloud.relay.wait_connected(site.gateway_id), WAIT)
        yield site
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def site(cloud: CloudEmulator) -> AsyncIterator[SiteGateway]:
    async with connected(cloud, SiteGateway(cloud)) as gateway:
        yield gateway


async def first_channel(iss: IssSdk, device_id: str) -> str:
    return (await channel_ids(iss, device_id))[0]


def upgrade_headers(
    endpoint: str,
    *,
    gateway_id: str | None = seeds.GATEWAY_ID,
    secret_id: str = SECRET_ID,
    secret_key: str = SECRET_KEY,
    host: str | None = None,
    action: str = CONNECT_ACTION,
) -> dict[str, str]:
    """The signed headers of a ConnectGateway upgrade, as RelayLink sends them."""
    signed = Tc3Signer(secret_id, secret_key).sign(
        action=action,
        body=b"",
        host=host or endpoint,
        timestamp=int(time.time()),
        version=API_VERSION,
        method="GET",
    )
    headers = dict(signed.headers)
    if gateway_id is not None:
        headers[GATEWAY_HEADER] = gateway_id
    return headers


def with_handshake(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus a WebSocket handshake, for a plain GET that shows the HTTP answer."""
    return {
        **headers,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }


async def plain_get(url: str, headers: dict[str, str]) -> tuple[int, str | None, dict[str, Any]]:
    """GET ``url``; the HTTP status, the exact Content-Type and the decoded body."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, answer.headers.get("Content-Type"), await answer.json()


async def gateway_status(iss: IssSdk, gateway_id: str) -> int:
    status: int = (await iss.raw("DescribeGateway", {"GatewayId": gateway_id}))["Data"]["Status"]
    return status


# -- forwarded commands ----------------------------------------------------------------------


async def test_ptz_reaches_the_gateway_and_returns_its_answer(
    cloud: CloudEmulator, iss: IssSdk, site: SiteGateway
) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    response = await iss.call("ControlDevicePTZ", ChannelId=channel_id, Type="left", Speed=4)
    assert set(response) == {"RequestId"}
    # The command carries the caller's RequestId, so both ends of a call can be traced.
    assert site.commands == [
        Command(
            "ControlDevicePTZ", {"ChannelId": channel_id, "Type": "left", "Speed": 4}, response["RequestId"]
        )
    ]
    site.answers["DescribeDevicePreset"] = lambda params: {"Data": [{"Index": 1, "Name": "door"}]}
    presets = await iss.call("DescribeDevicePreset", ChannelId=channel_id)
    assert presets["Data"] == [{"Index": 1, "Name": "door"}]


async def test_gateway_errors_reach_the_caller_with_their_code(iss: IssSdk, site: SiteGateway) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    site.answers["ControlDevicePTZ"] = lambda params: {
        "Error": {"Code": "InvalidParameterValue.UnSupportedPTZCMD", "Message": f"no {params['Type']}"}
    }
    params = {"ChannelId": channel_id, "Type": "spin", "Speed": 1}
    assert await iss.error("ControlDevicePTZ", params) == "InvalidParameterValue.UnSupportedPTZCMD"
    site.answers["ControlDevicePTZ"] = lambda params: {"Error": {"Code": "Vendor.Bespoke", "Message": "odd"}}
    assert await iss.error("ControlDevicePTZ", params) == "FailedOperation"  # undocumented code


async def test_platform_checks_before_forwarding(
    cloud: CloudEmulator, iss: IssSdk, site: SiteGateway
) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    assert await iss.error("ControlDevicePTZ", {"ChannelId": channel_id, "Type": "up"}) == "MissingParameter"
    assert await iss.error("ControlDevicePTZ", {"ChannelId": channel_id, "Type": "up", "Speed": "2"}) == (
        "InvalidParameter"
    )
    unknown = {"ChannelId": "00000000-0000-0000-0000-000000000000", "Type": "up", "Speed": 1}
    assert await iss.error("ControlDevicePTZ", unknown) == "ResourceNotFound"
    assert await iss.error("ControlDevicePTZ", {**unknown, "ChannelId": "bad id"}) == (
        "InvalidParameterValue.InvalidChannelId"
    )
    await iss.call("UpdateDeviceStatus", DeviceId=camera["DeviceId"], Status=3)
    assert await iss.error("ControlDevicePTZ", {**unknown, "ChannelId": channel_id}) == (
        "ResourceUnavailable.DevDisable"
    )
    assert site.commands == []


async def test_gateway_not_connected_is_dev_offline(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    params = {"ChannelId": channel_id, "Type": "left", "Speed": 1}
    assert await iss.error("ControlDevicePTZ", params) == "ResourceUnavailable.DevOffline"
    async with connected(cloud, SiteGateway(cloud)):
        await iss.call("ControlDevicePTZ", **params)
    await asyncio.wait_for(cloud.relay.wait_disconnected(seeds.GATEWAY_ID), WAIT)
    assert await iss.error("ControlDevicePTZ", params) == "ResourceUnavailable.DevOffline"


async def test_handler_slower_than_the_deadline_is_device_response_timeout(
    cloud: CloudEmulator, iss: IssSdk, site: SiteGateway
) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    cloud.relay.deadline = 0.3
    site.held.add("ControlDevicePTZ")
    params = {"ChannelId": channel_id, "Type": "left", "Speed": 1}
    assert await iss.error("ControlDevicePTZ", params) == "FailedOperation.DeviceResponseTimeOut"
    # The late answer finds nobody waiting; the link and the next command are unaffected.
    site.release.set()
    assert set(await iss.call("ControlDevicePTZ", **params)) == {"RequestId"}
    assert cloud.relay.accepted(seeds.GATEWAY_ID) == 1


async def test_command_in_flight_is_resent_after_a_reconnect_and_runs_once(
    cloud: CloudEmulator, iss: IssSdk, site: SiteGateway
) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    site.held.add("ControlDevicePTZ")
    call = asyncio.create_task(iss.call("ControlDevicePTZ", ChannelId=channel_id, Type="up", Speed=2))
    first = await asyncio.wait_for(site.arrived.get(), WAIT)
    assert await cloud.relay.disconnect(seeds.GATEWAY_ID)  # the link drops mid-command
    await asyncio.wait_for(cloud.relay.wait_connected(seeds.GATEWAY_ID, accepted=2), WAIT)
    site.release.set()
    response = await asyncio.wait_for(call, WAIT)
    assert response["RequestId"] == first.request_id
    assert site.executed("ControlDevicePTZ") == [first]


async def test_link_lost_for_good_times_out_at_the_deadline(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    cloud.relay.deadline = 0.5
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(cloud.relay_url, headers=upgrade_headers(cloud.endpoint))
        call = asyncio.create_task(
            iss.error("ControlDevicePTZ", {"ChannelId": channel_id, "Type": "up", "Speed": 1})
        )
        command = json.loads((await ws.receive(timeout=WAIT)).data)
        assert (command["Type"], command["Action"], command["Version"]) == (
            "Command",
            "ControlDevicePTZ",
            API_VERSION,
        )
        await ws.close()
        assert await asyncio.wait_for(call, WAIT) == "FailedOperation.DeviceResponseTimeOut"


# -- connections -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret_key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDnobody"}, "AuthFailure.SecretIdNotFound"),
        ({"host": "iss.tencentcloudapi.com"}, "AuthFailure.SignatureFailure"),
        ({"gateway_id": "00000000-0000-0000-0000-000000000000"}, "InvalidParameterValue.InvalidGatewayId"),
        ({"gateway_id": "not-a-gateway"}, "InvalidParameterValue.InvalidGatewayId"),
        ({"gateway_id": None}, "MissingParameter"),
        ({"action": "ListGateways"}, "InvalidAction"),
    ],
    ids=["key", "secret-id", "host", "unknown-gateway", "malformed-gateway", "no-gateway", "action"],
)
async def test_bad_upgrades_are_refused_with_an_iss_error(
    cloud: CloudEmulator, iss: IssSdk, change: dict[str, Any], code: str
) -> None:
    headers = with_handshake(upgrade_headers(cloud.endpoint, **change))
    status, content_type, body = await plain_get(f"http://{cloud.endpoint}/relay", headers)
    assert (status, content_type, body["Response"]["Error"]["Code"]) == (200, "application/json", code)
    assert not cloud.relay.is_connected(seeds.GATEWAY_ID)


async def test_signed_get_without_upgrade_is_refused(cloud: CloudEmulator) -> None:
    status, _, body = await plain_get(f"http://{cloud.endpoint}/relay", upgrade_headers(cloud.endpoint))
    assert (status, body["Response"]["Error"]["Code"]) == (200, "UnsupportedProtocol")


async def test_second_connection_replaces_the_first(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera = await add_camera(iss)
    channel_id = await first_channel(iss, camera["DeviceId"])
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(cloud.relay_url, headers=upgrade_headers(cloud.endpoint))
        await asyncio.wait_for(cloud.relay.wait_connected(seeds.GATEWAY_ID), WAIT)
        second = await session.ws_connect(cloud.relay_url, headers=upgrade_headers(cloud.endpoint))
        closing = await first.receive(timeout=WAIT)
        assert (closing.type, first.close_code) == (WSMsgType.CLOSE, REPLACED_CLOSE_CODE)
        await asyncio.wait_for(cloud.relay.wait_connected(seeds.GATEWAY_ID, accepted=2), WAIT)
        assert await gateway_status(iss, seeds.GATEWAY_ID) == 1  # replaced, never offline
        call = asyncio.create_task(iss.call("ControlDevicePTZ", ChannelId=channel_id, Type="up", Speed=1))
        command = json.loads((await second.receive(timeout=WAIT)).data)
        await second.send_json(
            {"Type": "Result", "RequestId": command["RequestId"], "Response": {"RequestId": "x"}}
        )
        assert (await asyncio.wait_for(call, WAIT))["RequestId"] == command["RequestId"]
        await second.close()


async def test_gateway_status_follows_the_link(cloud: CloudEmulator, iss: IssSdk) -> None:
    gateway_id = await cloud.add_gateway("site-b", status=0)
    camera = await add_camera(iss, GatewayId=gateway_id)
    assert camera["Status"] == 0  # added while its gateway was offline: not registered
    async with connected(cloud, SiteGateway(cloud, gateway_id)):
        assert await gateway_status(iss, gateway_id) == 1
        listed = (await iss.raw("ListGateways", {"Status": 1}))["Data"]["List"]
        assert gateway_id in [item["GatewayId"] for item in listed]
        assert (await iss.call("DescribeUserDevice", DeviceId=camera["DeviceId"]))["Data"]["Status"] == 1
    await asyncio.wait_for(cloud.relay.wait_disconnected(gateway_id), WAIT)
    assert await gateway_status(iss, gateway_id) == 0
    assert (await iss.call("DescribeUserDevice", DeviceId=camera["DeviceId"]))["Data"]["Status"] == 2
    assert await gateway_status(iss, seeds.GATEWAY_ID) == 1  # the seed gateway never connected


# -- channels ----------------------------------------------------------------------------------


def source(number: int, *, name: str | None = None, ptz: int = 0) -> dict[str, Any]:
    """A channel as the gateway reports it (ONVIF video source tokens as codes)."""
    return {
        "ChannelCode": f"VideoSource_{number}",
        "Name": name or f"cam-{number}",
        "PTZType": ptz,
        "Resolution": "1920x1080",
        "Manufacturer": "Acme",
        "State": 1,
        "Status": 0,
    }


async def codes(iss: IssSdk, device_id: str) -> dict[str, str]:
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    return {channel["ChannelCode"]: channel["ChannelId"] for channel in channels}


async def test_refresh_merges_the_nvr_channels_the_gateway_reports(iss: IssSdk, site: SiteGateway) -> None:
    nvr = await add_camera(iss, Type=2, Name="nvr", Ip="192.168.1.200")
    device_id = nvr["DeviceId"]
    site.channels[device_id] = [source(1, ptz=1), source(2), source(3), source(4)]
    assert set(await iss.call("RefreshDeviceChannel", DeviceId=device_id)) == {"RequestId"}
    assert site.executed("RefreshDeviceChannel")[0].params == {"DeviceId": device_id}
    first = await codes(iss, device_id)
    assert sorted(first) == [f"VideoSource_{n}" for n in range(1, 5)]
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    assert values(channels[0], "Name PTZType Manufacturer State") == ("cam-1", 1, "Acme", 1)

    await iss.call("RefreshDeviceChannel", DeviceId=device_id)
    assert await codes(iss, device_id) == first  # nothing added, ids kept

    # Source 2 disappears and source 5 appears: 5 is added, 2 is kept (the cloud never deletes).
    site.channels[device_id] = [source(1), source(3), source(4), source(5)]
    await iss.call("RefreshDeviceChannel", DeviceId=device_id)
    after = await codes(iss, device_id)
    assert sorted(after) == [f"VideoSource_{n}" for n in range(1, 6)]
    assert {code: after[code] for code in first} == first
    listed = (await iss.raw("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}))["Data"]["List"]
    assert [(item["DeviceId"], item["ChannelNum"]) for item in listed] == [(device_id, 5)]


async def test_refresh_of_an_ipc_keeps_exactly_one_channel(iss: IssSdk, site: SiteGateway) -> None:
    camera = await add_camera(iss)
    device_id = camera["DeviceId"]
    automatic = await first_channel(iss, device_id)  # created at AddUserDevice
    site.channels[device_id] = [source(1, name="front door", ptz=1)]
    await iss.call("RefreshDeviceChannel", DeviceId=device_id)
    await iss.call("RefreshDeviceChannel", DeviceId=device_id)
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    assert [(c["ChannelId"], c["ChannelCode"], c["Name"], c["PTZType"]) for c in channels] == [
        (automatic, "VideoSource_1", "front door", 1)
    ]


async def test_refresh_without_a_link_is_dev_offline(cloud: CloudEmulator, iss: IssSdk) -> None:
    gateway_id = await cloud.add_gateway("site-c", status=0)
    camera = await add_camera(iss, GatewayId=gateway_id)
    site = SiteGateway(cloud, gateway_id)
    site.channels[camera["DeviceId"]] = [source(1)]
    async with connected(cloud, site):
        await iss.call("RefreshDeviceChannel", DeviceId=camera["DeviceId"])
    await asyncio.wait_for(cloud.relay.wait_disconnected(gateway_id), WAIT)
    assert await iss.error("RefreshDeviceChannel", {"DeviceId": camera["DeviceId"]}) == (
        "ResourceUnavailable.DevOffline"
    )
    assert len(site.executed("RefreshDeviceChannel")) == 1


# -- events ------------------------------------------------------------------------------------


async def test_device_state_event_changes_what_the_cloud_reports(iss: IssSdk, site: SiteGateway) -> None:
    camera, barrier_camera = await add_camera(iss), await add_camera(iss, Ip="192.168.1.65")
    device_id = camera["DeviceId"]
    channel_id = await first_channel(iss, device_id)
    barrier_channel = await first_channel(iss, barrier_camera["DeviceId"])

    async def send_and_flush(event: str, body: dict[str, Any]) -> None:
        assert await site.link.send_event(event, body)
        await iss.call("ControlDevicePTZ", ChannelId=barrier_channel, Type="up", Speed=1)

    await send_and_flush(
        "DeviceState",
        {
            "DeviceId": device_id,
            "Online": True,
            "Channels": [{"ChannelId": channel_id, "State": 1, "Status": 1}],
        },
    )
    channel = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"][0]
    assert (channel["State"], channel["Status"]) == (1, 1)

    await send_and_flush("DeviceState", {"DeviceId": device_id, "Online": False, "Channels": []})
    channel = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"][0]
    assert channel["State"] == 0
    assert (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]["Status"] == 2
    listed = (await iss.raw("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}))["Data"]["List"]
    assert {item["DeviceId"]: item["Status"] for item in listed} == {
        device_id: 2,
        barrier_camera["DeviceId"]: 1,
    }
    assert await iss.error("ControlDevicePTZ", {"ChannelId": channel_id, "Type": "up", "Speed": 1}) == (
        "ResourceUnavailable.DevOffline"
    )

    # Unknown events and malformed ones change nothing and keep the link up.
    await send_and_flush("Weather", {"Sky": "clear"})
    await send_and_flush("DeviceState", {"DeviceId": device_id, "Online": "yes"})
    await send_and_flush(
        "DeviceState",
        {"DeviceId": device_id, "Online": True, "Channels": [{"ChannelId": channel_id, "State": 0}]},
    )
    device = (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]
    channel = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"][0]
    assert (device["Status"], channel["State"], channel["Status"]) == (1, 0, 1)


async def test_malformed_channel_list_fails_the_refresh(iss: IssSdk, site: SiteGateway) -> None:
    nvr = await add_camera(iss, Type=2, Name="nvr")
    site.channels[nvr["DeviceId"]] = [{**source(1), "Bogus": 1}]
    assert await iss.error("RefreshDeviceChannel", {"DeviceId": nvr["DeviceId"]}) == "FailedOperation"
    assert await channel_ids(iss, nvr["DeviceId"]) == []


async def test_admin_endpoints_show_and_drop_links(cloud: CloudEmulator, site: SiteGateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{cloud.url}_emulator/relay") as answer:
            assert await answer.json() == {"Connected": [seeds.GATEWAY_ID]}
        async with session.delete(f"{cloud.url}_emulator/relay/{seeds.GATEWAY_ID}") as answer:
            assert answer.status == 200
        await asyncio.wait_for(cloud.relay.wait_connected(seeds.GATEWAY_ID, accepted=2), WAIT)
        async with session.delete(
            f"{cloud.url}_emulator/relay/00000000-0000-0000-0000-000000000000"
        ) as answer:
            assert answer.status == 404
    await asyncio.wait_for(site.link.connected.wait(), WAIT)  # cleared at the drop, set by link 2
    assert site.link.connections == 2
