"""The one table of iss actions the gateway executes, and the one map from bridge errors to codes.

Commands reach this module from the local API (``POST /``) and from the relay; both get the same
validation, the same handlers and the same error codes. An action's entry holds its parameter
schema (types, enums, ranges from the spec, with the documented codes) and its handler; a handler
raises :class:`IssError` for its own refusals and lets bridge errors through, which
:data:`BRIDGE_ERROR_CODES` turns into iss codes here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

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

from .iss.envelope import failure, success
from .iss.errors import IssError
from .iss.schema import Schema, string, validate

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
        try:
            result = await self._execute(action_name, params)
        except IssError as err:
            return failure(err, request_id)["Response"]
        return success(result, request_id)["Response"]

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


ACTIONS: Final[Mapping[str, Action]] = {
    "RefreshDeviceChannel": Action(refresh_device_channel, {"DeviceId": string(required=True)}),
}
"""Every action the gateway executes. Each iss action name appears here and nowhere else."""
