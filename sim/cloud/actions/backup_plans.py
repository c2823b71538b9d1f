"""Recording upload ("backup"): templates and plans that pull device-local recordings to the cloud.

Template rule ``BakTimeNotEnough``: the previous day's recording sections must fit in the
upload sections at the upload speed — for every day D, (upload time on D+1) × Scale ≥
(device recording time on D), with Sunday (7) followed by Monday (1).
Only GB and gateway devices can be in an upload plan; a channel can be in one upload plan
(independently of real-time plans).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from gateway.iss.errors import IssError

from .. import schema as s
from ..records import ACCESS_GATEWAY, ACCESS_GB, BackupPlan, BackupTemplate, Device
from ..schema import Params, Schema
from ..store import CloudStore
from .context import ActionContext, Result
from .plan_channels import (
    FILTER_NAME,
    ChannelSelection,
    ChannelSelectionCodes,
    channel_info_param,
    filter_by_name,
    organization_ids_param,
    owners_of,
    plan_channel_info,
    select_channels,
)
from .record_plans import paged_listing
from .rules import (
    LIFE_CYCLE_PARAM,
    OPAQUE_ID,
    PLAIN_NAME,
    PLAIN_TEXT,
    TimeSection,
    TimeSectionCodes,
    check_life_cycle,
    local_time,
    new_uuid,
    parse_time_sections,
    time_section_param,
    wire_sections,
)

INVALID_NAME = "InvalidParameterValue.InvalidName"
INVALID_TEMPLATE_ID = "InvalidParameterValue.InvalidTemplateId"
INVALID_PLAN_ID = "InvalidParameterValue.InvalidPlanId"
INVALID_DESCRIPTION = "InvalidParameterValue.InvalidDescription"
EMPTY_TIME_SECTION = "MissingParameter.EmptyTimeSection"
BAD_TIME_FORMAT = "InvalidParameterValue.InvalidTimeFormat"
MISSING_UPDATE = "MissingParameter.MissingUpdatedInfo"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
SCALES = frozenset({1, 2, 4})

ADD_SECTION_CODES = TimeSectionCodes(
    day="InvalidParameterValue.DataOutOfRange",
    time_format=BAD_TIME_FORMAT,
    order="InvalidParameterValue.StartOverEndTime",
    overlap="InvalidParameterValue",
)
UPDATE_SECTION_CODES = dataclasses.replace(
    ADD_SECTION_CODES, order="InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime"
)

SELECTION_CODES = ChannelSelectionCodes(
    bad_channels="InvalidParameterValue.InvalidChannelId",
    empty_device="InvalidParameterValue.InvalidDeviceId",
    empty_channel="InvalidParameterValue.InvalidChannelId",
    illegal_device="InvalidParameterValue.InvalidDeviceId",
    illegal_channel="InvalidParameterValue.InvalidChannelId",
    unknown_device="InvalidParameterValue.InvalidDeviceId",
    unknown_channel="InvalidParameterValue.InvalidChannelId",
    mismatch="InvalidParameterValue.InvalidChannelId",
    bad_organizations="InvalidParameterValue.InvalidOrganizationId",
    empty_organization="InvalidParameterValue.InvalidOrganizationId",
    illegal_organization="InvalidParameterValue.InvalidOrganizationId",
    unknown_organization="InvalidParameterValue.InvalidOrganizationId",
)

# -- schemas ------------------------------------------------------------------------------


def _name(required: bool) -> s.Param:
    return s.string(required, empty=INVALID_NAME, max_length=32, pattern=PLAIN_NAME, invalid=INVALID_NAME)


def _sections(required: bool) -> s.Param:
    return s.array(
        time_section_param(BAD_TIME_FORMAT),
        required,
        empty=EMPTY_TIME_SECTION,
        wrong_type=BAD_TIME_FORMAT,
    )


_SCALE = s.integer(choices=SCALES, invalid="InvalidParameterValue.UnSupportScale")
_TEMPLATE_ID = s.string(True, pattern=OPAQUE_ID, invalid=INVALID_TEMPLATE_ID)
_PLAN_ID = s.string(True, pattern=OPAQUE_ID, invalid=INVALID_PLAN_ID)
_DESCRIBE = s.string(max_length=128, pattern=PLAIN_TEXT, invalid=INVALID_DESCRIPTION)


def _filter(code: str) -> s.Param:
    return s.string(max_bytes=32, pattern=FILTER_NAME, invalid=code)


ADD_RECORD_BACKUP_TEMPLATE: Schema = {
    "TemplateName": _name(True),
    "TimeSections": _sections(True),
    "DevTimeSections": _sections(True),
    "Scale": dataclasses.replace(_SCALE, required=True),
}
UPDATE_RECORD_BACKUP_TEMPLATE: Schema = {
    "TemplateId": _TEMPLATE_ID,
    "Mod": s.obj(
        {
            "TemplateName": _name(False),
            "TimeSections": _sections(False),
            "DevTimeSections": _sections(False),
            "Scale": _SCALE,
        },
        True,
    ),
}
DELETE_RECORD_BACKUP_TEMPLATE: Schema = {"TemplateId": _TEMPLATE_ID}
DESCRIBE_RECORD_BACKUP_TEMPLATE: Schema = {"TemplateId": _TEMPLATE_ID}
LIST_RECORD_BACKUP_TEMPLATES: Schema = {}

ADD_RECORD_BACKUP_PLAN: Schema = {
    "TemplateId": _TEMPLATE_ID,
    "PlanName": _name(True),
    "Describe": dataclasses.replace(_DESCRIBE, required=True),
    "LifeCycle": dataclasses.replace(LIFE_CYCLE_PARAM, required=True),
    "Channels": channel_info_param(SELECTION_CODES),
    "OrganizationId": organization_ids_param(SELECTION_CODES),
}
UPDATE_RECORD_BACKUP_PLAN: Schema = {
    "PlanId": _PLAN_ID,
    "Mod": s.obj(
        {
            "PlanName": _name(False),
            "TemplateId": s.string(pattern=OPAQUE_ID, invalid=INVALID_TEMPLATE_ID),
            "Describe": _DESCRIBE,
            "LifeCycle": LIFE_CYCLE_PARAM,
            "Add": channel_info_param(SELECTION_CODES),
            "Del": s.array(
                s.string(
                    wrong_type=SELECTION_CODES.bad_channels,
                    empty=SELECTION_CODES.empty_channel,
                    pattern=OPAQUE_ID,
                    invalid=SELECTION_CODES.illegal_channel,
                ),
                wrong_type=SELECTION_CODES.bad_channels,
            ),
            "OrganizationId": organization_ids_param(SELECTION_CODES),
        },
        True,
    ),
}
DELETE_RECORD_BACKUP_PLAN: Schema = {"PlanId": _PLAN_ID}
DESCRIBE_RECORD_BACKUP_PLAN: Schema = {"PlanId": _PLAN_ID}
LIST_RECORD_BACKUP_PLANS: Schema = {}
LIST_RECORD_BACKUP_PLAN_DEVICES: Schema = {
    "PlanId": _PLAN_ID,
    "DeviceName": _filter("InvalidParameterValue.InvalidDeviceName"),
    "ChannelName": _filter("InvalidParameterValue.InvalidChannelName"),
    "OrganizationName": _filter("InvalidParameterValue.InvalidOrgName"),
    "PageSize": s.integer(minimum=1, maximum=MAX_PAGE_SIZE, invalid="InvalidParameterValue.InvalidPageSize"),
    "PageNumber": s.integer(minimum=1, invalid="InvalidParameterValue.InvalidPageNumber"),
}

# -- templates ----------------------------------------------------------------------------


def find_template(store: CloudStore, template_id: str) -> BackupTemplate:
    template = store.get(BackupTemplate, template_id)
    if template is None:
        raise IssError("ResourceNotFound", f"Upload template {template_id} does not exist.")
    return template


def _check_template_name_free(store: CloudStore, name: str, own_id: str | None = None) -> None:
    if any(
        template.name == name and template.template_id != own_id for template in store.all(BackupTemplate)
    ):
        raise IssError("ResourceInUse.TemplateNameRepeat", f"An upload template named {name!r} exists.")


def _daily_seconds(sections: list[TimeSection]) -> dict[int, int]:
    totals: dict[int, int] = defaultdict(int)
    for section in sections:
        totals[section.day_of_week] += section.seconds
    return totals


def check_upload_capacity(uploads: list[TimeSection], recordings: list[TimeSection], scale: int) -> None:
    """Each day's recordings must fit in the next day's upload sections at ``scale``."""
    upload_seconds = _daily_seconds(uploads)
    for day, recorded in _daily_seconds(recordings).items():
        upload_day = day % 7 + 1
        if upload_seconds.get(upload_day, 0) * scale < recorded:
            raise IssError(
                "InvalidParameterValue.BakTimeNotEnough",
                f"Day {day} records {recorded} s but day {upload_day} uploads only "
                f"{upload_seconds.get(upload_day, 0)} s at speed {scale}.",
            )


def _template_data(template: BackupTemplate) -> dict[str, Any]:
    """AddRecordBackupTemplateData (same members in Describe/Update/List)."""
    return {
        "TemplateId": template.template_id,
        "TemplateName": template.name,
        "TimeSections": wire_sections(template.time_sections),
        "DevTimeSections": wire_sections(template.dev_time_sections),
        "Scale": template.scale,
        "CreateAt": local_time(template.created_at),
        "UpdateAt": local_time(template.updated_at),
    }


def _check_sections(template: BackupTemplate, codes: TimeSectionCodes) -> None:
    uploads = parse_time_sections(template.time_sections, codes)
    recordings = parse_time_sections(template.dev_time_sections, codes)
    check_upload_capacity(uploads, recordings, template.scale)


def add_record_backup_template(ctx: ActionContext, params: Params) -> Result:
    _check_template_name_free(ctx.store, params["TemplateName"])
    template = BackupTemplate(
        template_id=new_uuid(),
        name=params["TemplateName"],
        time_sections=wire_sections(params["TimeSections"]),
        dev_time_sections=wire_sections(params["DevTimeSections"]),
        scale=params["Scale"],
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    _check_sections(template, ADD_SECTION_CODES)
    ctx.store.put(template)
    return {"Data": _template_data(template)}


def update_record_backup_template(ctx: ActionContext, params: Params) -> Result:
    template = find_template(ctx.store, params["TemplateId"])
    mod = params["Mod"]
    if not mod:
        raise IssError(MISSING_UPDATE)
    if mod.get("TemplateName") is not None:
        _check_template_name_free(ctx.store, mod["TemplateName"], template.template_id)
        template.name = mod["TemplateName"]
    if mod.get("TimeSections") is not None:
        template.time_sections = wire_sections(mod["TimeSections"])
    if mod.get("DevTimeSections") is not None:
        template.dev_time_sections = wire_sections(mod["DevTimeSections"])
    if mod.get("Scale") is not None:
        template.scale = mod["Scale"]
    _check_sections(template, UPDATE_SECTION_CODES)
    template.updated_at = ctx.now
    ctx.store.put(template)
    return {"Data": _template_data(template)}


def delete_record_backup_template(ctx: ActionContext, params: Params) -> None:
    template = find_template(ctx.store, params["TemplateId"])
    if any(plan.template_id == template.template_id for plan in ctx.store.all(BackupPlan)):
        raise IssError("ResourceInUse.PlanLinkTemplate")
    ctx.store.delete(template)


def describe_record_backup_template(ctx: ActionContext, params: Params) -> Result:
    return {"Data": _template_data(find_template(ctx.store, params["TemplateId"]))}


def list_record_backup_templates(ctx: ActionContext, params: Params) -> Result:
    return {"Data": [_template_data(template) for template in ctx.store.all(BackupTemplate)]}


# -- plans --------------------------------------------------------------------------------


def find_plan(store: CloudStore, plan_id: str, missing: str = "ResourceNotFound") -> BackupPlan:
    plan = store.get(BackupPlan, plan_id)
    if plan is None:
        raise IssError(missing, f"Upload plan {plan_id} does not exist.")
    return plan


def _check_plan_name_free(store: CloudStore, name: str, own_id: str | None = None) -> None:
    if any(plan.name == name and plan.plan_id != own_id for plan in store.all(BackupPlan)):
        raise IssError("ResourceInUse.PlanNameRepeat", f"An upload plan named {name!r} exists.")


def _uploadable(device: Device) -> bool:
    """Recording upload applies to GB28181 and gateway devices only."""
    return device.access_protocol in (ACCESS_GB, ACCESS_GATEWAY)


def _select(
    store: CloudStore, plan_id: str | None, channels: list[Any], organizations: list[str]
) -> list[str]:
    selection = ChannelSelection(
        channels=channels,
        organization_ids=organizations,
        owners=owners_of(store.all(BackupPlan)),
        plan_id=plan_id,
        eligible=_uploadable,
    )
    return select_channels(store, selection, SELECTION_CODES)


def _plan_data(plan: BackupPlan) -> dict[str, Any]:
    """AddRecordBackupPlanData (same members in Describe/Update/List)."""
    return {
        "PlanId": plan.plan_id,
        "PlanName": plan.name,
        "TemplateId": plan.template_id,
        "Describe": plan.describe,
        "LifeCycle": dict(plan.life_cycle),
        "Status": plan.status,
        "ChannelCount": len(plan.channel_ids),
        "CreateAt": local_time(plan.created_at),
        "UpdateAt": local_time(plan.updated_at),
    }


def add_record_backup_plan(ctx: ActionContext, params: Params) -> Result:
    find_template(ctx.store, params["TemplateId"])
    _check_plan_name_free(ctx.store, params["PlanName"])
    life_cycle = check_life_cycle(params["LifeCycle"])
    channel_ids = _select(ctx.store, None, params.get("Channels", []), params.get("OrganizationId", []))
    plan = BackupPlan(
        plan_id=new_uuid(),
        name=params["PlanName"],
        template_id=params["TemplateId"],
        describe=params["Describe"],
        life_cycle=life_cycle,
        created_at=ctx.now,
        updated_at=ctx.now,
        channel_ids=channel_ids,
    )
    ctx.store.put(plan)
    return {"Data": _plan_data(plan)}


def update_record_backup_plan(ctx: ActionContext, params: Params) -> Result:
    plan = find_plan(ctx.store, params["PlanId"])
    mod = params["Mod"]
    if not mod:
        raise IssError(MISSING_UPDATE)
    if mod.get("PlanName") is not None:
        _check_plan_name_free(ctx.store, mod["PlanName"], plan.plan_id)
        plan.name = mod["PlanName"]
    if mod.get("TemplateId") is not None:
        plan.template_id = find_template(ctx.store, mod["TemplateId"]).template_id
    if mod.get("Describe") is not None:
        plan.describe = mod["Describe"]
    if mod.get("LifeCycle") is not None:
        plan.life_cycle = check_life_cycle(mod["LifeCycle"])
    removed = set(mod.get("Del", []))
    plan.channel_ids = [channel_id for channel_id in plan.channel_ids if channel_id not in removed]
    added = _select(ctx.store, plan.plan_id, mod.get("Add", []), mod.get("OrganizationId", []))
    plan.channel_ids += [channel_id for channel_id in added if channel_id not in plan.channel_ids]
    plan.updated_at = ctx.now
    ctx.store.put(plan)
    return {"Data": _plan_data(plan)}


def delete_record_backup_plan(ctx: ActionContext, params: Params) -> None:
    ctx.store.delete(find_plan(ctx.store, params["PlanId"]))


def describe_record_backup_plan(ctx: ActionContext, params: Params) -> Result:
    return {"Data": _plan_data(find_plan(ctx.store, params["PlanId"]))}


def list_record_backup_plans(ctx: ActionContext, params: Params) -> Result:
    return {"Data": [_plan_data(plan) for plan in ctx.store.all(BackupPlan)]}


def list_record_backup_plan_devices(ctx: ActionContext, params: Params) -> Result:
    """Plan channels, filtered (channel name, else device name, else organization name), paged."""
    plan = find_plan(ctx.store, params["PlanId"], missing=INVALID_PLAN_ID)
    infos = [
        info for info in (plan_channel_info(ctx.store, cid) for cid in plan.channel_ids) if info is not None
    ]
    matching = filter_by_name(
        infos, params.get("ChannelName", ""), params.get("DeviceName", ""), params.get("OrganizationName", "")
    )
    return {
        "Data": paged_listing(
            matching, params.get("PageNumber", 1), params.get("PageSize", DEFAULT_PAGE_SIZE)
        )
    }
