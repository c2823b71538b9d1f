"""Viewdata access gateways: listing, details, attached devices, protocols, monitor, versions.

No iss action creates a gateway (spec README section 11 item 24: gateways are activated outside
the API), so gateways come from the seed data and from the emulator's admin API.
"""

from __future__ import annotations

from typing import Any

from gateway.iss.errors import IssError

from .. import schema as s
from ..records import DEVICE_ONLINE, Cluster, Device, Gateway
from ..schema import Params, Schema
from ..store import CloudStore
from .context import ActionContext, Result
from .devices import device_channels
from .rules import (
    ENTITY_ID,
    GATEWAY_PROTOCOL_LABELS,
    GATEWAY_PROTOCOL_TYPE_CODE,
    PLAIN_NAME,
    PLAIN_TEXT,
    contains,
    iso_time,
    page,
)

INVALID_GATEWAY_ID = "InvalidParameterValue.InvalidGatewayId"
LIST_PAGE_SIZE_DEFAULT = 20
LIST_PAGE_SIZE_MAX = 1000

_GATEWAY_ID = s.string(True, pattern=ENTITY_ID, invalid=INVALID_GATEWAY_ID)
_PAGE_NUMBER = s.integer(minimum=1)
_PAGE_SIZE = s.integer(minimum=1, maximum=LIST_PAGE_SIZE_MAX)

LIST_GATEWAYS: Schema = {
    "PageNumber": _PAGE_NUMBER,
    "PageSize": _PAGE_SIZE,
    "Name": s.string(max_length=32, pattern=PLAIN_NAME, invalid="InvalidParameterValue.InvalidName"),
    "ClusterId": s.string(pattern=ENTITY_ID, invalid="InvalidParameterValue.InvalidClusterId"),
    "Status": s.integer(choices=frozenset({0, 1})),
}
DESCRIBE_GATEWAY: Schema = {"GatewayId": _GATEWAY_ID}
UPDATE_GATEWAY: Schema = {
    "GatewayId": _GATEWAY_ID,
    "Name": s.string(
        empty="InvalidParameterValue.InvalidName",
        max_length=32,
        pattern=PLAIN_NAME,
        invalid="InvalidParameterValue.InvalidName",
    ),
    "Description": s.string(
        max_length=128, pattern=PLAIN_TEXT, invalid="InvalidParameterValue.InvalidDescription"
    ),
}
LIST_GATEWAY_DEVICES: Schema = {"GatewayId": _GATEWAY_ID, "PageNumber": _PAGE_NUMBER, "PageSize": _PAGE_SIZE}
DESCRIBE_GATEWAY_PROTOCOL: Schema = {}
DESCRIBE_GATEWAY_MONITOR: Schema = {"GatewayId": _GATEWAY_ID}
DESCRIBE_GATEWAY_VERSION: Schema = {"GatewayId": _GATEWAY_ID}


def find_gateway(store: CloudStore, gateway_id: str) -> Gateway:
    gateway = store.get(Gateway, gateway_id)
    if gateway is None:
        raise IssError("ResourceNotFound", f"Gateway {gateway_id} does not exist.")
    return gateway


def gateway_devices(store: CloudStore, gateway_id: str) -> list[Device]:
    return [device for device in store.all(Device) if device.gateway_id == gateway_id]


def _summary(store: CloudStore, gateway: Gateway) -> dict[str, Any]:
    cluster = store.get(Cluster, gateway.cluster_id)
    return {
        "GatewayId": gateway.gateway_id,
        "GwId": gateway.gw_id,
        "Name": gateway.name,
        "Description": gateway.description,
        "ClusterId": gateway.cluster_id,
        "ClusterName": cluster.label if cluster else "",
        "Region": cluster.region if cluster else "",
        "Status": gateway.status,
        "CreatedAt": iso_time(gateway.created_at),
        "DeviceNum": len(gateway_devices(store, gateway.gateway_id)),
    }


def list_gateways(ctx: ActionContext, params: Params) -> Result:
    """Gateways filtered by name (substring), service node and status; paged."""
    matching = [
        gateway
        for gateway in ctx.store.all(Gateway)
        if (params.get("Name") is None or contains(gateway.name, params["Name"]))
        and params.get("ClusterId") in (None, gateway.cluster_id)
        and params.get("Status") in (None, gateway.status)
    ]
    shown = page(matching, params.get("PageNumber", 1), params.get("PageSize", LIST_PAGE_SIZE_DEFAULT))
    return {
        "Data": {"List": [_summary(ctx.store, gateway) for gateway in shown], "TotalCount": len(matching)}
    }


def describe_gateway(ctx: ActionContext, params: Params) -> Result:
    gateway = find_gateway(ctx.store, params["GatewayId"])
    data = _summary(ctx.store, gateway)
    versions = [{"Name": item["Name"], "Version": item["Version"]} for item in gateway.services]
    data["Version"] = versions or None
    return {"Data": data}


def update_gateway(ctx: ActionContext, params: Params) -> Result:
    """Rename / re-describe; the answer carries the gateway secret like UpdateGatewayData does."""
    gateway = find_gateway(ctx.store, params["GatewayId"])
    if params.get("Name") is not None:
        gateway.name = params["Name"]
    if params.get("Description") is not None:
        gateway.description = params["Description"]
    ctx.store.put(gateway)
    cluster = ctx.store.get(Cluster, gateway.cluster_id)
    return {
        "Data": {
            "GatewayId": gateway.gateway_id,
            "GwId": gateway.gw_id,
            "Name": gateway.name,
            "Description": gateway.description,
            "ClusterId": gateway.cluster_id,
            "ClusterName": cluster.label if cluster else "",
            "Status": gateway.status,
            "CreatedAt": int(gateway.created_at),
            "Secret": gateway.secret,
            "Version": ", ".join(f"{item['Name']} {item['Version']}" for item in gateway.services),
        }
    }


def list_gateway_devices(ctx: ActionContext, params: Params) -> Result:
    """The devices attached to a gateway, oldest first, paged (default 20 per page)."""
    gateway = find_gateway(ctx.store, params["GatewayId"])
    devices = gateway_devices(ctx.store, gateway.gateway_id)
    shown = page(devices, params.get("PageNumber", 1), params.get("PageSize", LIST_PAGE_SIZE_DEFAULT))
    return {
        "Data": {
            "List": [
                {
                    "DeviceId": device.device_id,
                    "ProtocolType": device.protocol_type,
                    "ProtocolTypeName": GATEWAY_PROTOCOL_LABELS.get(device.protocol_type, ""),
                    "Name": device.name,
                    "Type": device.device_type,
                    "Ip": device.ip,
                    "Port": device.port,
                    "ChannelNum": len(device_channels(ctx.store, device.device_id)),
                    "Status": device.status,
                }
                for device in shown
            ],
            "TotalCount": len(devices),
        }
    }


def describe_gateway_protocol(ctx: ActionContext, params: Params) -> Result:
    return {
        "Data": [
            {"TypeCode": GATEWAY_PROTOCOL_TYPE_CODE, "Value": value, "Label": label, "ValueText": str(value)}
            for value, label in GATEWAY_PROTOCOL_LABELS.items()
        ]
    }


def describe_gateway_monitor(ctx: ActionContext, params: Params) -> Result:
    """Counters computed from the emulated state; no media flows, so UpFlow is 0."""
    gateway = find_gateway(ctx.store, params["GatewayId"])
    devices = gateway_devices(ctx.store, gateway.gateway_id)
    channels = [channel for device in devices for channel in device_channels(ctx.store, device.device_id)]
    online_devices = sum(1 for device in devices if device.status == DEVICE_ONLINE)
    online_channels = sum(1 for channel in channels if channel.state == 1)
    pulling = sum(1 for channel in channels if channel.status == 1)
    return {
        "Data": {
            "DeviceTotal": len(devices),
            "DeviceOnline": online_devices,
            "DeviceOffline": len(devices) - online_devices,
            "ChannelTotal": len(channels),
            "ChannelOnline": online_channels,
            "ChannelOffline": len(channels) - online_channels,
            "UpFlow": 0,
            "ChannelPull": pulling,
            "ChannelUnPull": len(channels) - pulling,
        }
    }


def describe_gateway_version(ctx: ActionContext, params: Params) -> Result:
    gateway = find_gateway(ctx.store, params["GatewayId"])
    services = [
        {
            "Name": item["Name"],
            "Version": item["Version"],
            "LatestVersion": item.get("LatestVersion", item["Version"]),
            "IsUpdate": item.get("LatestVersion", item["Version"]) != item["Version"],
            "UpgradeInfo": list(item.get("UpgradeInfo", [])),
        }
        for item in gateway.services
    ]
    return {"Data": {"Services": services}}
