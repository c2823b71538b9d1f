"""The one table of iss actions the gateway executes, and the one map from bridge errors to codes.

Commands reach this module from the local API (``POST /``) and from the relay; both get the same
validation, the same handlers and the same error codes. An action's entry holds its parameter
schema (types, enums, ranges from the spec, with the documented codes) and its handler; a handler
raises :class:`IssError` for its own refusals and lets bridge errors through, which
:data:`BRIDGE_ERROR_CODES` turns into iss codes here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from bridges.errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceBusy,
    DeviceError,
    DeviceRequestRejected,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)
from bridges.onvif.session import CameraSession

from .inventory import ChannelRecord
from .iss.envelope import failure, success
from .iss.errors import IssError
from .iss.schema import Schema, integer, string, validate
from .local_recording import (
    BATCH_DELETE_VIDEO_DOWNLOAD_TASK,
    CONTROL_RECORD,
    CONTROL_RECORD_TIMELINE,
    CREATE_VIDEO_DOWNLOAD_TASK,
    DESCRIBE_VIDEO_BIT_RATE,
    LIST_VIDEO_DOWNLOAD_TASK,
    PLAY_RECORD,
    batch_delete_video_download_task,
    control_record,
    control_record_timeline,
    create_video_download_task,
    describe_video_bit_rate,
    list_video_download_task,
    play_record,
)
from .monitor import GATEWAY_QUERY, describe_gateway_monitor, describe_gateway_version
from .presets import MAX_INDEX, MIN_INDEX, PRESET_COMMANDS
from .ptz import MAX_SPEED, PTZ_COMMANDS
from .snapshots import (
    DEFAULT_EXPIRE_DAYS,
    DEFAULT_PAGE_SIZE,
    EXPIRE_DAYS,
    SnapshotRequest,
    channel_key,
    page_bounds,
    snapshot_window,
    with_credentials,
)

if TYPE_CHECKING:
    from .daemon import Gateway

_LOGGER = logging.getLogger(__name__)

Handler = Callable[["Gateway", dict[str, Any]], Awaitable[dict[str, Any] | None]]

BRIDGE_ERROR_CODES: Final[Mapping[type[DeviceError], str]] = {
    DeviceUnreachable: "ResourceUnavailable.DevOffline",
    DeviceTimeout: "FailedOperation.DeviceResponseTimeOut",
    DeviceAuthFailed: "ResourceUnavailable.DevNoRegister",
    DeviceBadResponse: "FailedOperation",
    DeviceBusy: "FailedOperation.DeviceResponseTimeOut",
    DeviceRequestRejected: "InvalidParameterValue",
    DeviceUnsupported: "UnsupportedOperation",
}
"""Each bridge error type → one iss code; an action may name its own code for "unsupported"."""

CURRENT_REQUEST_ID: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("iss_request_id", default="")
"""The RequestId of the command being executed, for handlers that record it (snapshot SessionId).
Set by :meth:`Dispatcher.handle` in the command's own context, so concurrent commands each see theirs."""


@dataclass(frozen=True, slots=True)
class Action:
    """One executable action: its parameters and its handler."""

    handler: Handler
    schema: Schema = field(default_factory=dict)
    unsupported_code: str | None = None


def bridge_error_code(error: DeviceError, action: Action) -> str:
    """The iss code for a bridge error raised while executing ``action``."""
    if isinstance(error, DeviceUnsupported) and action.unsupported_code:
        return action.unsupported_code
    for kind, code in BRIDGE_ERROR_CODES.items():
        if isinstance(error, kind):
            return code
    return "FailedOperation"


class Dispatcher:
    """Validates, executes and answers iss actions against one running gateway."""

    def __init__(self, gateway: Gateway, table: Mapping[str, Action]) -> None:
        self._gateway = gateway
        self._table = table

    @property
    def actions(self) -> frozenset[str]:
        """The action names this gateway executes."""
        return frozenset(self._table)

    async def handle(self, action_name: str, params: Any, request_id: str) -> dict[str, Any]:
        """Run one action and return the iss ``Response`` object (success or ``Error``)."""
        token = CURRENT_REQUEST_ID.set(request_id)
        try:
            envelope = success(await self._execute(action_name, params), request_id)
        except IssError as err:
            envelope = failure(err, request_id)
        finally:
            CURRENT_REQUEST_ID.reset(token)
        response: dict[str, Any] = envelope["Response"]
        return response

    async def _execute(self, action_name: str, params: Any) -> dict[str, Any] | None:
        action = self._table.get(action_name)
        if action is None:
            raise IssError("InvalidAction", f"The action `{action_name}` is not executed by this gateway.")
        if not isinstance(params, dict):
            raise IssError("InvalidParameter.InvalidBodyFormat", "The request body must be a JSON object.")
        validate(action.schema, params)
        try:
            return await action.handler(self._gateway, params)
        except DeviceError as err:
            code = bridge_error_code(err, action)
            _LOGGER.info("%s failed on the device: %s -> %s", action_name, err, code)
            raise IssError(code, str(err)) from err
        except asyncio.CancelledError:
            raise
        except IssError:
            raise
        except Exception as err:  # noqa: BLE001 - a handler bug must answer, not kill the link
            _LOGGER.exception("%s failed unexpectedly", action_name)
            raise IssError("InternalError", f"{type(err).__name__}") from err


# --- handlers ---------------------------------------------------------------------------------


async def refresh_device_channel(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """The platform asks for a device's channels (docs/relay-protocol.md)."""
    record = await gateway.inventory.find_device(params["DeviceId"])
    if record is None:
        raise IssError("InvalidParameterValue.InvalidDeviceId", "This gateway has no such device.")
    return {
        "Data": [
            {
                "ChannelCode": channel.source_token,
                "Name": channel.name,
                "PTZType": int(channel.ptz),
                "Resolution": "",
                "Manufacturer": record.manufacturer,
                "State": int(channel.state == "online"),
                "Status": int(channel.state == "online"),
            }
            for channel in record.channels
            if channel.state != "removed"
        ]
    }


# --- device control (ptz.py, presets.py, snapshots.py hold the logic) ---------------------------

INVALID_CHANNEL_ID: Final = "InvalidParameterValue.InvalidChannelId"
UNSUPPORTED_PTZ: Final = "InvalidParameterValue.UnSupportedPTZCMD"
UNSUPPORTED_PRESET: Final = "InvalidParameterValue.UnSupportedPresetCMD"

_ENTITY_ID: Final = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+){4}")
_CHANNEL_ID = string(required=True, empty=INVALID_CHANNEL_ID)
CONTROL_DEVICE_PTZ: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "Type": string(required=True, choices=PTZ_COMMANDS, invalid=UNSUPPORTED_PTZ),
    "Speed": integer(required=True, minimum=1, maximum=MAX_SPEED),
}
CONTROL_DEVICE_PRESET: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "Cmd": string(required=True, choices=PRESET_COMMANDS, invalid=UNSUPPORTED_PRESET),
    "Index": integer(required=True, minimum=MIN_INDEX, maximum=MAX_INDEX),
}
DESCRIBE_DEVICE_PRESET: Final[Schema] = {"ChannelId": _CHANNEL_ID}
CONTROL_DEVICE_SNAPSHOT: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "SnapNum": integer(required=True, minimum=1, maximum=10),
    "Interval": integer(required=True, minimum=1, maximum=1800),
    "Expire": integer(choices=EXPIRE_DAYS),
}
LIST_DEVICE_SNAPSHOTS: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "DeviceId": string(),
    "Start": integer(minimum=0),
    "End": integer(minimum=0),
    "PageNumber": integer(minimum=1, invalid="InvalidParameterValue.InvalidPageNumber"),
    "PageSize": integer(),
}


def known_channel(gateway: Gateway, channel_id: str) -> tuple[str, ChannelRecord]:
    """``(device identity, channel)`` of a ChannelId this gateway serves, from memory.

    As on the platform: a well-formed id (UUID-shaped) that names no channel is
    ``ResourceNotFound``, a malformed one ``InvalidParameterValue.InvalidChannelId``.
    """
    found = gateway.devices.channel(channel_id)
    if found is None:
        if _ENTITY_ID.fullmatch(channel_id):
            raise IssError("ResourceNotFound", f"Channel {channel_id} does not exist on this gateway.")
        raise IssError(INVALID_CHANNEL_ID, f"{channel_id!r} is not a valid channel id.")
    return found


def reachable_channel(gateway: Gateway, channel_id: str) -> tuple[str, ChannelRecord, CameraSession]:
    """A channel a command can reach now, with its device's session.

    ``ResourceUnavailable.DevOffline``: the device has no open session (unreachable, isolated,
    or not probed since start). ``ResourceUnavailable.ChannelOffline``: the device answers but
    the channel is not online (gone from the device: an NVR input that disappeared). A device
    that stops answering during the command is DevOffline too (the bridge error table).
    """
    identity, channel = known_channel(gateway, channel_id)
    if gateway.supervisor is not None and gateway.supervisor.is_disabled(identity):
        # Disabled in the cloud (UpdateDeviceStatus 3): not driven, as the platform would refuse.
        raise IssError("ResourceUnavailable.DevDisable", "The device is disabled in the cloud.")
    session = gateway.devices.session(identity)
    if session is None:
        raise IssError("ResourceUnavailable.DevOffline", "The channel's device is not reachable now.")
    if channel.state != "online":
        raise IssError("ResourceUnavailable.ChannelOffline", f"The channel is {channel.state}.")
    return identity, channel, session


@asynccontextmanager
async def device_deadline(seconds: float, session: CameraSession, identity: str, what: str) -> AsyncIterator[None]:
    """Bound a device command by ``[ptz] command_timeout``; running out is a bridge DeviceTimeout."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise DeviceTimeout(f"{what}: no answer within {seconds:g} s", host=session.address.host, device=identity) from None


async def control_device_ptz(gateway: Gateway, params: dict[str, Any]) -> None:
    """One PTZ step (gateway/ptz.py); answers once the device accepted the move."""
    identity, channel, session = reachable_channel(gateway, params["ChannelId"])
    async with device_deadline(gateway.config.ptz.command_timeout, session, identity, "ControlDevicePTZ"):
        await gateway.ptz.execute(session, identity, channel, params["Type"], params["Speed"])


async def control_device_preset(gateway: Gateway, params: dict[str, Any]) -> None:
    """Set, go to or delete a preset by index (gateway/presets.py)."""
    identity, channel, session = reachable_channel(gateway, params["ChannelId"])
    async with device_deadline(gateway.config.ptz.command_timeout, session, identity, "ControlDevicePreset"):
        await gateway.presets.execute(session, identity, channel, params["Cmd"], params["Index"])


async def describe_device_preset(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """The channel's presets, ``[{Index, Name}]`` in index order."""
    identity, channel, session = reachable_channel(gateway, params["ChannelId"])
    async with device_deadline(gateway.config.ptz.command_timeout, session, identity, "DescribeDevicePreset"):
        entries = await gateway.presets.describe(session, identity, channel)
    return {"Data": [{"Index": entry.index, "Name": entry.name} for entry in entries]}


async def control_device_snapshot(gateway: Gateway, params: dict[str, Any]) -> None:
    """Take ``SnapNum`` shots (gateway/snapshots.py); answers after the first is stored."""
    identity, channel, session = reachable_channel(gateway, params["ChannelId"])
    stream_url = channel.main_uri or channel.sub_uri
    if stream_url:
        record = await gateway.inventory.get(identity)
        username = record.username if record else ""
        stream_url = with_credentials(stream_url, username, gateway.devices.password_for(identity))
    request = SnapshotRequest(
        session_id=CURRENT_REQUEST_ID.get(),
        count=params["SnapNum"],
        interval_s=float(params["Interval"]),
        expire_days=params.get("Expire") or DEFAULT_EXPIRE_DAYS,
    )
    await gateway.snapshots.take(session, identity, channel, stream_url, request)


async def list_device_snapshots(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """A channel's stored shots (GBDeviceSnapInfo) in a time window, with signed links."""
    identity, channel = known_channel(gateway, params["ChannelId"])
    zone = ZoneInfo(gateway.config.gateway.timezone)
    start, end = snapshot_window(params.get("Start"), params.get("End"), gateway.clock(), zone)
    offset, limit = page_bounds(params.get("PageNumber", 1), params.get("PageSize", DEFAULT_PAGE_SIZE))
    page = await gateway.snapshots.archive.page(channel_key(identity, channel), start, end, offset, limit)
    return {
        "Data": [record.snap_info(zone, *gateway.local_api.snapshot_urls(record)) for record in page.records],
        "TotalCount": page.total,
    }


ACTIONS: Final[Mapping[str, Action]] = {
    "RefreshDeviceChannel": Action(refresh_device_channel, {"DeviceId": string(required=True)}),
    "ControlDevicePTZ": Action(control_device_ptz, CONTROL_DEVICE_PTZ, UNSUPPORTED_PTZ),
    "ControlDevicePreset": Action(control_device_preset, CONTROL_DEVICE_PRESET, UNSUPPORTED_PRESET),
    "DescribeDevicePreset": Action(describe_device_preset, DESCRIBE_DEVICE_PRESET),
    "ControlDeviceSnapshot": Action(control_device_snapshot, CONTROL_DEVICE_SNAPSHOT),
    "ListDeviceSnapshots": Action(list_device_snapshots, LIST_DEVICE_SNAPSHOTS),
    "DescribeGatewayMonitor": Action(describe_gateway_monitor, GATEWAY_QUERY),
    "DescribeGatewayVersion": Action(describe_gateway_version, GATEWAY_QUERY),
    # Local recordings on the gateway's disk (gateway/local_recording.py).
    "ControlRecordTimeline": Action(control_record_timeline, CONTROL_RECORD_TIMELINE),
    "PlayRecord": Action(play_record, PLAY_RECORD),
    "ControlRecord": Action(control_record, CONTROL_RECORD),
    "CreateVideoDownloadTask": Action(create_video_download_task, CREATE_VIDEO_DOWNLOAD_TASK),
    "ListVideoDownloadTask": Action(list_video_download_task, LIST_VIDEO_DOWNLOAD_TASK),
    "BatchDeleteVideoDownloadTask": Action(batch_delete_video_download_task, BATCH_DELETE_VIDEO_DOWNLOAD_TASK),
    "DescribeVideoBitRate": Action(describe_video_bit_rate, DESCRIBE_VIDEO_BIT_RATE),
}
"""Every action the gateway executes. Each iss action name appears here and nowhere else."""
