"""DescribeGatewayMonitor and DescribeGatewayVersion, answered by the gateway itself.

In the cloud these describe a gateway from the platform's side; asked of the gateway (local API
or relay) they are computed from what the gateway knows first-hand:

* ``DeviceTotal``/``ChannelTotal``: the devices this gateway serves (its inventory) and their
  channels that still exist on the device (channels gone from an NVR are not counted);
* ``…Online``/``…Offline``: the debounced health checks; a device or channel not checked yet
  counts as offline (Offline = Total − Online, as the platform computes it);
* ``ChannelPull``/``ChannelUnPull``: channels whose stream the gateway is pulling right now (the
  recorder wrote bytes recently) and the rest;
* ``UpFlow``: kbit/s sent to the cloud over the last minute (API requests, relay events, and
  media once uploads exist), from :class:`~gateway.metrics.GatewayMetrics`.

``GatewayId`` must be this gateway's: a malformed id is
``InvalidParameterValue.InvalidGatewayId``, another gateway's ``ResourceNotFound`` (the codes
both actions document). The handlers are registered once, in :data:`gateway.dispatch.ACTIONS`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from . import __version__
from .iss.errors import IssError
from .iss.schema import Schema, string

if TYPE_CHECKING:
    from .daemon import Gateway

SERVICE_NAME: Final = "ivc-gateway"
INVALID_GATEWAY_ID: Final = "InvalidParameterValue.InvalidGatewayId"
_ENTITY_ID: Final = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+){4}")

GATEWAY_QUERY: Final[Schema] = {
    "GatewayId": string(required=True, pattern=_ENTITY_ID, empty=INVALID_GATEWAY_ID, invalid=INVALID_GATEWAY_ID),
}
"""The parameters of both actions (``Region`` travels as a header)."""


def _require_this_gateway(gateway: Gateway, gateway_id: str) -> None:
    if gateway_id != gateway.config.gateway.gateway_id:
        raise IssError("ResourceNotFound", f"This is not gateway {gateway_id}.")


async def describe_gateway_monitor(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """Devices and channels by state, pulled streams and upstream traffic, from first-hand data."""
    _require_this_gateway(gateway, params["GatewayId"])
    supervisor = gateway.supervisor
    if supervisor is None:
        raise IssError("FailedOperation", "The gateway is still starting.")
    return {"Data": await supervisor.monitor_figures()}


async def describe_gateway_version(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """The gateway's one service and its version; it does not know of newer releases, so
    ``LatestVersion`` is its own and ``IsUpdate`` false."""
    _require_this_gateway(gateway, params["GatewayId"])
    version = f"v{__version__}"
    service = {"Name": SERVICE_NAME, "Version": version, "LatestVersion": version, "IsUpdate": False, "UpgradeInfo": []}
    return {"Data": {"Services": [service]}}
