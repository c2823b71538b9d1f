"""Device management: service nodes, devices and their channels.

Channels: the real platform learns a device's channels from the device (GB catalog) or from
the gateway. Here the device side "reports" channels through the emulator's admin API
(:func:`apply_channel_report`); a report can be keyed by device id, or — for gateway devices,
before the cloud knows them — by the gateway address (GatewayId, Ip, Port). Without a report a
gateway IPC gets one channel and a gateway NVR none; an RTMP device always has one channel
whose id is the device code (as in the DescribeDeviceChannel example).
"""

from __future__ import annotations

import ipaddress
import random
import re
import string
from typing import Any

from gateway.iss.errors import IssError

from .. import schema as s
from ..records import (
    ACCESS_GATEWAY,
    ACCESS_GB,
    ACCESS_ISUP,
    ACCESS_RTMP,
    DEVICE_NOT_REGISTERED,
    DEVICE_ONLINE,
    DEVICE_TYPE_IPC,
    GATEWAY_ONLINE,
    BackupPlan,
    Channel,
    ChannelReport,
    Cluster,
    Device,
    Gateway,
    RecordPlan,
)
from ..schema import Params, Schema
from ..store import CloudStore
from .context import ActionContext, Result
from .organizations import organization_exists, subtree
from .rules import (
    APP_ID,
    DEVICE_NAME,
    ENTITY_ID,
    GATEWAY_DEVICE_PROTOCOLS,
    GATEWAY_PROTOCOL_LABELS,
    ORGANIZATION_ID,
    contains,
    new_uuid,
    page,
)

INVALID_NAME = "InvalidParameterValue.InvalidName"
INVALID_DEVICE_ID = "InvalidParameterValue.InvalidDeviceId"
PASSWORD_LENGTH = "InvalidParameterValue.InvalidDevicePasswordLength"
UNSUPPORTED_ACCESS = "InvalidParameterValue.UnSupportedAccessType"
USERNAME = re.compile(r"[!-~]{1,64}")
RTMP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
KEYWORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fffA-Za-z0-9_\- ()（）.:]{1,128}")
SUPPORTED_ACCESS_PROTOCOLS = frozenset({ACCESS_RTMP, ACCESS_GB, ACCESS_GATEWAY, ACCESS_ISUP})
GATEWAY_ONLY_FIELDS = ("Ip", "Port", "Username", "ProtocolType")
SIP_DOMAIN = "4401000000"
SIP_ID = "44010000002000000001"
SIP_IP = "203.0.113.10"  # TEST-NET-3: documentation address, never contacted
SIP_PORT = 5060
PUSH_HOST = "push.ivc.invalid"

# -- schemas ------------------------------------------------------------------------------

_DEVICE_ID = s.string(True, pattern=ENTITY_ID, invalid=INVALID_DEVICE_ID)
_NAME = s.string(empty=INVALID_NAME, max_length=128, pattern=DEVICE_NAME, invalid=INVALID_NAME)
_PASSWORD = s.string(empty=PASSWORD_LENGTH, max_length=64, invalid=PASSWORD_LENGTH)
_DESCRIPTION = s.string(max_length=128, invalid="InvalidParameterValue.InvalidDescription")
_PROTOCOL_TYPE = s.integer(
    choices=GATEWAY_DEVICE_PROTOCOLS, invalid="InvalidParameterValue.InvalidGatewayProtocolType"
)
_PORT = s.integer(minimum=1, maximum=65535)
_USERNAME = s.string(pattern=USERNAME, invalid="InvalidParameterValue.InvalidUsername")
_SWITCH = s.integer(choices=frozenset({0, 1}))

DESCRIBE_DEVICE_REGION: Schema = {}

ADD_USER_DEVICE: Schema = {
    "Name": s.string(True, empty=INVALID_NAME, max_length=128, pattern=DEVICE_NAME, invalid=INVALID_NAME),
    "AccessProtocol": s.integer(True, choices=SUPPORTED_ACCESS_PROTOCOLS, invalid=UNSUPPORTED_ACCESS),
    "Type": s.integer(True, choices=frozenset({1, 2}), invalid="InvalidParameterValue.InvalidDeviceType"),
    "OrganizationId": s.string(True, pattern=ORGANIZATION_ID, invalid="InvalidParameter"),
    "ClusterId": s.string(True, pattern=ENTITY_ID, invalid="InvalidParameterValue.InvalidClusterId"),
    "TransportProtocol": s.integer(choices=frozenset({1, 2})),
    "Password": _PASSWORD,
    "Description": _DESCRIPTION,
    "GatewayId": s.string(pattern=ENTITY_ID, invalid="InvalidParameterValue.InvalidGatewayId"),
    "ProtocolType": _PROTOCOL_TYPE,
    "Ip": s.string(),
    "Port": _PORT,
    "Username": _USERNAME,
    "SNCode": s.string(max_length=64),
    "AppName": s.string(pattern=RTMP_NAME, invalid="InvalidParameterValue.InvalidRTMPAppName"),
    "StreamName": s.string(pattern=RTMP_NAME, invalid="InvalidParameterValue.InvalidRTMPStreamName"),
}

DELETE_USER_DEVICE: Schema = {"DeviceId": _DEVICE_ID}

UPDATE_USER_DEVICE: Schema = {
    "DeviceId": _DEVICE_ID,
    "Name": _NAME,
    "TransportProtocol": s.integer(
        choices=frozenset({0, 1, 2}), invalid="InvalidParameterValue.UnsupportedStreamProtocol"
    ),
    "Password": _PASSWORD,
    "Description": _DESCRIPTION,
    "Ip": s.string(),
    "Port": _PORT,
    "Username": _USERNAME,
    "ProtocolType": _PROTOCOL_TYPE,
    "AudioSwitch": _SWITCH,
    "SubscribeSwitch": _SWITCH,
    "SilentFrameSwitch": _SWITCH,
}

DESCRIBE_USER_DEVICE: Schema = {"DeviceId": _DEVICE_ID}

LIST_DEVICES: Schema = {
    "OrganizationId": s.string(
        True, pattern=ORGANIZATION_ID, invalid="InvalidParameterValue.InvalidOrganizationId"
    ),
    "IsContainSubLevel": s.boolean(),
    "IsContainUser": s.boolean(),
    "AccessProtocol": s.integer(
        choices=SUPPORTED_ACCESS_PROTOCOLS, invalid="InvalidParameterValue.InvalidAccessProtocol"
    ),
    "Type": s.integer(choices=frozenset({1, 2}), invalid="InvalidParameterValue.InvalidDeviceType"),
    "Status": s.integer(choices=frozenset({0, 1, 2, 3}), invalid="InvalidParameterValue.InvalidDeviceStatus"),
    "ClusterId": s.string(pattern=ENTITY_ID, invalid="InvalidParameterValue.InvalidClusterId"),
    "Keyword": s.string(pattern=KEYWORD, invalid="InvalidParameterValue.InvalidKeyword"),
    "CurrentUin": s.integer(),
    "PageNumber": s.integer(minimum=1, invalid="InvalidParameterValue.InvalidPageNumber"),
    "PageSize": s.integer(minimum=1, maximum=10000, invalid="InvalidParameterValue.InvalidPageSize"),
}

DESCRIBE_DEVICE_CHANNEL: Schema = {"DeviceId": _DEVICE_ID}
REFRESH_DEVICE_CHANNEL: Schema = {"DeviceId": _DEVICE_ID}

UPDATE_DEVICE_STATUS: Schema = {
    "DeviceId": _DEVICE_ID,
    "Status": s.integer(True, choices=frozenset({2, 3}), invalid="InvalidParameterValue.InvalidDeviceStatus"),
}

# -- lookups ------------------------------------------------------------------------------


def find_device(store: CloudStore, device_id: str) -> Device:
    """The device, or ``ResourceNotFound`` (the id's format is checked by the schema)."""
    device = store.get(Device, device_id)
    if device is None:
        raise IssError("ResourceNotFound", f"Device {device_id} does not exist.")
    return device


def cluster_of(store: CloudStore, device: Device) -> Cluster | None:
    return store.get(Cluster, device.cluster_id)


def device_channels(store: CloudStore, device_id: str) -> list[Channel]:
    channels = [channel for channel in store.all(Channel) if channel.device_id == device_id]
    return sorted(channels, key=lambda channel: channel.index)


def device_report_key(device_id: str) -> str:
    return f"device:{device_id}"


def address_report_key(gateway_id: str, ip: str, port: int) -> str:
    return f"address:{gateway_id}|{ip}|{port}"


def _check_region(ctx: ActionContext, cluster: Cluster | None) -> None:
    if ctx.region and cluster is not None and cluster.region != ctx.region:
        raise IssError("RegionError.ResourceUnreachable", f"The resource is in {cluster.region}.")


def _check_ipv4(value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise IssError("InvalidParameterValue.InvalidIpv4", f"{value!r} is not an IPv4 address.") from None


# -- codes --------------------------------------------------------------------------------


def _unique(store: CloudStore, make: Any) -> str:
    taken = {device.code for device in store.all(Device)} | {channel.code for channel in store.all(Channel)}
    while True:
        code: str = make()
        if code not in taken:
            return code


def _national_code(store: CloudStore, type_digits: str) -> str:
    """A 20-digit GB/T 28181-style code: area 44010000, type, serial."""
    return _unique(store, lambda: f"44010000{type_digits}{random.randrange(10**9):09d}")


def _rtmp_code(store: CloudStore) -> str:
    alphabet = string.ascii_letters + string.digits
    return _unique(store, lambda: "".join(random.choices(alphabet, k=10)))


# -- channels -----------------------------------------------------------------------------


def sync_channel_states(store: CloudStore, device: Device) -> None:
    """Channels are online exactly when their device is."""
    state = 1 if device.status == DEVICE_ONLINE else 0
    for channel in device_channels(store, device.device_id):
        if channel.state != state:
            channel.state = state
            store.put(channel)


def reported_channels(store: CloudStore, device: Device) -> list[dict[str, Any]] | None:
    """The channels the device side last reported for ``device`` (by id, else by address)."""
    report = store.get(ChannelReport, device_report_key(device.device_id))
    if report is None and device.access_protocol == ACCESS_GATEWAY:
        report = store.get(ChannelReport, address_report_key(device.gateway_id, device.ip, device.port))
    return None if report is None else report.channels


def _find_or_create_channel(
    store: CloudStore, device: Device, spec: dict[str, Any], position: int, known: list[Channel]
) -> Channel:
    """The known channel a reported one denotes, or a new one.

    A reported ChannelCode matches the channel with that code; failing that it claims the
    channel at its index whose code the platform made up (an IPC's automatic channel), so the
    channel keeps its ChannelId, plan memberships and all, instead of being duplicated. Without
    a ChannelCode the index alone identifies the channel.
    """
    code = spec.get("ChannelCode")
    index = int(spec.get("Index") or position)
    for channel in known:
        if (channel.code == code) if code else (channel.index == index):
            return channel
    if code:
        for channel in known:
            if channel.index == index and not channel.code_reported:
                channel.code, channel.code_reported = str(code), True
                return channel
    if any(channel.index == index for channel in known):
        index = max(channel.index for channel in known) + 1
    channel = Channel(
        channel_id=new_uuid(),
        device_id=device.device_id,
        index=index,
        code=str(code) if code else _national_code(store, "131"),
        name=str(spec.get("Name") or f"{device.name}-{index}"),
        code_reported=bool(code),
    )
    known.append(channel)
    return channel


def merge_channels(store: CloudStore, device: Device, channels: list[dict[str, Any]]) -> None:
    """Add reported channels that are new and refresh known ones; never delete.

    A reported ``ChannelCode`` (the gateway's own channel name, e.g. an ONVIF video source token)
    identifies the channel across reports; without one the 1-based ``Index`` does. A channel is
    online when its device is, unless the report says it is not (``State`` 0: a camera behind
    an online NVR that is down).
    """
    known = device_channels(store, device.device_id)
    device_online = device.status == DEVICE_ONLINE
    for position, spec in enumerate(channels, start=1):
        channel = _find_or_create_channel(store, device, spec, position, known)
        if spec.get("Name"):
            channel.name = str(spec["Name"])
        channel.ptz_type = int(spec.get("PTZType", channel.ptz_type))
        channel.manufacturer = str(spec.get("Manufacturer", channel.manufacturer))
        channel.resolution = str(spec.get("Resolution", channel.resolution))
        channel.status = int(spec.get("Status", channel.status))
        channel.state = int(device_online and bool(spec.get("State", 1)))
        store.put(channel)
    manufacturers = [str(spec["Manufacturer"]) for spec in channels if spec.get("Manufacturer")]
    if manufacturers and not device.manufacturer:
        device.manufacturer = manufacturers[0]
        store.put(device)


def apply_channel_report(store: CloudStore, device: Device) -> None:
    """Bring ``device``'s channels in line with its latest report (RefreshDeviceChannel)."""
    channels = reported_channels(store, device)
    if channels is not None:
        merge_channels(store, device, channels)


def _initial_channels(store: CloudStore, device: Device) -> None:
    if device.access_protocol == ACCESS_RTMP:
        store.put(Channel(device.code, device.device_id, 1, device.code, device.name))
        return
    channels = reported_channels(store, device)
    if (
        channels is None
        and device.access_protocol == ACCESS_GATEWAY
        and device.device_type == DEVICE_TYPE_IPC
    ):
        channels = [{"Index": 1, "Name": device.name}]
    if channels:
        merge_channels(store, device, channels)


# -- wire shapes --------------------------------------------------------------------------


def device_data(store: CloudStore, device: Device) -> dict[str, Any]:
    """AddDeviceData / UpdateDeviceData (``OrganizationId`` is an Integer there)."""
    cluster = cluster_of(store, device)
    return {
        "DeviceId": device.device_id,
        "Code": device.code,
        "Name": device.name,
        "AccessProtocol": device.access_protocol,
        "Type": device.device_type,
        "ClusterId": device.cluster_id,
        "ClusterName": cluster.label if cluster else "",
        "TransportProtocol": device.transport_protocol,
        "Password": device.password,
        "Description": device.description,
        "Status": device.status,
        "OrganizationId": int(device.organization_id),
        "GatewayId": device.gateway_id,
        "ProtocolType": device.protocol_type,
        "Ip": device.ip,
        "Port": device.port,
        "Username": device.username,
        "AppId": APP_ID,
    }


def _push_stream_url(device: Device) -> str:
    if device.access_protocol != ACCESS_RTMP:
        return ""
    return f"rtmp://{PUSH_HOST}/{device.app_name or 'live'}/{device.stream_name or device.code}"


def describe_device_data(store: CloudStore, device: Device) -> dict[str, Any]:
    """DescribeDeviceData."""
    cluster = cluster_of(store, device)
    gateway = store.get(Gateway, device.gateway_id) if device.gateway_id else None
    is_gb = device.access_protocol == ACCESS_GB
    return {
        "DeviceId": device.device_id,
        "Code": device.code,
        "Name": device.name,
        "AccessProtocol": device.access_protocol,
        "Type": device.device_type,
        "ClusterId": device.cluster_id,
        "ClusterName": cluster.label if cluster else "",
        "TransportProtocol": device.transport_protocol,
        "Password": device.password,
        "Description": device.description,
        "SipId": SIP_ID if is_gb else "",
        "SipDomain": SIP_DOMAIN if is_gb else "",
        "SipIp": SIP_IP if is_gb else "",
        "SipPort": SIP_PORT if is_gb else 0,
        "PushStreamUrl": _push_stream_url(device),
        "Status": device.status,
        "OrganizationId": device.organization_id,
        "GatewayId": device.gateway_id,
        "GatewayName": gateway.name if gateway else "",
        "ProtocolTypeName": GATEWAY_PROTOCOL_LABELS.get(device.protocol_type, "")
        if device.gateway_id
        else "",
        "ProtocolType": device.protocol_type,
        "Ip": device.ip,
        "Port": device.port,
        "Username": device.username,
        "Region": cluster.region if cluster else "",
        "Manufacturer": device.manufacturer,
        "AudioSwitch": device.audio_switch,
        "SubscribeSwitch": device.subscribe_switch,
        "AppName": device.app_name,
        "StreamName": device.stream_name,
        "SilentFrameSwitch": device.silent_frame_switch,
    }


def channel_data(store: CloudStore, channel: Channel) -> dict[str, Any]:
    """DescribeDeviceChannelData."""
    device = store.get(Device, channel.device_id)
    cluster = cluster_of(store, device) if device else None
    return {
        "DeviceId": channel.device_id,
        "ChannelId": channel.channel_id,
        "ChannelCode": channel.code,
        "Name": channel.name,
        "Status": channel.status,
        "PTZType": channel.ptz_type,
        "Manufacturer": channel.manufacturer,
        "Resolution": channel.resolution,
        "State": channel.state,
        "Region": cluster.region if cluster else "",
    }


# -- handlers -----------------------------------------------------------------------------


def describe_device_region(ctx: ActionContext, params: Params) -> Result:
    """The service nodes a new device may use (Value = ClusterId)."""
    return {
        "Data": [
            {"Label": cluster.label, "Value": cluster.cluster_id, "Region": cluster.region}
            for cluster in ctx.store.all(Cluster)
        ]
    }


def _require(params: Params, names: tuple[str, ...], why: str) -> None:
    for name in names:
        if params.get(name) is None:
            raise IssError("MissingParameter", f"The parameter `{name}` is required {why}.")


def _check_new_device(ctx: ActionContext, params: Params) -> Cluster:
    protocol = params["AccessProtocol"]
    if protocol == ACCESS_RTMP and params["Type"] != DEVICE_TYPE_IPC:
        raise IssError("InvalidParameterValue.InvalidDeviceType", "An RTMP device can only be an IPC.")
    if not organization_exists(ctx.store, params["OrganizationId"]):
        raise IssError("ResourceNotFound", f"Organization {params['OrganizationId']} does not exist.")
    cluster = ctx.store.get(Cluster, params["ClusterId"])
    if cluster is None:
        raise IssError(
            "ResourceNotFound.NotFoundCluster", f"Service node {params['ClusterId']} does not exist."
        )
    _check_region(ctx, cluster)
    if protocol in (ACCESS_GB, ACCESS_GATEWAY):
        _require(params, ("Password",), "for GB and gateway devices")
    if protocol == ACCESS_GATEWAY:
        _require(params, ("GatewayId", *GATEWAY_ONLY_FIELDS), "for gateway devices")
        _check_ipv4(params["Ip"])
        if ctx.store.get(Gateway, params["GatewayId"]) is None:
            raise IssError("ResourceNotFound", f"Gateway {params['GatewayId']} does not exist.")
    if protocol == ACCESS_RTMP and (params.get("AppName") or params.get("StreamName")):
        pair = (params.get("AppName") or "live", params.get("StreamName") or "")
        for device in ctx.store.all(Device):
            if (
                device.access_protocol == ACCESS_RTMP
                and (device.app_name or "live", device.stream_name) == pair
            ):
                raise IssError("InvalidParameterValue.RTMPPushStreamParamRepeat")
    return cluster


def add_user_device(ctx: ActionContext, params: Params) -> Result:
    """Add one device; gateway devices get their channels from the gateway's report."""
    _check_new_device(ctx, params)
    protocol = params["AccessProtocol"]
    device = Device(
        device_id=new_uuid(),
        code=_rtmp_code(ctx.store) if protocol == ACCESS_RTMP else _national_code(ctx.store, "132"),
        name=params["Name"],
        access_protocol=protocol,
        device_type=params["Type"],
        organization_id=params["OrganizationId"],
        cluster_id=params["ClusterId"],
        created_at=ctx.now,
        transport_protocol=params.get("TransportProtocol", 1) if protocol == ACCESS_GB else 0,
        password=params.get("Password", ""),
        description=params.get("Description", ""),
        sn_code=params.get("SNCode", ""),
    )
    if protocol == ACCESS_GATEWAY:
        gateway = ctx.store.get(Gateway, params["GatewayId"])
        assert gateway is not None
        device.gateway_id = gateway.gateway_id
        device.protocol_type = params["ProtocolType"]
        device.ip, device.port, device.username = params["Ip"], params["Port"], params["Username"]
        device.connection = DEVICE_ONLINE if gateway.status == GATEWAY_ONLINE else DEVICE_NOT_REGISTERED
    if protocol == ACCESS_RTMP:
        device.app_name, device.stream_name = params.get("AppName", ""), params.get("StreamName", "")
    ctx.store.put(device)
    _initial_channels(ctx.store, device)
    return {"Data": device_data(ctx.store, device)}


def delete_user_device(ctx: ActionContext, params: Params) -> None:
    """Delete a device, its channels, their plan memberships and its by-id channel report."""
    device = find_device(ctx.store, params["DeviceId"])
    _check_region(ctx, cluster_of(ctx.store, device))
    channels = device_channels(ctx.store, device.device_id)
    removed = {channel.channel_id for channel in channels}
    for channel in channels:
        ctx.store.delete(channel)
    plans: list[RecordPlan | BackupPlan] = [*ctx.store.all(RecordPlan), *ctx.store.all(BackupPlan)]
    for plan in plans:
        kept = [channel_id for channel_id in plan.channel_ids if channel_id not in removed]
        if len(kept) != len(plan.channel_ids):
            plan.channel_ids = kept
            ctx.store.put(plan)
    report = ctx.store.get(ChannelReport, device_report_key(device.device_id))
    if report is not None:
        ctx.store.delete(report)
    ctx.store.delete(device)


def _check_update_applies(device: Device, params: Params) -> None:
    if params.get("Password") is not None and device.access_protocol not in (ACCESS_GB, ACCESS_GATEWAY):
        raise IssError(UNSUPPORTED_ACCESS, "Only GB and gateway devices have a password.")
    if device.access_protocol != ACCESS_GATEWAY and any(
        params.get(name) is not None for name in GATEWAY_ONLY_FIELDS
    ):
        raise IssError(
            UNSUPPORTED_ACCESS, "Ip, Port, Username and ProtocolType apply to gateway devices only."
        )
    if params.get("Ip") is not None:
        _check_ipv4(params["Ip"])


def update_user_device(ctx: ActionContext, params: Params) -> Result:
    """Change the given fields; ``TransportProtocol`` 0 means "unchanged"."""
    device = find_device(ctx.store, params["DeviceId"])
    _check_update_applies(device, params)
    simple = {
        "Name": "name",
        "Password": "password",
        "Description": "description",
        "Ip": "ip",
        "Port": "port",
        "Username": "username",
        "ProtocolType": "protocol_type",
        "AudioSwitch": "audio_switch",
        "SubscribeSwitch": "subscribe_switch",
        "SilentFrameSwitch": "silent_frame_switch",
    }
    for wire_name, attribute in simple.items():
        if params.get(wire_name) is not None:
            setattr(device, attribute, params[wire_name])
    if params.get("TransportProtocol") and device.access_protocol == ACCESS_GB:
        device.transport_protocol = params["TransportProtocol"]
    ctx.store.put(device)
    return {"Data": device_data(ctx.store, device)}


def describe_user_device(ctx: ActionContext, params: Params) -> Result:
    return {"Data": describe_device_data(ctx.store, find_device(ctx.store, params["DeviceId"]))}


def _matches_list_filters(device: Device, params: Params) -> bool:
    wanted = {
        "AccessProtocol": device.access_protocol,
        "Type": device.device_type,
        "Status": device.status,
        "ClusterId": device.cluster_id,
    }
    if any(params.get(name) is not None and params[name] != value for name, value in wanted.items()):
        return False
    keyword = params.get("Keyword")
    return not keyword or any(
        contains(text, keyword) for text in (device.name, device.code, device.device_id)
    )


def list_devices(ctx: ActionContext, params: Params) -> Result:
    """Devices of an organization (optionally its subtree), filtered and paged."""
    organization_id = params["OrganizationId"]
    if not organization_exists(ctx.store, organization_id):
        raise IssError(
            "InvalidParameterValue.InvalidOrganizationId", f"Organization {organization_id} does not exist."
        )
    scope = subtree(ctx.store, organization_id) if params.get("IsContainSubLevel") else {organization_id}
    matching = [
        device
        for device in ctx.store.all(Device)
        if device.organization_id in scope and _matches_list_filters(device, params)
    ]
    shown = page(matching, params.get("PageNumber", 1), params.get("PageSize", 20))
    data = []
    for device in shown:
        cluster = cluster_of(ctx.store, device)
        data.append(
            {
                "DeviceId": device.device_id,
                "Code": device.code,
                "Status": device.status,
                "TransportProtocol": device.transport_protocol,
                "Name": device.name,
                "Type": device.device_type,
                "Password": device.password,
                "Description": device.description,
                "ClusterId": device.cluster_id,
                "ClusterName": cluster.label if cluster else "",
                "AccessProtocol": device.access_protocol,
                "OrganizationId": device.organization_id,
                "ChannelNum": len(device_channels(ctx.store, device.device_id)),
            }
        )
    return {"Data": data, "TotalCount": len(matching)}


def describe_device_channel(ctx: ActionContext, params: Params) -> Result:
    device = find_device(ctx.store, params["DeviceId"])
    return {
        "Data": [channel_data(ctx.store, channel) for channel in device_channels(ctx.store, device.device_id)]
    }


def require_reachable(device: Device) -> None:
    """Refuse a command the platform cannot pass to a disabled, unregistered or offline device."""
    if not device.enabled:
        raise IssError("ResourceUnavailable.DevDisable")
    if device.connection == DEVICE_NOT_REGISTERED:
        raise IssError("ResourceUnavailable.DevNoRegister")
    if device.connection != DEVICE_ONLINE:
        raise IssError("ResourceUnavailable.DevOffline")


def refresh_device_channel(ctx: ActionContext, params: Params) -> None:
    """Re-read the device's channels: merge its latest report (RTMP devices have none to read)."""
    device = find_device(ctx.store, params["DeviceId"])
    if device.access_protocol == ACCESS_RTMP:
        raise IssError(UNSUPPORTED_ACCESS, "RTMP devices have no channel catalog to refresh.")
    require_reachable(device)
    apply_channel_report(ctx.store, device)


def update_device_status(ctx: ActionContext, params: Params) -> None:
    """2 enables, 3 disables (unlike the device status enum, where 2 means offline)."""
    device = find_device(ctx.store, params["DeviceId"])
    device.enabled = params["Status"] == 2
    ctx.store.put(device)
    sync_channel_states(ctx.store, device)
