"""Choosing and listing the channels of a plan; shared by real-time and upload plans.

Both plan families take channels two ways — explicit ``ChannelInfo`` entries and whole
organizations — and both allow a channel in only one plan of the family. The rules are the
same; the error codes differ, so each family passes its :class:`ChannelSelectionCodes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.iss.errors import IssError

from .. import schema as s
from ..records import Channel, Device, Organization
from ..store import CloudStore
from .organizations import organization_exists, subtree
from .rules import contains

# Channel ids: UUIDs for gateway/GB channels, the 10-character device code for RTMP channels.
CHANNEL_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
DEVICE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
ORGANIZATION_ID = re.compile(r"[0-9]{1,20}")
# Name filters: what device, channel and organization names may contain.
FILTER_NAME = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fffA-Za-z0-9_\- ()（）.]*")
MAX_ORGANIZATIONS = 1000
MAX_CHANNELS_PER_CALL = 5000


@dataclass(frozen=True, slots=True)
class ChannelSelectionCodes:
    """Error codes of one plan family for bad channel / organization selections."""

    bad_channels: str
    empty_device: str
    empty_channel: str
    illegal_device: str
    illegal_channel: str
    unknown_device: str
    unknown_channel: str
    mismatch: str
    bad_organizations: str
    empty_organization: str
    illegal_organization: str
    unknown_organization: str
    too_many_organizations: str = "InvalidParameterValue.OrganizationCountExceedsRange"
    too_many_channels: str = "InvalidParameterValue.PlanChannelsExceedsRange"
    taken: str = "ResourceInUse.ChannelRepeatAdd"
    ineligible: str = "InvalidParameterValue.UnSupportedAccessType"


def channel_info_param(codes: ChannelSelectionCodes) -> s.Param:
    """Schema of ``Channels.N`` / ``Mod.Add``: an array of ChannelInfo."""
    fields = {
        "DeviceId": s.string(True, missing=codes.empty_device, wrong_type=codes.bad_channels),
        "ChannelId": s.string(True, missing=codes.empty_channel, wrong_type=codes.bad_channels),
    }
    return s.array(s.obj(fields, wrong_type=codes.bad_channels), wrong_type=codes.bad_channels)


def organization_ids_param(codes: ChannelSelectionCodes) -> s.Param:
    """Schema of ``OrganizationId.N``: an array of strings."""
    return s.array(s.string(wrong_type=codes.bad_organizations), wrong_type=codes.bad_organizations)


@dataclass(frozen=True, slots=True)
class ChannelSelection:
    """What a plan action asked for, plus who already owns which channel in the family."""

    channels: Sequence[dict[str, str]]
    organization_ids: Sequence[str]
    owners: dict[str, str]
    plan_id: str | None
    eligible: Callable[[Device], bool]


def _explicit_channels(
    store: CloudStore, selection: ChannelSelection, codes: ChannelSelectionCodes
) -> list[str]:
    chosen: list[str] = []
    for entry in selection.channels:
        device_id, channel_id = entry["DeviceId"], entry["ChannelId"]
        if not device_id:
            raise IssError(codes.empty_device)
        if not channel_id:
            raise IssError(codes.empty_channel)
        if not DEVICE_ID.fullmatch(device_id):
            raise IssError(codes.illegal_device, f"DeviceId {device_id!r} contains illegal characters.")
        if not CHANNEL_ID.fullmatch(channel_id):
            raise IssError(codes.illegal_channel, f"ChannelId {channel_id!r} contains illegal characters.")
        device = store.get(Device, device_id)
        if device is None:
            raise IssError(codes.unknown_device, f"Device {device_id} does not exist.")
        channel = store.get(Channel, channel_id)
        if channel is None:
            raise IssError(codes.unknown_channel, f"Channel {channel_id} does not exist.")
        if channel.device_id != device_id:
            raise IssError(codes.mismatch, f"Channel {channel_id} does not belong to device {device_id}.")
        if not selection.eligible(device):
            raise IssError(codes.ineligible, f"Device {device_id} cannot be in this kind of plan.")
        owner = selection.owners.get(channel_id)
        if owner is not None and owner != selection.plan_id:
            raise IssError(codes.taken, f"Channel {channel_id} is already in plan {owner}.")
        if channel_id not in chosen:
            chosen.append(channel_id)
    return chosen


def _organization_channels(
    store: CloudStore, selection: ChannelSelection, codes: ChannelSelectionCodes
) -> list[str]:
    if len(selection.organization_ids) > MAX_ORGANIZATIONS:
        raise IssError(codes.too_many_organizations)
    scope: set[str] = set()
    for organization_id in selection.organization_ids:
        if not organization_id:
            raise IssError(codes.empty_organization)
        if not ORGANIZATION_ID.fullmatch(organization_id):
            raise IssError(codes.illegal_organization, f"OrganizationId {organization_id!r} is malformed.")
        if not organization_exists(store, organization_id):
            raise IssError(codes.unknown_organization, f"Organization {organization_id} does not exist.")
        scope |= subtree(store, organization_id)
    return [
        channel.channel_id
        for channel in channels_of_organizations(store, scope)
        if selection.owners.get(channel.channel_id) in (None, selection.plan_id)
        and selection.eligible(_device_of(store, channel))
    ]


def _device_of(store: CloudStore, channel: Channel) -> Device:
    device = store.get(Device, channel.device_id)
    assert device is not None, "channels never outlive their device"
    return device


def channels_of_organizations(store: CloudStore, organization_ids: set[str]) -> list[Channel]:
    """Channels of the devices directly in any of ``organization_ids``, in creation order."""
    devices = {device.device_id for device in store.all(Device) if device.organization_id in organization_ids}
    return [channel for channel in store.all(Channel) if channel.device_id in devices]


def select_channels(
    store: CloudStore, selection: ChannelSelection, codes: ChannelSelectionCodes
) -> list[str]:
    """The channel ids to add: explicit ones (which must be free) then free organization channels."""
    chosen = _explicit_channels(store, selection, codes)
    for channel_id in _organization_channels(store, selection, codes):
        if channel_id not in chosen:
            chosen.append(channel_id)
    if len(chosen) > MAX_CHANNELS_PER_CALL:
        raise IssError(codes.too_many_channels)
    return chosen


def owners_of(plans: Iterable[Any]) -> dict[str, str]:
    """channel id → id of the plan (of one family) that holds it."""
    return {channel_id: plan.plan_id for plan in plans for channel_id in plan.channel_ids}


def plan_channel_info(store: CloudStore, channel_id: str) -> dict[str, Any] | None:
    """RecordPlanChannelInfo of a plan member (None if the channel vanished)."""
    channel = store.get(Channel, channel_id)
    if channel is None:
        return None
    device = _device_of(store, channel)
    organization = store.get(Organization, device.organization_id)
    return {
        "DeviceId": device.device_id,
        "DeviceName": device.name,
        "ChannelId": channel.channel_id,
        "ChannelName": channel.name,
        "OrganizationName": organization.name if organization else "",
        "AccessProtocol": device.access_protocol,
    }


def filter_by_name(
    items: list[dict[str, Any]], channel_name: str, device_name: str, organization_name: str
) -> list[dict[str, Any]]:
    """Apply the one name filter that wins: channel name, else device name, else organization name."""
    for field, needle in (
        ("ChannelName", channel_name),
        ("DeviceName", device_name),
        ("OrganizationName", organization_name),
    ):
        if needle:
            return [item for item in items if contains(item[field], needle)]
    return items
