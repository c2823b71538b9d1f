"""Recording upload ("backup") templates and plans of the cloud emulator, via the official SDK."""

from __future__ import annotations

from typing import Any

import pytest

from sim.cloud import CloudEmulator, ReportedChannel, seeds

from .conftest import IssSdk, add_camera, channel_ids

# Record Wednesday 00:00-01:00, upload it on Thursday 00:00-02:00 (the spec's example).
UPLOAD = [{"DayOfWeek": 4, "StartTime": "00:00:00", "EndTime": "02:00:00"}]
RECORDING = [{"DayOfWeek": 3, "StartTime": "00:00:00", "EndTime": "01:00:00"}]
LIFE_CYCLE = {"Transition": 7, "Expiration": 0}
TEMPLATE_FIELDS = {
    "TemplateId",
    "TemplateName",
    "TimeSections",
    "DevTimeSections",
    "Scale",
    "CreateAt",
    "UpdateAt",
}
PLAN_FIELDS = {
    "PlanId",
    "PlanName",
    "TemplateId",
    "Describe",
    "LifeCycle",
    "Status",
    "ChannelCount",
    "CreateAt",
    "UpdateAt",
}


async def add_template(iss: IssSdk, name: str = "模板361") -> str:
    data = (
        await iss.call(
            "AddRecordBackupTemplate",
            TemplateName=name,
            TimeSections=UPLOAD,
            DevTimeSections=RECORDING,
            Scale=1,
        )
    )["Data"]
    template_id: str = data["TemplateId"]
    return template_id


async def test_template_round_trip(iss: IssSdk) -> None:
    assert (await iss.raw("ListRecordBackupTemplates"))["Data"] == []
    created = (
        await iss.raw(
            "AddRecordBackupTemplate",
            {"TemplateName": "模板361", "TimeSections": UPLOAD, "DevTimeSections": RECORDING, "Scale": 1},
        )
    )["Data"]
    assert set(created) == TEMPLATE_FIELDS
    assert (created["TimeSections"], created["DevTimeSections"], created["Scale"]) == (UPLOAD, RECORDING, 1)
    assert len(created["CreateAt"]) == len("2023-06-21 15:20:35")
    template_id = created["TemplateId"]
    assert (await iss.raw("DescribeRecordBackupTemplate", {"TemplateId": template_id}))["Data"] == created
    assert (await iss.raw("ListRecordBackupTemplates"))["Data"] == [created]

    # Record Monday 00:00-00:30, upload Tuesday 00:00-01:00 (the spec's update example).
    mod = {
        "TimeSections": [{"DayOfWeek": 2, "StartTime": "00:00:00", "EndTime": "01:00:00"}],
        "DevTimeSections": [{"DayOfWeek": 1, "StartTime": "00:00:00", "EndTime": "00:30:00"}],
        "Scale": 1,
    }
    updated = (await iss.call("UpdateRecordBackupTemplate", TemplateId=template_id, Mod=mod))["Data"]
    assert (updated["TimeSections"], updated["DevTimeSections"]) == (
        mod["TimeSections"],
        mod["DevTimeSections"],
    )
    renamed = (
        await iss.call("UpdateRecordBackupTemplate", TemplateId=template_id, Mod={"TemplateName": "test1"})
    )["Data"]
    assert (renamed["TemplateName"], renamed["Scale"]) == ("test1", 1)

    await iss.call("DeleteRecordBackupTemplate", TemplateId=template_id)
    assert await iss.error("DescribeRecordBackupTemplate", {"TemplateId": template_id}) == "ResourceNotFound"


async def test_upload_sections_must_hold_the_previous_days_recordings(iss: IssSdk) -> None:
    base = {
        "TemplateName": "t",
        "DevTimeSections": [{"DayOfWeek": 7, "StartTime": "00:00:00", "EndTime": "04:00:00"}],
    }
    monday_hour = [{"DayOfWeek": 1, "StartTime": "00:00:00", "EndTime": "01:00:00"}]
    assert await iss.error("AddRecordBackupTemplate", {**base, "TimeSections": monday_hour, "Scale": 2}) == (
        "InvalidParameterValue.BakTimeNotEnough"
    )
    # Sunday's 4 h fit in Monday's 1 h at 4x speed (Sunday wraps to Monday).
    assert (await iss.call("AddRecordBackupTemplate", **base, TimeSections=monday_hour, Scale=4))["Data"]
    tuesday = [{"DayOfWeek": 2, "StartTime": "00:00:00", "EndTime": "05:00:00"}]
    assert await iss.error(
        "AddRecordBackupTemplate", {**base, "TemplateName": "u", "TimeSections": tuesday, "Scale": 4}
    ) == ("InvalidParameterValue.BakTimeNotEnough")


def _section(day: Any = 4, start: Any = "00:00:00", end: Any = "02:00:00") -> list[dict[str, Any]]:
    return [{"DayOfWeek": day, "StartTime": start, "EndTime": end}]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"TemplateName": ""}, "InvalidParameterValue.InvalidName"),
        ({"TemplateName": "a b"}, "InvalidParameterValue.InvalidName"),
        ({"TemplateName": "n" * 33}, "InvalidParameterValue.InvalidName"),
        ({"Scale": 3}, "InvalidParameterValue.UnSupportScale"),
        ({"Scale": None}, "MissingParameter"),
        ({"DevTimeSections": None}, "MissingParameter"),
        ({"TimeSections": []}, "MissingParameter.EmptyTimeSection"),
        ({"TimeSections": _section(day=0)}, "InvalidParameterValue.DataOutOfRange"),
        ({"DevTimeSections": _section(day=8)}, "InvalidParameterValue.DataOutOfRange"),
        ({"TimeSections": _section(start="0:00")}, "InvalidParameterValue.InvalidTimeFormat"),
        ({"TimeSections": [{"DayOfWeek": 4}]}, "InvalidParameterValue.InvalidTimeFormat"),
        ({"TimeSections": _section(start="03:00:00")}, "InvalidParameterValue.StartOverEndTime"),
        ({"TimeSections": _section(end="00:05:00")}, "InvalidParameterValue.TimeLessThanTenMinutes"),
        ({"TimeSections": _section() + _section(start="01:00:00", end="03:00:00")}, "InvalidParameterValue"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_add_template_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    request = {
        "TemplateName": "t",
        "TimeSections": UPLOAD,
        "DevTimeSections": RECORDING,
        "Scale": 1,
        **params,
    }
    assert (
        await iss.error("AddRecordBackupTemplate", {k: v for k, v in request.items() if v is not None})
        == code
    )
    assert (await iss.raw("ListRecordBackupTemplates"))["Data"] == []


@pytest.mark.parametrize(
    ("mod", "code"),
    [
        ({}, "MissingParameter.MissingUpdatedInfo"),
        ({"Scale": 8}, "InvalidParameterValue.UnSupportScale"),
        (
            {"TimeSections": _section(start="03:00:00")},
            "InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime",
        ),
        ({"TimeSections": _section(day=9)}, "InvalidParameterValue.DataOutOfRange"),
        ({"DevTimeSections": _section(day=3, end="23:00:00")}, "InvalidParameterValue.BakTimeNotEnough"),
        ({"TemplateName": "taken"}, "ResourceInUse.TemplateNameRepeat"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_update_template_validation(iss: IssSdk, mod: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    await add_template(iss, "taken")
    assert await iss.error("UpdateRecordBackupTemplate", {"TemplateId": template_id, "Mod": mod}) == code
    assert (await iss.call("DescribeRecordBackupTemplate", TemplateId=template_id))["Data"][
        "TimeSections"
    ] == UPLOAD


async def _devices(
    cloud: CloudEmulator, iss: IssSdk
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A gateway IPC, a 2-channel gateway NVR in the site organization, and an RTMP device."""
    camera = await add_camera(iss, Name="lobby")
    nvr = await add_camera(
        iss, Name="nvr", Type=2, Ip="192.168.1.200", OrganizationId=seeds.SITE_ORGANIZATION_ID
    )
    await cloud.report_channels([ReportedChannel("door"), ReportedChannel("yard")], device_id=nvr["DeviceId"])
    rtmp = (
        await iss.call(
            "AddUserDevice",
            Name="push",
            AccessProtocol=1,
            Type=1,
            OrganizationId="100",
            ClusterId=seeds.GUANGZHOU_CLUSTER_ID,
        )
    )["Data"]
    return camera, nvr, rtmp


async def test_plan_round_trip(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera, nvr, rtmp = await _devices(cloud, iss)
    camera_channel = (await channel_ids(iss, camera["DeviceId"]))[0]
    template_id = await add_template(iss)
    created = (
        await iss.raw(
            "AddRecordBackupPlan",
            {
                "TemplateId": template_id,
                "PlanName": "test-plan-1",
                "Describe": "test1",
                "LifeCycle": LIFE_CYCLE,
                "Channels": [{"DeviceId": camera["DeviceId"], "ChannelId": camera_channel}],
            },
        )
    )["Data"]
    assert set(created) == PLAN_FIELDS
    assert (created["Status"], created["ChannelCount"], created["LifeCycle"]) == (1, 1, LIFE_CYCLE)
    plan_id = created["PlanId"]
    assert (await iss.raw("DescribeRecordBackupPlan", {"PlanId": plan_id}))["Data"] == created
    assert [plan["PlanId"] for plan in (await iss.raw("ListRecordBackupPlans"))["Data"]] == [plan_id]

    # The whole tree: the NVR's channels join, the RTMP device's channel is skipped (upload is GB/GW only).
    updated = (
        await iss.call(
            "UpdateRecordBackupPlan",
            PlanId=plan_id,
            Mod={"OrganizationId": ["100"], "PlanName": "test-plan-update"},
        )
    )["Data"]
    assert (updated["PlanName"], updated["ChannelCount"]) == ("test-plan-update", 3)
    listed = (await iss.raw("ListRecordBackupPlanDevices", {"PlanId": plan_id}))["Data"]
    assert (listed["PageNumber"], listed["PageSize"], listed["TotalCount"]) == (1, 3, 3)
    assert {item["AccessProtocol"] for item in listed["List"]} == {3}
    page = (await iss.call("ListRecordBackupPlanDevices", PlanId=plan_id, PageSize=2, PageNumber=2))["Data"]
    assert [item["ChannelName"] for item in page["List"]] == ["yard"]
    by_org = (await iss.call("ListRecordBackupPlanDevices", PlanId=plan_id, OrganizationName="门店"))["Data"]
    assert [item["ChannelName"] for item in by_org["List"]] == ["door", "yard"]
    by_device = (await iss.call("ListRecordBackupPlanDevices", PlanId=plan_id, DeviceName="LOBBY"))["Data"]
    assert [item["ChannelId"] for item in by_device["List"]] == [camera_channel]

    rtmp_channel = {"DeviceId": rtmp["DeviceId"], "ChannelId": rtmp["Code"]}
    assert await iss.error("UpdateRecordBackupPlan", {"PlanId": plan_id, "Mod": {"Add": [rtmp_channel]}}) == (
        "InvalidParameterValue.UnSupportedAccessType"
    )
    await iss.call(
        "UpdateRecordBackupPlan",
        PlanId=plan_id,
        Mod={"Del": [camera_channel], "LifeCycle": {"Transition": 30, "Expiration": 90}},
    )
    described = (await iss.call("DescribeRecordBackupPlan", PlanId=plan_id))["Data"]
    assert (described["ChannelCount"], described["LifeCycle"]) == (2, {"Transition": 30, "Expiration": 90})

    # A channel is in one upload plan only, but may also be in a real-time plan.
    second = {"TemplateId": template_id, "PlanName": "p2", "Describe": "", "LifeCycle": LIFE_CYCLE}
    nvr_channel = (await channel_ids(iss, nvr["DeviceId"]))[0]
    taken = {"DeviceId": nvr["DeviceId"], "ChannelId": nvr_channel}
    assert (
        await iss.error("AddRecordBackupPlan", {**second, "Channels": [taken]})
        == "ResourceInUse.ChannelRepeatAdd"
    )
    assert (
        await iss.error("AddRecordBackupPlan", {**second, "PlanName": "test-plan-update"})
        == "ResourceInUse.PlanNameRepeat"
    )

    assert (
        await iss.error("DeleteRecordBackupTemplate", {"TemplateId": template_id})
        == "ResourceInUse.PlanLinkTemplate"
    )
    await iss.call("DeleteRecordBackupPlan", PlanId=plan_id)
    assert await iss.error("DescribeRecordBackupPlan", {"PlanId": plan_id}) == "ResourceNotFound"
    await iss.call("DeleteRecordBackupTemplate", TemplateId=template_id)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"TemplateId": "bad id"}, "InvalidParameterValue.InvalidTemplateId"),
        ({"TemplateId": "00000000-0000-0000-0000-000000000000"}, "ResourceNotFound"),
        ({"PlanName": ""}, "InvalidParameterValue.InvalidName"),
        ({"PlanName": "a b"}, "InvalidParameterValue.InvalidName"),
        ({"Describe": None}, "MissingParameter"),
        ({"Describe": "a b"}, "InvalidParameterValue.InvalidDescription"),
        ({"LifeCycle": None}, "MissingParameter.MissingLifeRuleParam"),
        ({"LifeCycle": {"Transition": 7, "Expiration": 10}}, "InvalidParameterValue.InvalidExpirationRange"),
        (
            {"Channels": [{"DeviceId": "a-b-c-d-e", "ChannelId": "x"}]},
            "InvalidParameterValue.InvalidDeviceId",
        ),
        ({"Channels": [{"DeviceId": "", "ChannelId": "x"}]}, "InvalidParameterValue.InvalidDeviceId"),
        ({"OrganizationId": ["nope"]}, "InvalidParameterValue.InvalidOrganizationId"),
        ({"OrganizationId": ["4242"]}, "InvalidParameterValue.InvalidOrganizationId"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_add_plan_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    request = {"TemplateId": template_id, "PlanName": "p", "Describe": "d", "LifeCycle": LIFE_CYCLE, **params}
    assert await iss.error("AddRecordBackupPlan", {k: v for k, v in request.items() if v is not None}) == code
    assert (await iss.raw("ListRecordBackupPlans"))["Data"] == []


async def test_plan_channel_checks(iss: IssSdk) -> None:
    camera = await add_camera(iss)
    template_id = await add_template(iss)
    base = {"TemplateId": template_id, "PlanName": "p", "Describe": "d", "LifeCycle": LIFE_CYCLE}
    unknown = {"DeviceId": camera["DeviceId"], "ChannelId": "0000-0000"}
    assert (
        await iss.error("AddRecordBackupPlan", {**base, "Channels": [unknown]})
        == "InvalidParameterValue.InvalidChannelId"
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"PlanId": "bad id"}, "InvalidParameterValue.InvalidPlanId"),
        ({"PlanId": "00000000-0000-0000-0000-000000000000"}, "InvalidParameterValue.InvalidPlanId"),
        ({"DeviceName": "a;b"}, "InvalidParameterValue.InvalidDeviceName"),
        ({"ChannelName": "c" * 33}, "InvalidParameterValue.InvalidChannelName"),
        ({"OrganizationName": "o|o"}, "InvalidParameterValue.InvalidOrgName"),
        ({"PageSize": 0}, "InvalidParameterValue.InvalidPageSize"),
        ({"PageNumber": 0}, "InvalidParameterValue.InvalidPageNumber"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_list_plan_devices_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    plan_id = (
        await iss.call(
            "AddRecordBackupPlan", TemplateId=template_id, PlanName="p", Describe="d", LifeCycle=LIFE_CYCLE
        )
    )["Data"]["PlanId"]
    assert await iss.error("ListRecordBackupPlanDevices", {"PlanId": plan_id, **params}) == code


@pytest.mark.parametrize(
    ("mod", "code"),
    [
        ({}, "MissingParameter.MissingUpdatedInfo"),
        ({"TemplateId": "bad id"}, "InvalidParameterValue.InvalidTemplateId"),
        ({"TemplateId": "00000000-0000-0000-0000-000000000000"}, "ResourceNotFound"),
        ({"Describe": "a b"}, "InvalidParameterValue.InvalidDescription"),
        ({"OrganizationId": ["x"]}, "InvalidParameterValue.InvalidOrganizationId"),
        ({"Add": [{"DeviceId": "a-b-c-d-e", "ChannelId": "x"}]}, "InvalidParameterValue.InvalidDeviceId"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_update_plan_validation(iss: IssSdk, mod: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    plan_id = (
        await iss.call(
            "AddRecordBackupPlan", TemplateId=template_id, PlanName="p", Describe="d", LifeCycle=LIFE_CYCLE
        )
    )["Data"]["PlanId"]
    assert await iss.error("UpdateRecordBackupPlan", {"PlanId": plan_id, "Mod": mod}) == code
    assert (
        await iss.error("UpdateRecordBackupPlan", {"PlanId": "f" * 8 + "-0-0-0-0", "Mod": {"PlanName": "x"}})
        == "ResourceNotFound"
    )
