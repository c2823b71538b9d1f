"""Organizations, service nodes, devices and channels of the cloud emulator, via the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.iss.errors import IssError
from sim.cloud import ChannelQuery, CloudEmulator, ReportedChannel, seeds

from .conftest import IssSdk, add_camera, camera_params, channel_ids, member_set, values

ADD_DEVICE_DATA_FIELDS = member_set(
    "DeviceId Code Name AccessProtocol Type ClusterId ClusterName TransportProtocol Password Description "
    "Status OrganizationId GatewayId ProtocolType Ip Port Username AppId"
)
DESCRIBE_DEVICE_DATA_FIELDS = member_set(
    "DeviceId Code Name AccessProtocol Type ClusterId ClusterName TransportProtocol Password Description "
    "SipId SipDomain SipIp SipPort PushStreamUrl Status OrganizationId GatewayId GatewayName ProtocolTypeName "
    "ProtocolType Ip Port Username Region Manufacturer AudioSwitch SubscribeSwitch AppName StreamName "
    "SilentFrameSwitch"
)
CHANNEL_FIELDS = member_set(
    "DeviceId ChannelId ChannelCode Name Status PTZType Manufacturer Resolution State Region"
)


async def test_describe_organization_returns_the_seeded_tree(iss: IssSdk) -> None:
    organizations = (await iss.raw("DescribeOrganization"))["Data"]
    assert [
        (org["OrganizationId"], org["ParentId"], org["ParentIds"], org["Level"]) for org in organizations
    ] == [
        (seeds.ROOT_ORGANIZATION_ID, "0", "0", 1),
        (seeds.SITE_ORGANIZATION_ID, seeds.ROOT_ORGANIZATION_ID, "0,100", 2),
    ]
    assert set(organizations[0]) == member_set(
        "OrganizationId Name ParentId Level AppId ParentIds Total Online"
    )


async def test_organization_device_counts(iss: IssSdk) -> None:
    await add_camera(iss)
    await add_camera(iss, OrganizationId=seeds.SITE_ORGANIZATION_ID, Ip="192.168.1.65")
    counts = {
        org["OrganizationId"]: (org["Total"], org["Online"])
        for org in (await iss.call("DescribeOrganization"))["Data"]
    }
    assert counts == {seeds.ROOT_ORGANIZATION_ID: (1, 1), seeds.SITE_ORGANIZATION_ID: (1, 1)}


async def test_describe_device_region_lists_service_nodes(iss: IssSdk) -> None:
    nodes = (await iss.raw("DescribeDeviceRegion"))["Data"]
    assert {"Label": "广州一区", "Value": seeds.GUANGZHOU_CLUSTER_ID, "Region": "ap-guangzhou"} in nodes
    assert {node["Region"] for node in nodes} == {"ap-guangzhou", "ap-shanghai"}


async def test_gateway_camera_round_trip(iss: IssSdk) -> None:
    added = await add_camera(iss)
    assert set(added) == ADD_DEVICE_DATA_FIELDS
    device_id = added["DeviceId"]
    assert added["OrganizationId"] == int(seeds.ROOT_ORGANIZATION_ID)  # Integer in AddDeviceData
    assert values(added, "AccessProtocol ProtocolType Ip Port Status") == (3, 4, "192.168.1.64", 80, 1)
    assert len(added["Code"]) == 20 and added["Code"].isdigit()

    described = (await iss.raw("DescribeUserDevice", {"DeviceId": device_id}))["Data"]
    assert set(described) == DESCRIBE_DEVICE_DATA_FIELDS
    assert described["OrganizationId"] == seeds.ROOT_ORGANIZATION_ID  # String in DescribeDeviceData
    assert values(described, "GatewayName ProtocolTypeName Region") == (
        seeds.GATEWAY_NAME,
        "Onvif",
        "ap-guangzhou",
    )
    assert values(described, "AudioSwitch SubscribeSwitch SilentFrameSwitch") == (1, 1, 0)

    listed = await iss.call("ListDevices", OrganizationId=seeds.ROOT_ORGANIZATION_ID)
    assert listed["TotalCount"] == 1
    assert (listed["Data"][0]["DeviceId"], listed["Data"][0]["ChannelNum"]) == (device_id, 1)

    channels = (await iss.raw("DescribeDeviceChannel", {"DeviceId": device_id}))["Data"]
    assert len(channels) == 1 and set(channels[0]) == CHANNEL_FIELDS
    assert (channels[0]["State"], channels[0]["Status"], channels[0]["Region"]) == (1, 0, "ap-guangzhou")

    updated = (
        await iss.call(
            "UpdateUserDevice",
            DeviceId=device_id,
            Ip="192.168.1.99",
            Port=8080,
            Username="root",
            Password="new-pass",
            Name="lobby",
            AudioSwitch=0,
        )
    )["Data"]
    assert values(updated, "Ip Port Username Password Name") == (
        "192.168.1.99",
        8080,
        "root",
        "new-pass",
        "lobby",
    )
    described = (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]
    assert (described["Ip"], described["AudioSwitch"]) == ("192.168.1.99", 0)

    assert set(await iss.call("DeleteUserDevice", DeviceId=device_id)) == {"RequestId"}
    assert await iss.error("DescribeUserDevice", {"DeviceId": device_id}) == "ResourceNotFound"
    assert await iss.error("DescribeDeviceChannel", {"DeviceId": device_id}) == "ResourceNotFound"
    assert await iss.error("DeleteUserDevice", {"DeviceId": device_id}) == "ResourceNotFound"
    assert (await iss.call("ListDevices", OrganizationId=seeds.ROOT_ORGANIZATION_ID))["TotalCount"] == 0


async def test_nvr_channels_come_from_the_gateway_report(cloud: CloudEmulator, iss: IssSdk) -> None:
    reported = [ReportedChannel(f"NVR ch{number}", ptz=number == 1) for number in range(1, 5)]
    await cloud.report_channels(reported, gateway_id=seeds.GATEWAY_ID, ip="192.168.1.200", port=8000)
    nvr = await add_camera(iss, Type=2, Ip="192.168.1.200", Port=8000, Name="nvr")
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=nvr["DeviceId"]))["Data"]
    assert [(channel["Name"], channel["PTZType"]) for channel in channels] == [
        ("NVR ch1", 1),
        ("NVR ch2", 0),
        ("NVR ch3", 0),
        ("NVR ch4", 0),
    ]
    assert len({channel["ChannelId"] for channel in channels}) == 4

    # The NVR gains a channel: reported without sync, picked up by RefreshDeviceChannel only.
    grown = [*reported, ReportedChannel("NVR ch5")]
    updated = await cloud.report_channels(grown, device_id=nvr["DeviceId"], sync=False)
    assert updated == []
    assert len(await channel_ids(iss, nvr["DeviceId"])) == 4
    await iss.call("RefreshDeviceChannel", DeviceId=nvr["DeviceId"])
    after_refresh = await channel_ids(iss, nvr["DeviceId"])
    assert len(after_refresh) == 5 and after_refresh[:4] == [channel["ChannelId"] for channel in channels]

    # A channel that disappears from the report stays in the cloud (never deleted automatically).
    await cloud.report_channels(grown[:2], device_id=nvr["DeviceId"])
    await iss.call("RefreshDeviceChannel", DeviceId=nvr["DeviceId"])
    assert await channel_ids(iss, nvr["DeviceId"]) == after_refresh
    listed = (await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID))["Data"]["List"]
    assert [(item["Type"], item["ChannelNum"]) for item in listed] == [(2, 5)]


async def test_nvr_without_a_report_has_no_channels_until_one_arrives(
    cloud: CloudEmulator, iss: IssSdk
) -> None:
    nvr = await add_camera(iss, Type=2, Name="nvr")
    assert await channel_ids(iss, nvr["DeviceId"]) == []
    updated = await cloud.report_channels(
        [
            ReportedChannel("a", index=3),
            ReportedChannel("b", index=7, manufacturer="ACME", resolution="1920x1080"),
        ],
        gateway_id=seeds.GATEWAY_ID,
        ip="192.168.1.64",
        port=80,
    )
    assert updated == [nvr["DeviceId"]]
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=nvr["DeviceId"]))["Data"]
    assert [(item["Name"], item["Manufacturer"], item["Resolution"]) for item in channels] == [
        ("a", "", ""),
        ("b", "ACME", "1920x1080"),
    ]
    assert (await iss.call("DescribeUserDevice", DeviceId=nvr["DeviceId"]))["Data"]["Manufacturer"] == "ACME"


async def test_registering_the_same_address_twice_creates_two_devices(iss: IssSdk) -> None:
    """The cloud does not deduplicate; the gateway must (this keeps double registrations visible)."""
    first, second = await add_camera(iss), await add_camera(iss)
    assert first["DeviceId"] != second["DeviceId"]
    listed = (await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID))["Data"]
    assert listed["TotalCount"] == 2


async def test_rtmp_device(iss: IssSdk) -> None:
    params = {
        "Name": "push cam",
        "AccessProtocol": 1,
        "Type": 1,
        "OrganizationId": "100",
        "ClusterId": seeds.GUANGZHOU_CLUSTER_ID,
        "AppName": "live2",
        "StreamName": "s.1",
    }
    added = (await iss.call("AddUserDevice", **params))["Data"]
    assert (added["Status"], len(added["Code"])) == (0, 10)
    described = (await iss.call("DescribeUserDevice", DeviceId=added["DeviceId"]))["Data"]
    assert described["PushStreamUrl"].endswith("/live2/s.1")
    assert (described["AppName"], described["StreamName"], described["GatewayId"]) == ("live2", "s.1", "")
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=added["DeviceId"]))["Data"]
    assert [(item["ChannelId"], item["ChannelCode"], item["Name"]) for item in channels] == [
        (added["Code"], added["Code"], "push cam")
    ]
    assert await iss.error("AddUserDevice", params) == "InvalidParameterValue.RTMPPushStreamParamRepeat"
    assert await iss.error("RefreshDeviceChannel", {"DeviceId": added["DeviceId"]}) == (
        "InvalidParameterValue.UnSupportedAccessType"
    )
    assert await iss.error("UpdateUserDevice", {"DeviceId": added["DeviceId"], "Password": "x"}) == (
        "InvalidParameterValue.UnSupportedAccessType"
    )


async def test_gb_device_refresh_needs_a_registered_device(cloud: CloudEmulator, iss: IssSdk) -> None:
    params = {
        "Name": "gb",
        "AccessProtocol": 2,
        "Type": 2,
        "OrganizationId": "100",
        "ClusterId": seeds.GUANGZHOU_CLUSTER_ID,
        "Password": "gbpass",
        "TransportProtocol": 2,
    }
    added = (await iss.call("AddUserDevice", **params))["Data"]
    assert (added["Status"], added["TransportProtocol"]) == (0, 2)
    described = (await iss.call("DescribeUserDevice", DeviceId=added["DeviceId"]))["Data"]
    assert described["SipId"] and described["SipPort"]
    await cloud.report_channels([ReportedChannel("gb ch")], device_id=added["DeviceId"], sync=False)
    assert await iss.error("RefreshDeviceChannel", {"DeviceId": added["DeviceId"]}) == (
        "ResourceUnavailable.DevNoRegister"
    )
    await cloud.set_device_connection(added["DeviceId"], 2)
    assert (
        await iss.error("RefreshDeviceChannel", {"DeviceId": added["DeviceId"]})
        == "ResourceUnavailable.DevOffline"
    )
    await cloud.set_device_connection(added["DeviceId"], 1)
    await iss.call("RefreshDeviceChannel", DeviceId=added["DeviceId"])
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=added["DeviceId"]))["Data"]
    assert [(item["Name"], item["State"]) for item in channels] == [("gb ch", 1)]
    # TransportProtocol 0 means "unchanged".
    await iss.call("UpdateUserDevice", DeviceId=added["DeviceId"], TransportProtocol=0)
    assert (await iss.call("DescribeUserDevice", DeviceId=added["DeviceId"]))["Data"][
        "TransportProtocol"
    ] == 2
    assert await iss.error("UpdateUserDevice", {"DeviceId": added["DeviceId"], "Ip": "10.0.0.1"}) == (
        "InvalidParameterValue.UnSupportedAccessType"
    )


async def test_update_device_status_enables_and_disables(iss: IssSdk) -> None:
    device_id = (await add_camera(iss))["DeviceId"]
    await iss.call("UpdateDeviceStatus", DeviceId=device_id, Status=3)
    assert (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]["Status"] == 3
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=device_id))["Data"]
    assert [channel["State"] for channel in channels] == [0]
    assert (
        await iss.error("RefreshDeviceChannel", {"DeviceId": device_id}) == "ResourceUnavailable.DevDisable"
    )
    await iss.call("UpdateDeviceStatus", DeviceId=device_id, Status=2)
    assert (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]["Status"] == 1
    assert await iss.error("UpdateDeviceStatus", {"DeviceId": device_id, "Status": 1}) == (
        "InvalidParameterValue.InvalidDeviceStatus"
    )


async def test_list_devices_filters_and_paging(cloud: CloudEmulator, iss: IssSdk) -> None:
    for number in range(5):
        await add_camera(iss, Name=f"cam-{number}", Ip=f"192.168.1.{10 + number}")
    nvr = await add_camera(iss, Name="nvr-A", Type=2, OrganizationId=seeds.SITE_ORGANIZATION_ID)
    await iss.call("UpdateDeviceStatus", DeviceId=nvr["DeviceId"], Status=3)

    async def listing(**filters: Any) -> tuple[int, list[str]]:
        answer = await iss.call("ListDevices", **filters)
        return answer["TotalCount"], [item["Name"] for item in answer["Data"] or []]

    root = seeds.ROOT_ORGANIZATION_ID
    assert await listing(OrganizationId=root) == (5, [f"cam-{n}" for n in range(5)])
    assert await listing(OrganizationId=root, PageSize=2, PageNumber=3) == (5, ["cam-4"])
    assert (await listing(OrganizationId=root, IsContainSubLevel=True))[0] == 6
    assert await listing(OrganizationId="0", IsContainSubLevel=True, Type=2) == (1, ["nvr-A"])
    assert await listing(OrganizationId=root, IsContainSubLevel=True, Status=3) == (1, ["nvr-A"])
    assert await listing(OrganizationId=root, Keyword="CAM-3") == (1, ["cam-3"])
    assert await listing(OrganizationId=root, AccessProtocol=1) == (0, [])
    assert await listing(OrganizationId=root, ClusterId=seeds.SHANGHAI_CLUSTER_ID) == (0, [])


async def test_region_mismatch_with_the_service_node(cloud: CloudEmulator, iss: IssSdk) -> None:
    code = await iss.error("AddUserDevice", camera_params(ClusterId=seeds.SHANGHAI_CLUSTER_ID))
    assert code == "RegionError.ResourceUnreachable"
    shanghai = IssSdk(cloud.endpoint, region="ap-shanghai")
    device = (await shanghai.call("AddUserDevice", **camera_params(ClusterId=seeds.SHANGHAI_CLUSTER_ID)))[
        "Data"
    ]
    assert (
        await iss.error("DeleteUserDevice", {"DeviceId": device["DeviceId"]})
        == "RegionError.ResourceUnreachable"
    )
    await shanghai.call("DeleteUserDevice", DeviceId=device["DeviceId"])


async def test_device_id_format_versus_existence(iss: IssSdk) -> None:
    assert (
        await iss.error("DescribeUserDevice", {"DeviceId": "AoiPcid9U"})
        == "InvalidParameterValue.InvalidDeviceId"
    )
    assert await iss.error("DescribeUserDevice", {"DeviceId": "66666666-****-****-****-************"}) == (
        "InvalidParameterValue.InvalidDeviceId"
    )
    unknown = "12345678-abcd-efgh-ijkl-1234567890abcd"
    for action in (
        "DescribeUserDevice",
        "DeleteUserDevice",
        "UpdateUserDevice",
        "DescribeDeviceChannel",
        "RefreshDeviceChannel",
    ):
        assert await iss.error(action, {"DeviceId": unknown}) == "ResourceNotFound"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"Name": ""}, "InvalidParameterValue.InvalidName"),
        ({"Name": "bad/name"}, "InvalidParameterValue.InvalidName"),
        ({"Name": "n" * 129}, "InvalidParameterValue.InvalidName"),
        ({"AccessProtocol": 4}, "InvalidParameterValue.UnSupportedAccessType"),
        ({"AccessProtocol": 5}, "InvalidParameterValue.UnSupportedAccessType"),
        ({"Type": 3}, "InvalidParameterValue.InvalidDeviceType"),
        ({"AccessProtocol": 1, "Type": 2}, "InvalidParameterValue.InvalidDeviceType"),
        ({"OrganizationId": "abc"}, "InvalidParameter"),
        ({"OrganizationId": "999"}, "ResourceNotFound"),
        ({"ClusterId": "not-a-cluster"}, "InvalidParameterValue.InvalidClusterId"),
        ({"ClusterId": "00000000-0000-0000-0000-000000000000"}, "ResourceNotFound.NotFoundCluster"),
        ({"TransportProtocol": 3}, "InvalidParameterValue"),
        ({"Password": ""}, "InvalidParameterValue.InvalidDevicePasswordLength"),
        ({"Password": "p" * 65}, "InvalidParameterValue.InvalidDevicePasswordLength"),
        ({"Password": None}, "MissingParameter"),
        ({"Description": "d" * 129}, "InvalidParameterValue.InvalidDescription"),
        ({"GatewayId": None}, "MissingParameter"),
        ({"GatewayId": "gw1"}, "InvalidParameterValue.InvalidGatewayId"),
        ({"GatewayId": "00000000-0000-0000-0000-000000000000"}, "ResourceNotFound"),
        ({"ProtocolType": None}, "MissingParameter"),
        ({"ProtocolType": 0}, "InvalidParameterValue.InvalidGatewayProtocolType"),
        ({"ProtocolType": 5}, "InvalidParameterValue.InvalidGatewayProtocolType"),
        ({"Ip": None}, "MissingParameter"),
        ({"Ip": "192.168.1.300"}, "InvalidParameterValue.InvalidIpv4"),
        ({"Ip": "fe80::1"}, "InvalidParameterValue.InvalidIpv4"),
        ({"Ip": "camera.local"}, "InvalidParameterValue.InvalidIpv4"),
        ({"Port": None}, "MissingParameter"),
        ({"Port": 0}, "InvalidParameterValue"),
        ({"Port": 65536}, "InvalidParameterValue"),
        ({"Username": None}, "MissingParameter"),
        ({"Username": ""}, "InvalidParameterValue.InvalidUsername"),
        ({"Username": "has space"}, "InvalidParameterValue.InvalidUsername"),
        ({"Username": "u" * 65}, "InvalidParameterValue.InvalidUsername"),
        ({"AppName": "bad app"}, "InvalidParameterValue.InvalidRTMPAppName"),
        ({"StreamName": "s" * 65}, "InvalidParameterValue.InvalidRTMPStreamName"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else value,
)
async def test_add_user_device_validation(iss: IssSdk, overrides: dict[str, Any], code: str) -> None:
    assert await iss.error("AddUserDevice", camera_params(**overrides)) == code
    assert (await iss.call("ListDevices", OrganizationId="0", IsContainSubLevel=True))["TotalCount"] == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Name": ""}, "InvalidParameterValue.InvalidName"),
        ({"Name": "a|b"}, "InvalidParameterValue.InvalidName"),
        ({"TransportProtocol": 3}, "InvalidParameterValue.UnsupportedStreamProtocol"),
        ({"Password": "p" * 65}, "InvalidParameterValue.InvalidDevicePasswordLength"),
        ({"Description": "d" * 129}, "InvalidParameterValue.InvalidDescription"),
        ({"Ip": "1.2.3"}, "InvalidParameterValue.InvalidIpv4"),
        ({"Port": 70000}, "InvalidParameterValue"),
        ({"Username": "a b"}, "InvalidParameterValue.InvalidUsername"),
        ({"ProtocolType": 9}, "InvalidParameterValue.InvalidGatewayProtocolType"),
        ({"AudioSwitch": 2}, "InvalidParameterValue"),
        ({"SubscribeSwitch": -1}, "InvalidParameterValue"),
        ({"SilentFrameSwitch": 5}, "InvalidParameterValue"),
        ({"DeviceId": "bad id"}, "InvalidParameterValue.InvalidDeviceId"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else value,
)
async def test_update_user_device_validation(iss: IssSdk, change: dict[str, Any], code: str) -> None:
    device = await add_camera(iss)
    assert await iss.error("UpdateUserDevice", {"DeviceId": device["DeviceId"], **change}) == code
    unchanged = (await iss.call("DescribeUserDevice", DeviceId=device["DeviceId"]))["Data"]
    assert (unchanged["Name"], unchanged["Ip"], unchanged["Port"]) == (
        device["Name"],
        device["Ip"],
        device["Port"],
    )


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"OrganizationId": "x1"}, "InvalidParameterValue.InvalidOrganizationId"),
        ({"OrganizationId": "404"}, "InvalidParameterValue.InvalidOrganizationId"),
        ({"AccessProtocol": 4}, "InvalidParameterValue.InvalidAccessProtocol"),
        ({"Type": 0}, "InvalidParameterValue.InvalidDeviceType"),
        ({"Status": 4}, "InvalidParameterValue.InvalidDeviceStatus"),
        ({"ClusterId": "c"}, "InvalidParameterValue.InvalidClusterId"),
        ({"Keyword": "drop;table"}, "InvalidParameterValue.InvalidKeyword"),
        ({"PageNumber": 0}, "InvalidParameterValue.InvalidPageNumber"),
        ({"PageSize": 0}, "InvalidParameterValue.InvalidPageSize"),
        ({"PageSize": 10001}, "InvalidParameterValue.InvalidPageSize"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else value,
)
async def test_list_devices_validation(iss: IssSdk, filters: dict[str, Any], code: str) -> None:
    assert await iss.error("ListDevices", {"OrganizationId": "100", **filters}) == code


async def test_concurrent_registrations_are_all_kept(iss: IssSdk) -> None:
    clients = [IssSdk(iss.client.profile.httpProfile.endpoint) for _ in range(8)]
    added = await asyncio.gather(
        *(add_camera(client, Ip=f"192.168.2.{number}") for number, client in enumerate(clients, start=1))
    )
    assert len({device["DeviceId"] for device in added}) == len({device["Code"] for device in added}) == 8
    listed = (await iss.call("ListGatewayDevices", GatewayId=seeds.GATEWAY_ID, PageSize=100))["Data"]
    assert sorted(item["Ip"] for item in listed["List"]) == sorted(f"192.168.2.{n}" for n in range(1, 9))


async def test_channel_codes_identify_reported_channels(cloud: CloudEmulator, iss: IssSdk) -> None:
    nvr = await add_camera(iss, Type=2)
    first = [ReportedChannel("front", code="VideoSource_1"), ReportedChannel("back", code="VideoSource_2")]
    await cloud.report_channels(first, device_id=nvr["DeviceId"])
    before = (await iss.call("DescribeDeviceChannel", DeviceId=nvr["DeviceId"]))["Data"]
    assert [(item["ChannelCode"], item["Name"], item["Status"]) for item in before] == [
        ("VideoSource_1", "front", 0),
        ("VideoSource_2", "back", 0),
    ]
    # Reordered, renamed, streaming, plus a new source: ids stay with their codes.
    second = [
        ReportedChannel("side", code="VideoSource_3"),
        ReportedChannel("back door", code="VideoSource_2", streaming=True),
        ReportedChannel("front", code="VideoSource_1"),
    ]
    await cloud.report_channels(second, device_id=nvr["DeviceId"])
    after = {
        item["ChannelCode"]: item
        for item in (await iss.call("DescribeDeviceChannel", DeviceId=nvr["DeviceId"]))["Data"]
    }
    assert {code: after[code]["ChannelId"] for code in ("VideoSource_1", "VideoSource_2")} == {
        item["ChannelCode"]: item["ChannelId"] for item in before
    }
    assert (after["VideoSource_2"]["Name"], after["VideoSource_2"]["Status"]) == ("back door", 1)
    assert len(after) == 3


async def test_refresh_asks_the_channel_source_for_gateway_devices(cloud: CloudEmulator, iss: IssSdk) -> None:
    queries: list[ChannelQuery] = []
    answer: list[ReportedChannel] | None = [ReportedChannel("lens", code="VideoSource_1", ptz=True)]

    async def gateway_side(query: ChannelQuery) -> list[ReportedChannel] | None:
        queries.append(query)
        if answer is None:
            raise IssError("FailedOperation.DeviceResponseTimeOut")
        return answer

    cloud.set_channel_source(gateway_side)
    camera = await add_camera(iss)  # an IPC starts with its default channel
    await iss.call("RefreshDeviceChannel", DeviceId=camera["DeviceId"])
    assert queries == [ChannelQuery(camera["DeviceId"], seeds.GATEWAY_ID, "192.168.1.64", 80)]
    channels = (await iss.call("DescribeDeviceChannel", DeviceId=camera["DeviceId"]))["Data"]
    assert values(channels[-1], "ChannelCode Name PTZType") == ("VideoSource_1", "lens", 1)
    answer = None
    assert await iss.error("RefreshDeviceChannel", {"DeviceId": camera["DeviceId"]}) == (
        "FailedOperation.DeviceResponseTimeOut"
    )
    gb = (
        await iss.call(
            "AddUserDevice",
            Name="gb",
            AccessProtocol=2,
            Type=1,
            OrganizationId="100",
            ClusterId=seeds.GUANGZHOU_CLUSTER_ID,
            Password="pw",
        )
    )["Data"]
    await cloud.set_device_connection(gb["DeviceId"], 1)
    await iss.call("RefreshDeviceChannel", DeviceId=gb["DeviceId"])  # not a gateway device: no query
    assert len(queries) == 2
