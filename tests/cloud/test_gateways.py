"""Gateway actions of the cloud emulator (this SDK release has no typed methods for them, so
the tests go through ``IssClient.call_json``, as gateway code using this SDK must)."""

from __future__ import annotations

import aiohttp
import pytest

from sim.cloud import CloudEmulator, ReportedChannel, seeds

from .conftest import IssSdk, add_camera

GATEWAY_SUMMARY_FIELDS = {
    "GatewayId",
    "GwId",
    "Name",
    "Description",
    "ClusterId",
    "ClusterName",
    "Region",
    "Status",
    "CreatedAt",
    "DeviceNum",
}


async def test_list_gateways_shows_the_seed_gateway(iss: IssSdk) -> None:
    data = (await iss.raw("ListGateways"))["Data"]
    assert data["TotalCount"] == 1
    gateway = data["List"][0]
    assert set(gateway) == GATEWAY_SUMMARY_FIELDS
    assert (gateway["GatewayId"], gateway["GwId"], gateway["Status"], gateway["Region"]) == (
        seeds.GATEWAY_ID,
        seeds.GATEWAY_GW_ID,
        1,
        "ap-guangzhou",
    )
    assert gateway["CreatedAt"].endswith("+08:00")


async def test_gateways_added_through_the_python_and_http_admin_apis(
    cloud: CloudEmulator, iss: IssSdk
) -> None:
    python_id = await cloud.add_gateway("site-b", cluster_id=seeds.SHANGHAI_CLUSTER_ID, status=0)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{cloud.url}_emulator/gateways", json={"Name": "site-c"}) as response:
            assert response.status == 201
            http_id = (await response.json())["GatewayId"]
        async with session.post(
            f"{cloud.url}_emulator/gateways", json={"GatewayId": python_id, "Name": "x"}
        ) as response:
            assert response.status == 400
    everything = (await iss.raw("ListGateways"))["Data"]
    assert [item["GatewayId"] for item in everything["List"]] == [seeds.GATEWAY_ID, python_id, http_id]

    async def names(**filters: object) -> list[str]:
        return [item["Name"] for item in (await iss.raw("ListGateways", dict(filters)))["Data"]["List"]]

    assert await names(Status=0) == ["site-b"]
    assert await names(ClusterId=seeds.SHANGHAI_CLUSTER_ID) == ["site-b"]
    assert await names(Name="site") == ["site-b", "site-c"]
    assert await names(PageSize=2, PageNumber=2) == ["site-c"]


async def test_describe_and_update_gateway(iss: IssSdk) -> None:
    await add_camera(iss)
    described = (await iss.raw("DescribeGateway", {"GatewayId": seeds.GATEWAY_ID}))["Data"]
    assert described["DeviceNum"] == 1
    assert described["Version"] == [{"Name": "网关服务", "Version": "v1.0.0"}]
    updated = (await iss.raw("UpdateGateway", {"GatewayId": seeds.GATEWAY_ID, "Description": "新描述"}))[
        "Data"
    ]
    assert (updated["Description"], updated["Name"], isinstance(updated["CreatedAt"], int)) == (
        "新描述",
        seeds.GATEWAY_NAME,
        True,
    )
    assert len(updated["Secret"]) == 32
    assert (await iss.raw("DescribeGateway", {"GatewayId": seeds.GATEWAY_ID}))["Data"][
        "Description"
    ] == "新描述"


@pytest.mark.parametrize(
    "action",
    [
        "DescribeGateway",
        "ListGatewayDevices",
        "DescribeGatewayMonitor",
        "DescribeGatewayVersion",
        "UpdateGateway",
    ],
)
async def test_gateway_id_format_versus_existence(iss: IssSdk, action: str) -> None:
    assert await iss.error(action, {"GatewayId": "gw-1"}) == "InvalidParameterValue.InvalidGatewayId"
    assert (
        await iss.error(action, {"GatewayId": "00000000-0000-0000-0000-000000000000"}) == "ResourceNotFound"
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"PageNumber": 0}, "InvalidParameterValue"),
        ({"PageSize": 0}, "InvalidParameterValue"),
        ({"Status": 2}, "InvalidParameterValue"),
        ({"Name": "a b"}, "InvalidParameterValue.InvalidName"),
        ({"ClusterId": "nope"}, "InvalidParameterValue.InvalidClusterId"),
    ],
)
async def test_list_gateways_validation(iss: IssSdk, params: dict[str, object], code: str) -> None:
    assert await iss.error("ListGateways", params) == code


async def test_update_gateway_validation(iss: IssSdk) -> None:
    assert (
        await iss.error("UpdateGateway", {"GatewayId": seeds.GATEWAY_ID, "Name": ""})
        == "InvalidParameterValue.InvalidName"
    )
    assert await iss.error("UpdateGateway", {"GatewayId": seeds.GATEWAY_ID, "Description": "a b"}) == (
        "InvalidParameterValue.InvalidDescription"
    )


async def test_list_gateway_devices_pages(cloud: CloudEmulator, iss: IssSdk) -> None:
    cloud.set_rate_limit(100)  # 25 AddUserDevice calls in a burst would exceed the cloud's 20/s
    added = [(await add_camera(iss, Ip=f"10.0.0.{number}"))["DeviceId"] for number in range(1, 26)]
    first = (await iss.raw("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}))["Data"]
    assert (first["TotalCount"], len(first["List"])) == (25, 20)  # default page size 20
    seen = []
    for page_number in (1, 2, 3):
        page = await iss.raw(
            "ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID, "PageNumber": page_number, "PageSize": 10}
        )
        seen += [item["DeviceId"] for item in page["Data"]["List"]]
    assert seen == added
    item = first["List"][0]
    assert set(item) == {
        "DeviceId",
        "ProtocolType",
        "ProtocolTypeName",
        "Name",
        "Type",
        "Ip",
        "Port",
        "ChannelNum",
        "Status",
    }
    assert (
        await iss.error("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID, "PageSize": 0})
        == "InvalidParameterValue"
    )


async def test_gateway_monitor_counts(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera = await add_camera(iss)
    nvr = await add_camera(iss, Type=2, Ip="192.168.1.200")
    await cloud.report_channels([ReportedChannel("a"), ReportedChannel("b")], device_id=nvr["DeviceId"])
    await cloud.set_device_connection(nvr["DeviceId"], 2)
    monitor = (await iss.raw("DescribeGatewayMonitor", {"GatewayId": seeds.GATEWAY_ID}))["Data"]
    assert monitor == {
        "DeviceTotal": 2,
        "DeviceOnline": 1,
        "DeviceOffline": 1,
        "ChannelTotal": 3,
        "ChannelOnline": 1,
        "ChannelOffline": 2,
        "UpFlow": 0,
        "ChannelPull": 0,
        "ChannelUnPull": 3,
    }
    assert camera["Status"] == 1


async def test_gateway_going_offline_takes_its_devices_along(cloud: CloudEmulator, iss: IssSdk) -> None:
    device_id = (await add_camera(iss))["DeviceId"]
    await cloud.set_gateway_status(seeds.GATEWAY_ID, 0)
    assert (await iss.call("DescribeUserDevice", DeviceId=device_id))["Data"]["Status"] == 2
    late = await add_camera(iss, Ip="192.168.1.70")
    assert late["Status"] == 0  # a device added while its gateway is offline is not registered yet
    assert (await iss.raw("DescribeGateway", {"GatewayId": seeds.GATEWAY_ID}))["Data"]["Status"] == 0
    await cloud.set_gateway_status(seeds.GATEWAY_ID, 1)
    statuses = [
        item["Status"]
        for item in (await iss.raw("ListGatewayDevices", {"GatewayId": seeds.GATEWAY_ID}))["Data"]["List"]
    ]
    assert statuses == [1, 1]


async def test_gateway_protocols_and_versions(cloud: CloudEmulator, iss: IssSdk) -> None:
    protocols = (await iss.raw("DescribeGatewayProtocol"))["Data"]
    assert [(item["Value"], item["Label"], item["TypeCode"]) for item in protocols][3] == (
        4,
        "Onvif",
        "10001",
    )
    assert [item["Value"] for item in protocols] == [1, 2, 3, 4, 5]
    services = (await iss.raw("DescribeGatewayVersion", {"GatewayId": seeds.GATEWAY_ID}))["Data"]["Services"]
    assert services == [
        {
            "Name": "网关服务",
            "Version": "v1.0.0",
            "LatestVersion": "v1.0.0",
            "IsUpdate": False,
            "UpgradeInfo": [],
        }
    ]
    outdated = await cloud.add_gateway(
        "old", services=[{"Name": "gw", "Version": "v1", "LatestVersion": "v2", "UpgradeInfo": ["fixes"]}]
    )
    services = (await iss.raw("DescribeGatewayVersion", {"GatewayId": outdated}))["Data"]["Services"]
    assert (services[0]["IsUpdate"], services[0]["UpgradeInfo"]) == (True, ["fixes"])
    assert (await iss.raw("DescribeGateway", {"GatewayId": (await cloud.add_gateway("bare"))}))["Data"][
        "Version"
    ] is None
