"""Real-time cloud recording templates and plans of the cloud emulator, via the official SDK."""

from __future__ import annotations

from typing import Any

import pytest

from sim.cloud import CloudEmulator, ReportedChannel, seeds

from .conftest import IssSdk, add_camera, channel_ids

WORKDAYS = [{"DayOfWeek": day, "StartTime": "08:00:00", "EndTime": "18:00:00"} for day in range(1, 6)]
LIFE_CYCLE = {"Transition": 7, "Expiration": 60}


async def add_template(
    iss: IssSdk, name: str = "workdays", sections: list[dict[str, Any]] | None = None
) -> str:
    data = (await iss.call("AddRecordTemplate", TemplateName=name, TimeSections=sections or WORKDAYS))["Data"]
    template_id: str = data["TemplateId"]
    return template_id


async def test_template_round_trip(iss: IssSdk) -> None:
    assert (await iss.raw("ListRecordTemplates"))["Data"] is None  # null when empty, as in the spec example
    created = (await iss.raw("AddRecordTemplate", {"TemplateName": "全天模板", "TimeSections": WORKDAYS}))[
        "Data"
    ]
    assert set(created) == {"TemplateId", "TemplateName", "TimeSections"}
    assert created["TimeSections"] == WORKDAYS
    template_id = created["TemplateId"]
    assert (await iss.call("DescribeRecordTemplate", TemplateId=template_id))["Data"] == created
    assert (await iss.call("ListRecordTemplates"))["Data"] == [created]

    renamed = (
        await iss.call("UpdateRecordTemplate", TemplateId=template_id, Mod={"TemplateName": "renamed"})
    )["Data"]
    assert (renamed["TemplateName"], renamed["TimeSections"]) == ("renamed", WORKDAYS)
    weekend = [
        {"DayOfWeek": 6, "StartTime": "00:00:00", "EndTime": "23:59:59"},
        {"DayOfWeek": 7, "StartTime": "10:00:00", "EndTime": "10:10:00"},
    ]
    replaced = (
        await iss.call("UpdateRecordTemplate", TemplateId=template_id, Mod={"TimeSections": weekend})
    )["Data"]
    assert replaced["TimeSections"] == weekend  # the list is replaced, not merged

    await iss.call("DeleteRecordTemplate", TemplateId=template_id)
    assert (
        await iss.error("DescribeRecordTemplate", {"TemplateId": template_id})
        == "ResourceNotFound.TemplateNotExist"
    )


async def test_template_names_are_unique(iss: IssSdk) -> None:
    first = await add_template(iss, "a")
    await add_template(iss, "b")
    assert await iss.error("AddRecordTemplate", {"TemplateName": "a", "TimeSections": WORKDAYS}) == (
        "ResourceInUse.TemplateNameRepeat"
    )
    assert await iss.error("UpdateRecordTemplate", {"TemplateId": first, "Mod": {"TemplateName": "b"}}) == (
        "ResourceInUse.TemplateNameRepeat"
    )
    await iss.call("UpdateRecordTemplate", TemplateId=first, Mod={"TemplateName": "a"})  # own name is fine


def _section(day: Any = 1, start: Any = "08:00:00", end: Any = "09:00:00") -> dict[str, Any]:
    return {"DayOfWeek": day, "StartTime": start, "EndTime": end}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"TemplateName": ""}, "InvalidParameterValue.EmptyName"),
        ({"TemplateName": "a b"}, "InvalidParameterValue.IllegalName"),
        ({"TemplateName": "n" * 33}, "InvalidParameterValue.TooLongName"),
        ({"TimeSections": None}, "MissingParameter.EmptyTimeSection"),
        ({"TimeSections": []}, "MissingParameter.EmptyTimeSection"),
        ({"TimeSections": "always"}, "InvalidParameter.InvalidTimeSection"),
        (
            {"TimeSections": [{"DayOfWeek": 1, "StartTime": "08:00:00"}]},
            "InvalidParameter.InvalidTimeSection",
        ),
        ({"TimeSections": [_section(day="1")]}, "InvalidParameter.InvalidTimeSection"),
        ({"TimeSections": [_section(day=0)]}, "InvalidParameterValue.InvalidTimeSectionValue"),
        ({"TimeSections": [_section(day=8)]}, "InvalidParameterValue.InvalidTimeSectionValue"),
        ({"TimeSections": [_section(end="23:400:00")]}, "InvalidParameterValue.InvalidTimeSectionValue"),
        ({"TimeSections": [_section(start="24:00:00")]}, "InvalidParameterValue.InvalidTimeSectionValue"),
        ({"TimeSections": [_section(start="8:00")]}, "InvalidParameterValue.InvalidTimeSectionValue"),
        (
            {"TimeSections": [_section(start="09:00:00", end="08:00:00")]},
            "InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime",
        ),
        (
            {"TimeSections": [_section(start="09:00:00", end="09:00:00")]},
            "InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime",
        ),
        (
            {"TimeSections": [_section(start="09:00:00", end="09:09:59")]},
            "InvalidParameterValue.TimeLessThanTenMinutes",
        ),
        (
            {"TimeSections": [_section(), _section(start="08:30:00", end="10:00:00")]},
            "InvalidParameter.InvalidTimeSection",
        ),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_add_template_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    request = {"TemplateName": "t", "TimeSections": WORKDAYS, **params}
    assert await iss.error("AddRecordTemplate", {k: v for k, v in request.items() if v is not None}) == code


async def test_adjacent_sections_and_ten_minutes_are_fine(iss: IssSdk) -> None:
    sections = [_section(start="08:00:00", end="08:10:00"), _section(start="08:10:00", end="23:59:59")]
    assert await add_template(iss, "edges", sections)


async def test_update_template_validation(iss: IssSdk) -> None:
    template_id = await add_template(iss)
    assert await iss.error("UpdateRecordTemplate", {"TemplateId": template_id, "Mod": {}}) == (
        "MissingParameter.MissingUpdatedInfo"
    )
    assert await iss.error("UpdateRecordTemplate", {"TemplateId": template_id}) == "MissingParameter"
    assert await iss.error(
        "UpdateRecordTemplate", {"TemplateId": template_id, "Mod": {"TimeSections": []}}
    ) == ("MissingParameter.EmptyTimeSection")
    assert await iss.error(
        "UpdateRecordTemplate", {"TemplateId": "no such!", "Mod": {"TemplateName": "x"}}
    ) == ("InvalidParameterValue.InvalidTemplateId")
    assert await iss.error(
        "UpdateRecordTemplate", {"TemplateId": "0" * 32, "Mod": {"TemplateName": "x"}}
    ) == ("ResourceNotFound.TemplateNotExist")


async def _cameras(cloud: CloudEmulator, iss: IssSdk) -> tuple[dict[str, Any], dict[str, Any]]:
    """An IPC in the root organization and a 3-channel NVR in the site organization."""
    camera = await add_camera(iss, Name="lobby")
    await cloud.report_channels(
        [ReportedChannel("door"), ReportedChannel("yard"), ReportedChannel("gate")],
        gateway_id=seeds.GATEWAY_ID,
        ip="192.168.1.200",
        port=8000,
    )
    nvr = await add_camera(
        iss, Name="nvr", Type=2, Ip="192.168.1.200", Port=8000, OrganizationId=seeds.SITE_ORGANIZATION_ID
    )
    return camera, nvr


async def test_plan_round_trip(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera, nvr = await _cameras(cloud, iss)
    camera_channel = (await channel_ids(iss, camera["DeviceId"]))[0]
    nvr_channels = await channel_ids(iss, nvr["DeviceId"])
    template_id = await add_template(iss)
    assert (await iss.raw("ListRecordPlans"))["Data"] is None
    assert (await iss.raw("ListRecordPlanChannels"))["Data"] == {"List": None}

    created = (
        await iss.raw(
            "AddRecordPlan",
            {
                "PlanName": "工作日计划",
                "TemplateId": template_id,
                "LifeCycle": LIFE_CYCLE,
                "StreamType": "main",
                "Describe": "周一到周五",
                "RepairMode": 1,
                "Channels": [{"DeviceId": camera["DeviceId"], "ChannelId": camera_channel}],
            },
        )
    )["Data"]
    assert set(created) == {
        "PlanId",
        "PlanName",
        "TemplateId",
        "Describe",
        "LifeCycle",
        "StreamType",
        "RepairMode",
    }
    plan_id = created["PlanId"]
    described = (await iss.raw("DescribeRecordPlan", {"PlanId": plan_id}))["Data"]
    assert (described["ChannelCount"], described["Status"], described["LifeCycle"]) == (1, 1, LIFE_CYCLE)
    assert (await iss.call("ListRecordPlans"))["Data"][0]["PlanId"] == plan_id

    # Add the site organization (the NVR's three channels) and drop the camera channel.
    updated = await iss.call(
        "UpdateRecordPlan",
        PlanId=plan_id,
        Mod={"OrganizationId": [seeds.SITE_ORGANIZATION_ID], "Del": [camera_channel], "PlanName": "renamed"},
    )
    assert updated["Data"]["PlanName"] == "renamed"
    assert (await iss.call("ListRecordPlanChannels"))["Data"]["List"] == nvr_channels

    listed = (await iss.raw("ListRecordPlanDevices", {"PlanId": plan_id, "PageSize": 2, "PageNumber": 2}))[
        "Data"
    ]
    assert (listed["TotalCount"], listed["PageNumber"], listed["PageSize"]) == (
        3,
        2,
        1,
    )  # PageSize = items here
    assert listed["List"] == [
        {
            "DeviceId": nvr["DeviceId"],
            "DeviceName": "nvr",
            "ChannelId": nvr_channels[2],
            "ChannelName": "gate",
            "OrganizationName": "门店1",
            "AccessProtocol": 3,
        }
    ]

    async def filtered(**names: str) -> list[str]:
        data = (await iss.call("ListRecordPlanDevices", PlanId=plan_id, PageSize=10, PageNumber=1, **names))[
            "Data"
        ]
        return [item["ChannelName"] for item in data["List"] or []]

    assert await filtered(ChannelName="YA") == ["yard"]
    assert await filtered(DeviceName="nv") == ["door", "yard", "gate"]
    assert await filtered(ChannelName="door", DeviceName="nothing") == ["door"]  # channel name wins
    assert await filtered(OrganizationName="总部") == []

    await iss.call(
        "UpdateRecordPlan",
        PlanId=plan_id,
        Mod={"LifeCycle": {"Transition": 30, "Expiration": 0}, "RepairMode": 0},
    )
    assert (await iss.call("DescribeRecordPlan", PlanId=plan_id))["Data"]["LifeCycle"] == {
        "Transition": 30,
        "Expiration": 0,
    }
    other_template = await add_template(iss, "other")
    await iss.call(
        "UpdateRecordPlan", PlanId=plan_id, Mod={"TemplateId": other_template, "StreamType": "sub"}
    )
    assert (
        await iss.error("DeleteRecordTemplate", {"TemplateId": other_template})
        == "ResourceInUse.PlanLinkTemplate"
    )
    await iss.call("DeleteRecordTemplate", TemplateId=template_id)  # no longer linked

    await iss.call("DeleteRecordPlan", PlanId=plan_id)
    assert await iss.error("DescribeRecordPlan", {"PlanId": plan_id}) == "ResourceNotFound.PlanNotExist"
    await iss.call("DeleteRecordTemplate", TemplateId=other_template)


async def test_a_channel_is_in_one_plan_only(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera, _nvr = await _cameras(cloud, iss)
    camera_channel = (await channel_ids(iss, camera["DeviceId"]))[0]
    template_id = await add_template(iss)
    first = (
        await iss.call(
            "AddRecordPlan",
            PlanName="p1",
            TemplateId=template_id,
            LifeCycle=LIFE_CYCLE,
            Channels=[{"DeviceId": camera["DeviceId"], "ChannelId": camera_channel}],
        )
    )["Data"]["PlanId"]
    explicit = {"DeviceId": camera["DeviceId"], "ChannelId": camera_channel}
    base = {"PlanName": "p2", "TemplateId": template_id, "LifeCycle": LIFE_CYCLE}
    assert (
        await iss.error("AddRecordPlan", {**base, "Channels": [explicit]}) == "ResourceInUse.ChannelRepeatAdd"
    )
    # Whole organizations skip channels already taken.
    second = (await iss.call("AddRecordPlan", **base, OrganizationId=["0"]))["Data"]["PlanId"]
    assert (await iss.call("DescribeRecordPlan", PlanId=second))["Data"]["ChannelCount"] == 3
    organization = (
        await iss.call("ListOrganizationChannels", OrganizationId="0", PageSize=10, PageNumber=1)
    )["Data"]
    assert (organization["TotalCount"], [item["InPlan"] for item in organization["List"]]) == (4, [True] * 4)
    numbers = (await iss.call("ListOrganizationChannelNumbers", OrganizationId=[seeds.ROOT_ORGANIZATION_ID]))[
        "Data"
    ]
    assert numbers == {"TotalCount": 4, "NotInPlanCount": 0}
    # Moving a channel: remove it from one plan, then it can join another.
    await iss.call("UpdateRecordPlan", PlanId=first, Mod={"Del": [camera_channel]})
    await iss.call("UpdateRecordPlan", PlanId=second, Mod={"Add": [explicit]})
    assert (await iss.call("DescribeRecordPlan", PlanId=second))["Data"]["ChannelCount"] == 4
    assert await iss.error("AddRecordPlan", {**base, "PlanName": "p1"}) == "ResourceInUse.PlanNameRepeat"
    assert await iss.error("UpdateRecordPlan", {"PlanId": second, "Mod": {"PlanName": "p1"}}) == (
        "ResourceInUse.PlanNameRepeat"
    )


async def test_organization_channel_listing(cloud: CloudEmulator, iss: IssSdk) -> None:
    camera, _nvr = await _cameras(cloud, iss)
    listed = (
        await iss.raw(
            "ListOrganizationChannels",
            {"OrganizationId": seeds.SITE_ORGANIZATION_ID, "PageSize": 2, "PageNumber": 1},
        )
    )["Data"]
    assert (listed["TotalCount"], listed["PageSize"]) == (3, 2)
    assert set(listed["List"][0]) == {"DeviceId", "DeviceName", "ChannelId", "ChannelName", "InPlan"}
    by_name = (
        await iss.call(
            "ListOrganizationChannels", OrganizationId="100", PageSize=10, PageNumber=1, ChannelName="gat"
        )
    )["Data"]
    assert [item["ChannelName"] for item in by_name["List"]] == ["gate"]  # 100's subtree includes the site
    by_device = (
        await iss.call(
            "ListOrganizationChannels", OrganizationId="100", PageSize=10, PageNumber=1, DeviceName="lobby"
        )
    )["Data"]
    assert [item["DeviceId"] for item in by_device["List"]] == [camera["DeviceId"]]
    numbers = (await iss.call("ListOrganizationChannelNumbers", OrganizationId=["101"]))["Data"]
    assert numbers == {"TotalCount": 3, "NotInPlanCount": 3}


async def test_deleting_a_device_removes_its_channels_from_plans(iss: IssSdk) -> None:
    camera = await add_camera(iss)
    channel = (await channel_ids(iss, camera["DeviceId"]))[0]
    template_id = await add_template(iss)
    plan_id = (
        await iss.call(
            "AddRecordPlan",
            PlanName="p",
            TemplateId=template_id,
            LifeCycle=LIFE_CYCLE,
            Channels=[{"DeviceId": camera["DeviceId"], "ChannelId": channel}],
        )
    )["Data"]["PlanId"]
    await iss.call("DeleteUserDevice", DeviceId=camera["DeviceId"])
    assert (await iss.call("DescribeRecordPlan", PlanId=plan_id))["Data"]["ChannelCount"] == 0
    assert (await iss.raw("ListRecordPlanChannels"))["Data"]["List"] is None


async def test_failed_update_leaves_the_plan_untouched(iss: IssSdk) -> None:
    template_id = await add_template(iss)
    plan_id = (
        await iss.call("AddRecordPlan", PlanName="keep", TemplateId=template_id, LifeCycle=LIFE_CYCLE)
    )["Data"]["PlanId"]
    code = await iss.error(
        "UpdateRecordPlan", {"PlanId": plan_id, "Mod": {"PlanName": "changed", "TemplateId": "f" * 32}}
    )
    assert code == "ResourceNotFound.TemplateNotExist"
    assert (await iss.call("DescribeRecordPlan", PlanId=plan_id))["Data"]["PlanName"] == "keep"


def _channel(device: str = "12345678-abcd-efgh-ijkl-1234567890ab", channel: str = "c0ffee") -> dict[str, str]:
    return {"DeviceId": device, "ChannelId": channel}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"PlanName": ""}, "InvalidParameterValue.EmptyName"),
        ({"PlanName": "a.b"}, "InvalidParameterValue.IllegalName"),
        ({"PlanName": "n" * 33}, "InvalidParameterValue.TooLongName"),
        ({"TemplateId": ""}, "InvalidParameterValue.EmptyTemplateId"),
        ({"TemplateId": "bad id"}, "InvalidParameterValue.InvalidTemplateId"),
        ({"TemplateId": "0" * 32}, "ResourceNotFound.TemplateNotExist"),
        ({"LifeCycle": None}, "MissingParameter.MissingLifeRuleParam"),
        ({"LifeCycle": {"Transition": 7}}, "InvalidParameter.InvalidLifeRuleParam"),
        ({"LifeCycle": {"Transition": 0, "Expiration": 0}}, "InvalidParameterValue.InvalidTransitionRange"),
        (
            {"LifeCycle": {"Transition": 3651, "Expiration": 0}},
            "InvalidParameterValue.InvalidTransitionRange",
        ),
        ({"LifeCycle": {"Transition": 7, "Expiration": 30}}, "InvalidParameterValue.InvalidExpirationRange"),
        (
            {"LifeCycle": {"Transition": 3000, "Expiration": 700}},
            "InvalidParameterValue.InvalidExpirationRange",
        ),
        (
            {"RepairMode": 1, "LifeCycle": {"Transition": 2, "Expiration": 0}},
            "InvalidParameterValue.LimitRepairTransition",
        ),
        ({"RepairMode": 2}, "InvalidParameterValue.InvalidRepairMode"),
        ({"Describe": "a b"}, "InvalidParameterValue.IllegalDescribe"),
        ({"Describe": "d" * 129}, "InvalidParameterValue.TooLongDescribe"),
        ({"StreamType": "main stream"}, "InvalidParameterValue.IllegalStreamType"),
        ({"StreamType": "s" * 33}, "InvalidParameterValue.TooLongStreamType"),
        ({"Channels": "all"}, "InvalidParameter.InvalidChannels"),
        ({"Channels": [{"ChannelId": "c"}]}, "InvalidParameterValue.EmptyDeviceId"),
        ({"Channels": [_channel(device="")]}, "InvalidParameterValue.EmptyDeviceId"),
        ({"Channels": [_channel(channel="")]}, "InvalidParameterValue.EmptyChannelId"),
        ({"Channels": [_channel(device="dev/1")]}, "InvalidParameterValue.IllegalDeviceId"),
        ({"Channels": [_channel(channel="ch#1")]}, "InvalidParameterValue.IllegalChannelId"),
        ({"Channels": [_channel()]}, "InvalidParameterValue.InvalidDeviceId"),
        ({"OrganizationId": "100"}, "InvalidParameter.InvalidOrganizationParam"),
        ({"OrganizationId": [""]}, "InvalidParameterValue.EmptyOrganizationId"),
        ({"OrganizationId": ["1a"]}, "InvalidParameterValue.IllegalOrganizationId"),
        ({"OrganizationId": ["777"]}, "ResourceNotFound.OrganizationIdNotExist"),
        ({"OrganizationId": ["100"] * 1001}, "InvalidParameterValue.OrganizationCountExceedsRange"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_add_plan_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    request = {"PlanName": "plan", "TemplateId": template_id, "LifeCycle": LIFE_CYCLE, **params}
    assert await iss.error("AddRecordPlan", {k: v for k, v in request.items() if v is not None}) == code
    assert (await iss.raw("ListRecordPlans"))["Data"] is None


async def test_plan_channel_must_exist_and_belong_to_its_device(iss: IssSdk) -> None:
    first, second = await add_camera(iss), await add_camera(iss, Ip="192.168.1.65")
    template_id = await add_template(iss)
    base = {"PlanName": "plan", "TemplateId": template_id, "LifeCycle": LIFE_CYCLE}
    unknown_channel = {"DeviceId": first["DeviceId"], "ChannelId": "0000-1111"}
    assert await iss.error("AddRecordPlan", {**base, "Channels": [unknown_channel]}) == (
        "InvalidParameterValue.InvalidChannelId"
    )
    mismatch = {"DeviceId": first["DeviceId"], "ChannelId": (await channel_ids(iss, second["DeviceId"]))[0]}
    assert await iss.error("AddRecordPlan", {**base, "Channels": [mismatch]}) == (
        "InvalidParameterValue.InvalidChannelIdOrDeviceId"
    )


@pytest.mark.parametrize(
    ("mod", "code"),
    [
        ({}, "MissingParameter.MissingUpdatedInfo"),
        ({"LifeCycle": {"Transition": 0, "Expiration": 0}}, "InvalidParameterValue.InvalidTransitionRange"),
        ({"RepairMode": 1}, "InvalidParameterValue.LimitRepairTransition"),
        ({"Del": [""]}, "InvalidParameterValue.EmptyChannelId"),
        ({"Del": ["a b"]}, "InvalidParameterValue.IllegalChannelId"),
        ({"Add": [{"DeviceId": "x"}]}, "InvalidParameterValue.EmptyChannelId"),
        ({"OrganizationId": [1]}, "InvalidParameter.InvalidOrganizationParam"),
        ({"TemplateId": ""}, "InvalidParameterValue.EmptyTemplateId"),
        ({"Colour": "red"}, "UnknownParameter"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_update_plan_validation(iss: IssSdk, mod: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    short_life = {"Transition": 1, "Expiration": 0}
    plan_id = (await iss.call("AddRecordPlan", PlanName="p", TemplateId=template_id, LifeCycle=short_life))[
        "Data"
    ]["PlanId"]
    assert await iss.error("UpdateRecordPlan", {"PlanId": plan_id, "Mod": mod}) == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"PlanId": "x y"}, "InvalidParameterValue.InvalidPlanId"),
        ({"PlanId": "0" * 32}, "ResourceNotFound.PlanNotExist"),
        ({"PageSize": 0}, "InvalidParameterValue.InvalidPageSize"),
        ({"PageNumber": 0}, "InvalidParameterValue.InvalidPageNumber"),
        ({"PageNumber": None}, "MissingParameter"),
        ({"DeviceName": "名" * 11}, "InvalidParameterValue.TooLongName"),
        ({"ChannelName": "a;b"}, "InvalidParameterValue.IllegalName"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_list_plan_devices_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    template_id = await add_template(iss)
    plan_id = (await iss.call("AddRecordPlan", PlanName="p", TemplateId=template_id, LifeCycle=LIFE_CYCLE))[
        "Data"
    ]["PlanId"]
    request = {"PlanId": plan_id, "PageSize": 10, "PageNumber": 1, **params}
    assert (
        await iss.error("ListRecordPlanDevices", {k: v for k, v in request.items() if v is not None}) == code
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"OrganizationId": ""}, "InvalidParameterValue.EmptyOrganizationId"),
        ({"OrganizationId": "a1"}, "InvalidParameterValue.IllegalOrganizationId"),
        ({"OrganizationId": "555"}, "ResourceNotFound.OrganizationIdNotExist"),
        ({"PageSize": 0}, "InvalidParameterValue.InvalidPageSize"),
        ({"ChannelName": "名" * 11}, "InvalidParameterValue.TooLongName"),
    ],
    ids=lambda value: str(value)[:50] if isinstance(value, dict) else value,
)
async def test_list_organization_channels_validation(iss: IssSdk, params: dict[str, Any], code: str) -> None:
    request = {"OrganizationId": "100", "PageSize": 10, "PageNumber": 1, **params}
    assert await iss.error("ListOrganizationChannels", request) == code


@pytest.mark.parametrize(
    ("organizations", "code"),
    [
        ([], "InvalidParameterValue.EmptyOrganizationId"),
        ("100", "InvalidParameter.InvalidOrganizationParam"),
        ([""], "InvalidParameterValue.EmptyOrganizationId"),
        (["x"], "InvalidParameterValue.IllegalOrganizationId"),
        (["100"] * 11, "InvalidParameterValue.OrganizationCountExceedsRange"),
        (["909"], "ResourceNotFound.OrganizationIdNotExist"),
    ],
    ids=str,
)
async def test_list_organization_channel_numbers_validation(
    iss: IssSdk, organizations: Any, code: str
) -> None:
    assert await iss.error("ListOrganizationChannelNumbers", {"OrganizationId": organizations}) == code


@pytest.mark.parametrize("action", ["DeleteRecordPlan", "DescribeRecordPlan"])
async def test_plan_id_format_versus_existence(iss: IssSdk, action: str) -> None:
    assert await iss.error(action, {"PlanId": "bad id"}) == "InvalidParameterValue.InvalidPlanId"
    assert await iss.error(action, {"PlanId": "a" * 32}) == "ResourceNotFound.PlanNotExist"


@pytest.mark.parametrize("action", ["DeleteRecordTemplate", "DescribeRecordTemplate"])
async def test_template_id_format_versus_existence(iss: IssSdk, action: str) -> None:
    assert await iss.error(action, {"TemplateId": "bad id"}) == "InvalidParameterValue.InvalidTemplateId"
    assert await iss.error(action, {"TemplateId": "a" * 32}) == "ResourceNotFound.TemplateNotExist"
