"""``/_emulator/``: unsigned test-support endpoints (the emulator only listens on loopback).

Plain JSON in and out (not the iss envelope); a bad request is HTTP 400 ``{"error": "..."}``,
an unknown gateway or device 404.

GET    /_emulator/calls[?action=A]         call log: [{action, code, at, request_id, ...}]
DELETE /_emulator/calls                    forget the call log
GET    /_emulator/faults                   active faults
POST   /_emulator/faults                   {"action", "delay"?, "error"?, "drop"?, "http_status"?, "times"?}
DELETE /_emulator/faults                   remove all faults
PUT    /_emulator/rate-limit               {"PerSecond": n, "Actions"?: {"ListGatewayDevices": 5}}
POST   /_emulator/gateways                 {"Name", "GatewayId"?, "GwId"?, "ClusterId"?, "Status"?,
                                            "Description"?, "Services"?}
PUT    /_emulator/gateways/{id}/status     {"Status": 0|1}
PUT    /_emulator/devices/{id}/connection  {"Status": 0|1|2}
POST   /_emulator/channel-reports          {"DeviceId"} or {"GatewayId", "Ip", "Port"}, "Sync"?, "Channels":
                                           [{"Name", "Index"?, "ChannelCode"?, "PTZType"?, "Status"?,
                                             "State"?, "Manufacturer"?, "Resolution"?}]
GET    /_emulator/relay                    {"Connected": [GatewayId, ...]} (with the relay enabled)
DELETE /_emulator/relay/{gateway_id}       drop the gateway's relay link as a network failure would
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .control import EmulatorControl
from .faults import Fault
from .relay import GatewayRelay
from .reports import ReportedChannel
from .state import EMULATOR_STATE

EMULATOR_CONTROL = web.AppKey("emulator_control", EmulatorControl)
ADMIN_PREFIX = "/_emulator"

AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _control(request: web.Request) -> EmulatorControl:
    return request.app[EMULATOR_CONTROL]


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        document = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from None
    if not isinstance(document, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be an object"}), content_type="application/json"
        )
    return document


def _guarded(handler: AdminHandler) -> AdminHandler:
    """Map bad input (ValueError, TypeError, a missing member) to 400 and an unknown id to 404."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        except KeyError as error:
            return web.json_response({"error": f"missing member {error}"}, status=400)
        except LookupError as error:
            return web.json_response({"error": str(error)}, status=404)

    return wrapper


async def get_calls(request: web.Request) -> web.StreamResponse:
    records = _control(request).calls(request.query.get("action"))
    return web.json_response([record.to_wire() for record in records])


async def delete_calls(request: web.Request) -> web.StreamResponse:
    _control(request).clear_calls()
    return web.json_response({"cleared": True})


async def get_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response([fault.to_wire() for fault in _control(request).faults()])


async def post_fault(request: web.Request) -> web.StreamResponse:
    fault = Fault.from_wire(await _json_body(request))
    _control(request).add_fault(fault)
    return web.json_response(fault.to_wire(), status=201)


async def delete_faults(request: web.Request) -> web.StreamResponse:
    _control(request).clear_faults()
    return web.json_response({"cleared": True})


async def put_rate_limit(request: web.Request) -> web.StreamResponse:
    document = await _json_body(request)
    _control(request).set_rate_limit(document["PerSecond"], document.get("Actions"))
    return web.json_response({"PerSecond": document["PerSecond"], "Actions": document.get("Actions") or {}})


async def post_gateway(request: web.Request) -> web.StreamResponse:
    document = await _json_body(request)
    gateway_id = await _control(request).add_gateway(
        document["Name"],
        gateway_id=document.get("GatewayId"),
        gw_id=document.get("GwId"),
        cluster_id=document.get("ClusterId"),
        status=document.get("Status", 1),
        description=document.get("Description", ""),
        services=document.get("Services"),
    )
    return web.json_response({"GatewayId": gateway_id}, status=201)


async def put_gateway_status(request: web.Request) -> web.StreamResponse:
    document = await _json_body(request)
    await _control(request).set_gateway_status(request.match_info["gateway_id"], document["Status"])
    return web.json_response({"Status": document["Status"]})


async def put_device_connection(request: web.Request) -> web.StreamResponse:
    document = await _json_body(request)
    await _control(request).set_device_connection(request.match_info["device_id"], document["Status"])
    return web.json_response({"Status": document["Status"]})


async def post_channel_report(request: web.Request) -> web.StreamResponse:
    document = await _json_body(request)
    channels = document.get("Channels")
    if not isinstance(channels, list):
        raise TypeError("Channels must be an array")
    updated = await _control(request).report_channels(
        [ReportedChannel.from_wire(item) for item in channels],
        device_id=document.get("DeviceId"),
        gateway_id=document.get("GatewayId"),
        ip=document.get("Ip"),
        port=document.get("Port"),
        sync=bool(document.get("Sync", True)),
    )
    return web.json_response({"UpdatedDeviceIds": updated})


def _relay_routes(relay: GatewayRelay) -> list[tuple[str, str, AdminHandler]]:
    async def get_relay(request: web.Request) -> web.StreamResponse:
        return web.json_response({"Connected": relay.connected_gateways()})

    async def delete_relay_link(request: web.Request) -> web.StreamResponse:
        gateway_id = request.match_info["gateway_id"]
        if not await relay.disconnect(gateway_id):
            raise LookupError(f"gateway {gateway_id} is not connected")
        return web.json_response({"Dropped": gateway_id})

    return [("GET", "/relay", get_relay), ("DELETE", "/relay/{gateway_id}", delete_relay_link)]


def add_admin_routes(app: web.Application, relay: GatewayRelay | None = None) -> None:
    """Register the admin endpoints on ``app`` (which must carry the emulator state)."""
    app[EMULATOR_CONTROL] = EmulatorControl(app[EMULATOR_STATE])
    routes: list[tuple[str, str, AdminHandler]] = [
        ("GET", "/calls", get_calls),
        ("DELETE", "/calls", delete_calls),
        ("GET", "/faults", get_faults),
        ("POST", "/faults", post_fault),
        ("DELETE", "/faults", delete_faults),
        ("PUT", "/rate-limit", put_rate_limit),
        ("POST", "/gateways", post_gateway),
        ("PUT", "/gateways/{gateway_id}/status", put_gateway_status),
        ("PUT", "/devices/{device_id}/connection", put_device_connection),
        ("POST", "/channel-reports", post_channel_report),
    ]
    if relay is not None:
        routes.extend(_relay_routes(relay))
    for method, path, handler in routes:
        app.router.add_route(method, ADMIN_PREFIX + path, _guarded(handler))
