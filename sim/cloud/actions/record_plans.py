"""Real-time cloud recording: templates (weekly sections) and plans (template + channels).

A channel can be in only one real-time plan; a template used by a plan cannot be deleted.
Plans are deleted at once (the cloud deletes asynchronously and shows ``Status`` 0 meanwhile).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.iss.errors import IssError

from .. import schema as s
from ..records import Channel, RecordPlan, RecordTemplate
from ..schema import Params, Schema
from ..store import CloudStore
from .context import ActionContext, Result
from .organizations import organization_exists, subtree
from .plan_channels import (
    FILTER_NAME,
    ORGANIZATION_ID,
    ChannelSelection,
    ChannelSelectionCodes,
    channel_info_param,
    channels_of_organizations,
    filter_by_name,
    organization_ids_param,
    owners_of,
    plan_channel_info,
    select_channels,
)
from .rules import (
    LIFE_CYCLE_PARAM,
    OPAQUE_ID,
    PLAIN_NAME,
    PLAIN_TEXT,
    STREAM_TYPE,
    TimeSectionCodes,
    check_life_cycle,
    new_hex_id,
    page,
    parse_time_sections,
    time_section_param,
    wire_sections,
)

EMPTY_NAME = "InvalidParameterValue.EmptyName"
TOO_LONG_NAME = "InvalidParameterValue.TooLongName"
ILLEGAL_NAME = "InvalidParameterValue.IllegalName"
INVALID_TEMPLATE_ID = "InvalidParameterValue.InvalidTemplateId"
INVALID_PLAN_ID = "InvalidParameterValue.InvalidPlanId"
EMPTY_TIME_SECTION = "MissingParameter.EmptyTimeSection"
BAD_TIME_SECTION = "InvalidParameter.InvalidTimeSection"
MISSING_UPDATE = "MissingParameter.MissingUpdatedInfo"
MAX_PAGE_SIZE = 1000

SECTION_CODES = TimeSectionCodes(
    day="InvalidParameterValue.InvalidTimeSectionValue",
    time_format="InvalidParameterValue.InvalidTimeSectionValue",
    order="InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime",
)

SELECTION_CODES = ChannelSelectionCodes(
    bad_channels="InvalidParameter.InvalidChannels",
    empty_device="InvalidParameterValue.EmptyDeviceId",
    empty_channel="InvalidParameterValue.EmptyChannelId",
    illegal_device="InvalidParameterValue.IllegalDeviceId",
    illegal_channel="InvalidParameterValue.IllegalChannelId",
    unknown_device="InvalidParameterValue.InvalidDeviceId",
    unknown_channel="InvalidParameterValue.InvalidChannelId",
    mismatch="InvalidParameterValue.InvalidChannelIdOrDeviceId",
    bad_organizations="InvalidParameter.InvalidOrganizationParam",
    empty_organization="InvalidParameterValue.EmptyOrganizationId",
    illegal_organization="InvalidParameterValue.IllegalOrganizationId",
    unknown_organization="ResourceNotFound.OrganizationIdNotExist",
)

# -- schemas ------------------------------------------------------------------------------


def _name(required: bool) -> s.Param:
    return s.string(
        required,
        empty=EMPTY_NAME,
        max_length=32,
        too_long=TOO_LONG_NAME,
        pattern=PLAIN_NAME,
        invalid=ILLEGAL_NAME,
    )


def _sections(required: bool) -> s.Param:
    return s.array(
        time_section_param(BAD_TIME_SECTION),
        required,
        missing=EMPTY_TIME_SECTION,
        empty=EMPTY_TIME_SECTION,
        wrong_type=BAD_TIME_SECTION,
    )


_TEMPLATE_ID = s.string(True, pattern=OPAQUE_ID, invalid=INVALID_TEMPLATE_ID)
_PLAN_ID = s.string(True, pattern=OPAQUE_ID, invalid=INVALID_PLAN_ID)
_DESCRIBE = s.string(
    max_length=128,
    too_long="InvalidParameterValue.TooLongDescribe",
    pattern=PLAIN_TEXT,
    invalid="InvalidParameterValue.IllegalDescribe",
)
_STREAM_TYPE = s.string(
    max_bytes=32,
    too_long="InvalidParameterValue.TooLongStreamType",
    pattern=STREAM_TYPE,
    invalid="InvalidParameterValue.IllegalStreamType",
)
_REPAIR_MODE = s.integer(choices=frozenset({0, 1}), invalid="InvalidParameterValue.InvalidRepairMode")
_FILTER = s.string(max_bytes=32, too_long=TOO_LONG_NAME, pattern=FILTER_NAME, invalid=ILLEGAL_NAME)
_ORGANIZATION_ID = s.string(
    True,
    empty="InvalidParameterValue.EmptyOrganizationId",
    pattern=ORGANIZATION_ID,
    invalid="InvalidParameterValue.IllegalOrganizationId",
)

ADD_RECORD_TEMPLATE: Schema = {"TemplateName": _name(True), "TimeSections": _sections(True)}
UPDATE_RECORD_TEMPLATE: Schema = {
    "TemplateId": _TEMPLATE_ID,
    "Mod": s.obj({"TemplateName": _name(False), "TimeSections": _sections(False)}, True),
}
DELETE_RECORD_TEMPLATE: Schema = {"TemplateId": _TEMPLATE_ID}
DESCRIBE_RECORD_TEMPLATE: Schema = {"TemplateId": _TEMPLATE_ID}
LIST_RECORD_TEMPLATES: Schema = {}

ADD_RECORD_PLAN: Schema = {
    "PlanName": _name(True),
    "TemplateId": s.string(
        True, empty="InvalidParameterValue.EmptyTemplateId", pattern=OPAQUE_ID, invalid=INVALID_TEMPLATE_ID
    ),
    "LifeCycle": dataclasses.replace(LIFE_CYCLE_PARAM, required=True),
    "Describe": _DESCRIBE,
    "StreamType": _STREAM_TYPE,
    "Channels": channel_info_param(SELECTION_CODES),
    "OrganizationId": organization_ids_param(SELECTION_CODES),
    "RepairMode": _REPAIR_MODE,
}
UPDATE_RECORD_PLAN: Schema = {
    "PlanId": _PLAN_ID,
    "Mod": s.obj(
        {
            "PlanName": _name(False),
            "TemplateId": s.string(
                empty="InvalidParameterValue.EmptyTemplateId", pattern=OPAQUE_ID, invalid=INVALID_TEMPLATE_ID
            ),
            "Describe": _DESCRIBE,
            "StreamType": _STREAM_TYPE,
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
            "RepairMode": _REPAIR_MODE,
        },
        True,
    ),
}
DELETE_RECORD_PLAN: Schema = {"PlanId": _PLAN_ID}
DESCRIBE_RECORD_PLAN: Schema = {"PlanId": _PLAN_ID}
LIST_RECORD_PLANS: Schema = {}
LIST_RECORD_PLAN_CHANNELS: Schema = {}
LIST_RECORD_PLAN_DEVICES: Schema = {
    "PlanId": _PLAN_ID,
    "PageSize": s.integer(
        True, minimum=1, maximum=MAX_PAGE_SIZE, invalid="InvalidParameterValue.InvalidPageSize"
    ),
    "PageNumber": s.integer(True, minimum=1, invalid="InvalidParameterValue.InvalidPageNumber"),
    "DeviceName": _FILTER,
    "ChannelName": _FILTER,
    "OrganizationName": _FILTER,
}
LIST_ORGANIZATION_CHANNELS: Schema = {
    "OrganizationId": _ORGANIZATION_ID,
    "PageSize": s.integer(
        True, minimum=1, maximum=MAX_PAGE_SIZE, invalid="InvalidParameterValue.InvalidPageSize"
    ),
    "PageNumber": s.integer(True, minimum=1, invalid="InvalidParameterValue.InvalidPageNumber"),
    "DeviceName": _FILTER,
    "ChannelName": _FILTER,
}
LIST_ORGANIZATION_CHANNEL_NUMBERS: Schema = {
    "OrganizationId": s.array(
        s.string(wrong_type=SELECTION_CODES.bad_organizations),
        True,
        empty="InvalidParameterValue.EmptyOrganizationId",
        wrong_type=SELECTION_CODES.bad_organizations,
        max_length=10,
        invalid="InvalidParameterValue.OrganizationCountExceedsRange",
    ),
}

# -- templates ----------------------------------------------------------------------------


def find_template(store: CloudStore, template_id: str) -> RecordTemplate:
    template = store.get(RecordTemplate, template_id)
    if template is None:
        raise IssError("ResourceNotFound.TemplateNotExist", f"Template {template_id} does not exist.")
    return template


def _check_template_name_free(store: CloudStore, name: str, own_id: str | None = None) -> None:
    if any(
        template.name == name and template.template_id != own_id for template in store.all(RecordTemplate)
    ):
        raise IssError("ResourceInUse.TemplateNameRepeat", f"A template named {name!r} exists.")


def _template_info(template: RecordTemplate) -> dict[str, Any]:
    """RecordTemplateInfo."""
    return {
        "TemplateId": template.template_id,
        "TemplateName": template.name,
        "TimeSections": wire_sections(template.time_sections),
    }


def add_record_template(ctx: ActionContext, params: Params) -> Result:
    _check_template_name_free(ctx.store, params["TemplateName"])
    parse_time_sections(params["TimeSections"], SECTION_CODES)
    template = RecordTemplate(new_hex_id(), params["TemplateName"], wire_sections(params["TimeSections"]))
    ctx.store.put(template)
    return {"Data": _template_info(template)}


def update_record_template(ctx: ActionContext, params: Params) -> Result:
    """Rename and/or replace the whole section list."""
    template = find_template(ctx.store, params["TemplateId"])
    mod = params["Mod"]
    if not mod:
        raise IssError(MISSING_UPDATE)
    if mod.get("TemplateName") is not None:
        _check_template_name_free(ctx.store, mod["TemplateName"], template.template_id)
        template.name = mod["TemplateName"]
    if mod.get("TimeSections") is not None:
        parse_time_sections(mod["TimeSections"], SECTION_CODES)
        template.time_sections = wire_sections(mod["TimeSections"])
    ctx.store.put(template)
    return {"Data": _template_info(template)}


def delete_record_template(ctx: ActionContext, params: Params) -> None:
    template = find_template(ctx.store, params["TemplateId"])
    if any(plan.template_id == template.template_id for plan in ctx.store.all(RecordPlan)):
        raise IssError("ResourceInUse.PlanLinkTemplate")
    ctx.store.delete(template)


def describe_record_template(ctx: ActionContext, params: Params) -> Result:
    return {"Data": _template_info(find_template(ctx.store, params["TemplateId"]))}


def list_record_templates(ctx: ActionContext, params: Params) -> Result:
    """``Data`` is null when there are no templates, as in the spec's example."""
    templates = [_template_info(template) for template in ctx.store.all(RecordTemplate)]
    return {"Data": templates or None}


# -- plans --------------------------------------------------------------------------------


def find_plan(store: CloudStore, plan_id: str) -> RecordPlan:
    plan = store.get(RecordPlan, plan_id)
    if plan is None:
        raise IssError("ResourceNotFound.PlanNotExist", f"Plan {plan_id} does not exist.")
    return plan


def _check_plan_name_free(store: CloudStore, name: str, own_id: str | None = None) -> None:
    if any(plan.name == name and plan.plan_id != own_id for plan in store.all(RecordPlan)):
        raise IssError("ResourceInUse.PlanNameRepeat", f"A plan named {name!r} exists.")


def _select(
    store: CloudStore, plan_id: str | None, channels: list[Any], organizations: list[str]
) -> list[str]:
    selection = ChannelSelection(
        channels=channels,
        organization_ids=organizations,
        owners=owners_of(store.all(RecordPlan)),
        plan_id=plan_id,
        eligible=lambda device: True,
    )
    return select_channels(store, selection, SELECTION_CODES)


def _opt_data(plan: RecordPlan) -> dict[str, Any]:
    """RecordPlanOptData."""
    return {
        "PlanId": plan.plan_id,
        "PlanName": plan.name,
        "TemplateId": plan.template_id,
        "Describe": plan.describe,
        "LifeCycle": dict(plan.life_cycle),
        "StreamType": plan.stream_type,
        "RepairMode": plan.repair_mode,
    }


def _base_info(plan: RecordPlan) -> dict[str, Any]:
    """RecordPlanBaseInfo."""
    return {**_opt_data(plan), "Status": plan.status, "ChannelCount": len(plan.channel_ids)}


def add_record_plan(ctx: ActionContext, params: Params) -> Result:
    _check_plan_name_free(ctx.store, params["PlanName"])
    find_template(ctx.store, params["TemplateId"])
    repair_mode = params.get("RepairMode", 0)
    life_cycle = check_life_cycle(params["LifeCycle"], repair_mode)
    channel_ids = _select(ctx.store, None, params.get("Channels", []), params.get("OrganizationId", []))
    plan = RecordPlan(
        plan_id=new_hex_id(),
        name=params["PlanName"],
        template_id=params["TemplateId"],
        describe=params.get("Describe", ""),
        stream_type=params.get("StreamType") or "default",
        life_cycle=life_cycle,
        repair_mode=repair_mode,
        channel_ids=channel_ids,
    )
    ctx.store.put(plan)
    return {"Data": _opt_data(plan)}


def update_record_plan(ctx: ActionContext, params: Params) -> Result:
    """Apply ``Mod``: simple fields, then ``Del`` (channel ids), then ``Add`` and organizations."""
    plan = find_plan(ctx.store, params["PlanId"])
    mod = params["Mod"]
    if not mod:
        raise IssError(MISSING_UPDATE)
    if plan.status != 1:
        raise IssError("ResourceInUse.PlanDeleting")
    if mod.get("PlanName") is not None:
        _check_plan_name_free(ctx.store, mod["PlanName"], plan.plan_id)
        plan.name = mod["PlanName"]
    if mod.get("TemplateId") is not None:
        plan.template_id = find_template(ctx.store, mod["TemplateId"]).template_id
    if mod.get("Describe") is not None:
        plan.describe = mod["Describe"]
    if mod.get("StreamType") is not None:
        plan.stream_type = mod["StreamType"] or "default"
    if mod.get("RepairMode") is not None:
        plan.repair_mode = mod["RepairMode"]
    plan.life_cycle = check_life_cycle(mod.get("LifeCycle") or plan.life_cycle, plan.repair_mode)
    removed = set(mod.get("Del", []))
    plan.channel_ids = [channel_id for channel_id in plan.channel_ids if channel_id not in removed]
    added = _select(ctx.store, plan.plan_id, mod.get("Add", []), mod.get("OrganizationId", []))
    plan.channel_ids += [channel_id for channel_id in added if channel_id not in plan.channel_ids]
    ctx.store.put(plan)
    return {"Data": _opt_data(plan)}


def delete_record_plan(ctx: ActionContext, params: Params) -> None:
    ctx.store.delete(find_plan(ctx.store, params["PlanId"]))


def describe_record_plan(ctx: ActionContext, params: Params) -> Result:
    return {"Data": _base_info(find_plan(ctx.store, params["PlanId"]))}


def list_record_plans(ctx: ActionContext, params: Params) -> Result:
    """``Data`` is null when there are no plans, as in the spec's example."""
    plans = [_base_info(plan) for plan in ctx.store.all(RecordPlan)]
    return {"Data": plans or None}


def list_record_plan_channels(ctx: ActionContext, params: Params) -> Result:
    """Ids of every channel in any real-time plan; ``List`` is null when there are none."""
    channel_ids = [channel_id for plan in ctx.store.all(RecordPlan) for channel_id in plan.channel_ids]
    return {"Data": {"List": channel_ids or None}}


def paged_listing(items: list[dict[str, Any]], page_number: int, page_size: int) -> dict[str, Any]:
    """The paging envelope of the plan listings: ``PageSize`` is the count on this page."""
    shown = page(items, page_number, page_size)
    return {
        "List": shown or None,
        "PageNumber": page_number,
        "PageSize": len(shown),
        "TotalCount": len(items),
    }


def list_record_plan_devices(ctx: ActionContext, params: Params) -> Result:
    plan = find_plan(ctx.store, params["PlanId"])
    infos = [
        info for info in (plan_channel_info(ctx.store, cid) for cid in plan.channel_ids) if info is not None
    ]
    matching = filter_by_name(
        infos, params.get("ChannelName", ""), params.get("DeviceName", ""), params.get("OrganizationName", "")
    )
    return {"Data": paged_listing(matching, params["PageNumber"], params["PageSize"])}


def _organization_scope(store: CloudStore, organization_id: str) -> set[str]:
    if not organization_exists(store, organization_id):
        raise IssError(
            "ResourceNotFound.OrganizationIdNotExist", f"Organization {organization_id} does not exist."
        )
    return subtree(store, organization_id)


def list_organization_channels(ctx: ActionContext, params: Params) -> Result:
    """Channels under an organization with ``InPlan`` (in any real-time plan)."""
    scope = _organization_scope(ctx.store, params["OrganizationId"])
    in_plan = owners_of(ctx.store.all(RecordPlan))
    items = []
    for channel in channels_of_organizations(ctx.store, scope):
        info = plan_channel_info(ctx.store, channel.channel_id)
        assert info is not None
        items.append(
            {
                "DeviceId": info["DeviceId"],
                "DeviceName": info["DeviceName"],
                "ChannelId": info["ChannelId"],
                "ChannelName": info["ChannelName"],
                "InPlan": channel.channel_id in in_plan,
                "OrganizationName": info["OrganizationName"],
            }
        )
    matching = filter_by_name(items, params.get("ChannelName", ""), params.get("DeviceName", ""), "")
    for item in matching:
        del item["OrganizationName"]
    return {"Data": paged_listing(matching, params["PageNumber"], params["PageSize"])}


def list_organization_channel_numbers(ctx: ActionContext, params: Params) -> Result:
    scope: set[str] = set()
    for organization_id in params["OrganizationId"]:
        if not organization_id:
            raise IssError("InvalidParameterValue.EmptyOrganizationId")
        if not organization_id.isdigit():
            raise IssError("InvalidParameterValue.IllegalOrganizationId")
        scope |= _organization_scope(ctx.store, organization_id)
    channels: list[Channel] = channels_of_organizations(ctx.store, scope)
    in_plan = owners_of(ctx.store.all(RecordPlan))
    not_in_plan = sum(1 for channel in channels if channel.channel_id not in in_plan)
    return {"Data": {"TotalCount": len(channels), "NotInPlanCount": not_in_plan}}
