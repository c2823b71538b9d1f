"""The platform end of the gateway relay: ``GET /relay``, a WebSocket per gateway.

Sites sit behind NAT, so each gateway dials out to the platform and keeps one WebSocket open
(docs/relay-protocol.md). Over it the emulator sends the forwarded device-control actions and
RefreshDeviceChannel as ``Command`` frames, waits for the matching ``Result``, and applies the
gateway's ``Event`` frames (device and channel state) to the store.

Delivery: a command waits for its answer until its deadline. If the link drops meanwhile, the
command stays pending; should the gateway reconnect before the deadline, the command is sent
again on the new link with the same RequestId (the gateway answers a RequestId once, so nothing
runs twice); otherwise the caller gets ``FailedOperation.DeviceResponseTimeOut`` at the deadline.
A command for a gateway with no link fails at once with ``ResourceUnavailable.DevOffline``.

Gateway status: connecting sets the gateway online (its devices follow), losing the link sets it
offline. A gateway that never connected keeps the status the seed or the admin API gave it, so
tests that simulate a site through the admin API work as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.iss import API_VERSION, SERVICE
from gateway.iss.envelope import failure, new_request_id
from gateway.iss.errors import IssError
from gateway.iss.signing import verify_request
from gateway.relay import CONNECT_ACTION, GATEWAY_HEADER

from .actions.devices import UNSUPPORTED_ACCESS, device_channels, require_reachable, sync_channel_states
from .actions.rules import ENTITY_ID
from .api import envelope_response
from .control import apply_gateway_status
from .dispatch import ACTIONS
from .records import (
    ACCESS_GATEWAY,
    DEVICE_OFFLINE,
    DEVICE_ONLINE,
    GATEWAY_OFFLINE,
    GATEWAY_ONLINE,
    Channel,
    Device,
    Gateway,
)
from .reports import ChannelQuery, ReportedChannel
from .schema import validate
from .state import EmulatorState, ForwardedCall
from .store import CloudStore

logger = logging.getLogger(__name__)

RELAY_PATH: Final = "/relay"
DEFAULT_DEADLINE_SECONDS: Final = 10.0
HEARTBEAT_SECONDS: Final = 20.0
CLOSE_TIMEOUT_SECONDS: Final = 2.0
SHUTDOWN_WAIT_SECONDS: Final = 2.0
REPLACED_CLOSE_CODE: Final = 4000
"""Close code of a link that a newer connection of the same gateway replaced."""
REFRESH_ACTION: Final = "RefreshDeviceChannel"
INVALID_GATEWAY_ID: Final = "InvalidParameterValue.InvalidGatewayId"


@dataclass(eq=False)
class GatewayLink:
    """One accepted WebSocket of one gateway; ``number`` counts that gateway's connections."""

    gateway_id: str
    ws: web.WebSocketResponse
    number: int
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame; False when the link is closing (the caller's deadline still runs)."""
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(json.dumps(frame, ensure_ascii=False))
        except ConnectionError as error:
            logger.debug("gateway %s link %d: send failed: %s", self.gateway_id, self.number, error)
            return False
        return True


@dataclass(eq=False)
class PendingCommand:
    """A command waiting for its Result; it outlives a link so it can be re-sent on the next one."""

    request_id: str
    gateway_id: str
    frame: dict[str, Any]
    answer: asyncio.Future[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ChannelStateUpdate:
    """One entry of a DeviceState event's ``Channels``; None leaves that field unchanged."""

    channel_id: str
    state: int | None
    status: int | None


@dataclass(frozen=True, slots=True)
class DeviceStateUpdate:
    """A ``DeviceState`` event: the device's link state and some of its channels' states."""

    device_id: str
    online: bool
    channels: tuple[ChannelStateUpdate, ...]

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> DeviceStateUpdate:
        """Parse the event; raises ValueError on a malformed one."""
        device_id, online, channels = frame.get("DeviceId"), frame.get("Online"), frame.get("Channels", [])
        if not isinstance(device_id, str) or not device_id:
            raise ValueError("DeviceId must be a non-empty string")
        if not isinstance(online, bool):
            raise ValueError("Online must be a boolean")
        if not isinstance(channels, list):
            raise ValueError("Channels must be an array")
        return cls(device_id, online, tuple(_channel_update(item) for item in channels))


def _flag(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    if value is None:
        return None
    if value not in (0, 1) or isinstance(value, bool):
        raise ValueError(f"{name} must be 0 or 1")
    return int(value)


def _channel_update(item: Any) -> ChannelStateUpdate:
    if not isinstance(item, dict) or not isinstance(item.get("ChannelId"), str):
        raise ValueError("each channel needs a string ChannelId")
    return ChannelStateUpdate(item["ChannelId"], _flag(item, "State"), _flag(item, "Status"))


def apply_device_state(store: CloudStore, device: Device, update: DeviceStateUpdate) -> None:
    """Record what the gateway says of a device, inside a transaction.

    The device's link state moves its channels' ``State`` (as everywhere in the emulator); a
    listed channel then takes its own ``State`` (only while the device is online) and ``Status``.
    """
    connection = DEVICE_ONLINE if update.online else DEVICE_OFFLINE
    if device.connection != connection:
        device.connection = connection
        store.put(device)
        sync_channel_states(store, device)
    device_online = device.status == DEVICE_ONLINE
    channels = {channel.channel_id: channel for channel in device_channels(store, device.device_id)}
    for item in update.channels:
        channel = channels.get(item.channel_id)
        if channel is None:
            logger.debug("device %s: DeviceState names unknown channel %s", device.device_id, item.channel_id)
            continue
        if item.state is not None:
            channel.state = int(device_online and bool(item.state))
        if item.status is not None:
            channel.status = item.status
        store.put(channel)


def parse_channel_list(data: Any) -> list[ReportedChannel]:
    """The ``Data`` of a RefreshDeviceChannel Result; raises ValueError on a malformed one."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError("Data must be an array of channels")
    channels = []
    for item in data:
        if isinstance(item, dict) and not item.get("Name") and item.get("ChannelCode"):
            item = {**item, "Name": item["ChannelCode"]}  # a nameless source is shown by its code
        channels.append(ReportedChannel.from_wire(item))
    return channels


def gateway_error(error: Any) -> IssError:
    """The :class:`IssError` a Result's ``Error`` object stands for (unknown codes kept in the text)."""
    if not isinstance(error, dict):
        return IssError("FailedOperation", "The gateway answered with a malformed error.")
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    try:
        return IssError(code, message or None)
    except ValueError:
        return IssError("FailedOperation", f"{code}: {message}")


def response_fields(response: dict[str, Any]) -> dict[str, Any]:
    """A Result's ``Response`` as output fields for the caller, or the error it carries, raised."""
    if response.get("Error"):
        raise gateway_error(response["Error"])
    return {name: value for name, value in response.items() if name != "RequestId"}


class GatewayRelay:
    """The platform end of every gateway's link; one per emulator.

    ``deadline`` (seconds) bounds each command; tests may change it between calls.
    """

    def __init__(
        self,
        state: EmulatorState,
        *,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._state = state
        self.deadline = deadline
        self._heartbeat = heartbeat
        self._links: dict[str, GatewayLink] = {}
        self._published_online: set[str] = set()
        self._accepted: Counter[str] = Counter()
        self._pending: dict[str, PendingCommand] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()
        self._event_handlers: dict[str, Callable[[str, dict[str, Any]], Awaitable[None]]] = {
            "DeviceState": self._on_device_state,
        }

    # -- what tests and the emulator ask -------------------------------------------------

    def is_connected(self, gateway_id: str) -> bool:
        return gateway_id in self._links

    def connected_gateways(self) -> list[str]:
        return sorted(self._links)

    def accepted(self, gateway_id: str) -> int:
        """How many connections of ``gateway_id`` the relay has accepted since it started."""
        return self._accepted[gateway_id]

    async def wait_connected(self, gateway_id: str, *, accepted: int = 1) -> None:
        """Until the gateway is connected, shown online, and ``accepted`` connections were accepted."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    gateway_id in self._published_online
                    and gateway_id in self._links
                    and self._accepted[gateway_id] >= accepted
                )
            )

    async def wait_disconnected(self, gateway_id: str) -> None:
        """Until the gateway has no link and its status says so."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: gateway_id not in self._links and gateway_id not in self._published_online
            )

    async def disconnect(self, gateway_id: str) -> bool:
        """Close the gateway's link as a network failure would (test support); False if none."""
        link = self._links.get(gateway_id)
        if link is None:
            return False
        await link.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by the emulator")
        return True

    # -- commands ------------------------------------------------------------------------

    async def forward(self, call: ForwardedCall) -> dict[str, Any] | None:
        """The emulator's forwarder: route a device-control action to the device's gateway."""
        schema = ACTIONS[call.action].schema
        if schema is not None:
            validate(schema, call.params)
        device = self._target_device(call.params)
        if device.access_protocol != ACCESS_GATEWAY:
            raise IssError(UNSUPPORTED_ACCESS, "The emulator relays device control to gateway devices only.")
        require_reachable(device)
        return await self.command(device.gateway_id, call.action, call.params, request_id=call.request_id)

    async def fetch_channels(self, query: ChannelQuery) -> list[ReportedChannel] | None:
        """The emulator's channel source: ask the device's gateway for the device's channels.

        A gateway that is online without a link (seeded, or set online with the admin API and
        never connected) has no one to ask: its stored channel report is used, as before the relay.
        """
        if not self.is_connected(query.gateway_id):
            gateway = self._state.store.get(Gateway, query.gateway_id)
            if gateway is not None and gateway.status == GATEWAY_ONLINE:
                return None
            raise IssError("ResourceUnavailable.DevOffline", "The device's gateway is not connected.")
        answer = await self.command(query.gateway_id, REFRESH_ACTION, {"DeviceId": query.device_id})
        try:
            return parse_channel_list(answer.get("Data"))
        except ValueError as error:
            logger.warning("gateway %s sent a malformed channel list: %s", query.gateway_id, error)
            raise IssError("FailedOperation", "The gateway's channel list is malformed.") from None

    async def command(
        self, gateway_id: str, action: str, params: dict[str, Any], *, request_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command to the gateway and return its answer's output fields.

        Raises the gateway's error as :class:`IssError`, ``ResourceUnavailable.DevOffline`` when
        the gateway has no link, ``FailedOperation.DeviceResponseTimeOut`` after the deadline.
        """
        link = self._links.get(gateway_id)
        if link is None:
            raise IssError("ResourceUnavailable.DevOffline", "The device's gateway is not connected.")
        request_id = request_id or new_request_id()
        if request_id in self._pending:
            raise RuntimeError(f"RequestId {request_id} is already in flight")
        frame = {
            "Type": "Command",
            "RequestId": request_id,
            "Action": action,
            "Version": API_VERSION,
            "Params": params,
        }
        pending = PendingCommand(request_id, gateway_id, frame, asyncio.get_running_loop().create_future())
        self._pending[request_id] = pending
        logger.debug("gateway %s: command %s (request %s)", gateway_id, action, request_id)
        try:
            async with asyncio.timeout(self.deadline):
                await link.send(frame)
                response = await pending.answer
        except TimeoutError:
            logger.info(
                "gateway %s: %s (request %s) got no answer in %.1f s",
                gateway_id,
                action,
                request_id,
                self.deadline,
            )
            raise IssError("FailedOperation.DeviceResponseTimeOut") from None
        finally:
            del self._pending[request_id]
        return response_fields(response)

    def _target_device(self, params: dict[str, Any]) -> Device:
        """The device a command addresses: ChannelId → its device, else DeviceId."""
        store = self._state.store
        channel_id, device_id = params.get("ChannelId"), params.get("DeviceId")
        if channel_id:
            channel = store.get(Channel, channel_id)
            if channel is None:
                raise _unknown_id(channel_id, "InvalidParameterValue.InvalidChannelId", "Channel")
            device_id = channel.device_id
        if not device_id:
            raise IssError("MissingParameter", "The parameter `ChannelId` is missing.")
        device = store.get(Device, device_id)
        if device is None:
            raise _unknown_id(device_id, "InvalidParameterValue.InvalidDeviceId", "Device")
        return device

    # -- links ---------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> str:
        """Check a ConnectGateway upgrade; return the GatewayId or raise the iss error to answer."""
        state = self._state
        verify_request(
            method="GET",
            headers=request.headers,
            body=b"",
            query=request.query_string,
            keys=state.keys,
            now=state.clock(),
            expected_host=state.endpoint,
            service=SERVICE,
        )
        if request.headers.get("X-TC-Token"):
            raise IssError("AuthFailure.TokenFailure", "X-TC-Token must not be sent with a long-term key.")
        version, action = request.headers.get("X-TC-Version"), request.headers.get("X-TC-Action")
        if not version or not action:
            raise IssError("MissingParameter", "X-TC-Version and X-TC-Action are required.")
        if version != API_VERSION:
            raise IssError("NoSuchVersion", f"Version {version!r} does not exist; use {API_VERSION}.")
        if action != CONNECT_ACTION:
            raise IssError("InvalidAction", f"The relay accepts only {CONNECT_ACTION}, not {action!r}.")
        gateway_id = request.headers.get(GATEWAY_HEADER, "").strip()
        if not gateway_id:
            raise IssError("MissingParameter", f"The {GATEWAY_HEADER} header is missing.")
        if not ENTITY_ID.fullmatch(gateway_id) or state.store.get(Gateway, gateway_id) is None:
            raise IssError(INVALID_GATEWAY_ID, f"Gateway {gateway_id} does not exist.")
        return gateway_id

    def new_socket(self) -> web.WebSocketResponse:
        return web.WebSocketResponse(heartbeat=self._heartbeat, timeout=CLOSE_TIMEOUT_SECONDS)

    async def serve(self, gateway_id: str, ws: web.WebSocketResponse) -> None:
        """Serve one prepared WebSocket of ``gateway_id`` until it closes."""
        self._accepted[gateway_id] += 1
        link = GatewayLink(gateway_id, ws, self._accepted[gateway_id])
        previous, self._links[gateway_id] = self._links.get(gateway_id), link
        logger.info("gateway %s connected (link %d)", gateway_id, link.number)
        try:
            if previous is not None:
                self._own(self._close_replaced(previous))
            await self._resend_pending(link)
            await self._publish_status(gateway_id)
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_frame(link, message.data)
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            if self._links.get(gateway_id) is link:
                del self._links[gateway_id]
                logger.info("gateway %s disconnected (link %d)", gateway_id, link.number)
            try:
                await self._publish_status(gateway_id)
            finally:
                link.finished.set()

    async def close(self) -> None:
        """At emulator shutdown: fail pending commands, close every link, wait for them (bounded)."""
        for pending in self._pending.values():
            if not pending.answer.done():
                pending.answer.set_exception(
                    IssError("FailedOperation.DeviceResponseTimeOut", "The platform is shutting down.")
                )
        links = list(self._links.values())
        for link in links:
            await link.ws.close(code=WSCloseCode.GOING_AWAY, message=b"platform shutting down")
        if links:
            waiting = asyncio.gather(*(link.finished.wait() for link in links))
            try:
                await asyncio.wait_for(waiting, SHUTDOWN_WAIT_SECONDS)
            except TimeoutError:
                logger.warning("%d gateway links did not finish closing", len(links))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _own(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task the relay keeps and cancels at :meth:`close`."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_replaced(self, link: GatewayLink) -> None:
        logger.info("gateway %s: link %d replaced by a newer connection", link.gateway_id, link.number)
        await link.ws.close(code=REPLACED_CLOSE_CODE, message=b"replaced by a newer connection")

    async def _resend_pending(self, link: GatewayLink) -> None:
        """Send the gateway's unanswered commands again; the same RequestId makes it answer once."""
        waiting = [
            pending
            for pending in self._pending.values()
            if pending.gateway_id == link.gateway_id and not pending.answer.done()
        ]
        for pending in waiting:
            logger.info(
                "gateway %s: re-sending request %s on link %d",
                link.gateway_id,
                pending.request_id,
                link.number,
            )
            await link.send(pending.frame)

    async def _publish_status(self, gateway_id: str) -> None:
        """Make the stored gateway status say whether it has a link (decided under the store lock)."""
        store = self._state.store
        async with store.transaction():
            gateway = store.get(Gateway, gateway_id)
            wanted = GATEWAY_ONLINE if gateway_id in self._links else GATEWAY_OFFLINE
            if gateway is not None and gateway.status != wanted:
                apply_gateway_status(store, gateway, wanted)
                logger.info("gateway %s is now %s", gateway_id, "online" if wanted else "offline")
        if gateway_id in self._links:
            self._published_online.add(gateway_id)
        else:
            self._published_online.discard(gateway_id)
        async with self._changed:
            self._changed.notify_all()

    # -- frames from gateways ------------------------------------------------------------

    async def _on_frame(self, link: GatewayLink, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            logger.warning("gateway %s sent a frame that is not JSON", link.gateway_id)
            return
        if not isinstance(frame, dict):
            logger.warning("gateway %s sent a frame that is not an object", link.gateway_id)
            return
        kind = frame.get("Type")
        if kind == "Result":
            self._on_result(link, frame)
        elif kind == "Event":
            await self._on_event(link, frame)
        else:
            logger.debug("gateway %s: ignoring a frame of type %r", link.gateway_id, kind)

    def _on_result(self, link: GatewayLink, frame: dict[str, Any]) -> None:
        request_id = frame.get("RequestId")
        pending = self._pending.get(request_id) if isinstance(request_id, str) else None
        if pending is None or pending.gateway_id != link.gateway_id:
            logger.debug(
                "gateway %s: no command waits for result %r (late or unknown)", link.gateway_id, request_id
            )
            return
        if pending.answer.done():
            logger.debug("gateway %s: second result for request %s ignored", link.gateway_id, request_id)
            return
        response = frame.get("Response")
        if isinstance(response, dict):
            pending.answer.set_result(response)
        else:
            logger.warning(
                "gateway %s: result for request %s has no Response object", link.gateway_id, request_id
            )
            pending.answer.set_exception(IssError("FailedOperation", "The gateway's answer is malformed."))

    async def _on_event(self, link: GatewayLink, frame: dict[str, Any]) -> None:
        if self._links.get(link.gateway_id) is not link:
            logger.debug("gateway %s: event on replaced link %d ignored", link.gateway_id, link.number)
            return
        name = frame.get("Event")
        handler = self._event_handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            logger.debug("gateway %s: ignoring unknown event %r", link.gateway_id, name)
            return
        await handler(link.gateway_id, frame)

    async def _on_device_state(self, gateway_id: str, frame: dict[str, Any]) -> None:
        try:
            update = DeviceStateUpdate.from_frame(frame)
        except ValueError as error:
            logger.warning("gateway %s sent a malformed DeviceState event: %s", gateway_id, error)
            return
        store = self._state.store
        async with store.transaction():
            device = store.get(Device, update.device_id)
            if device is None or device.gateway_id != gateway_id:
                logger.warning(
                    "gateway %s: DeviceState for a device it does not own: %s", gateway_id, update.device_id
                )
                return
            was = device.status
            apply_device_state(store, device, update)
        if device.status != was:
            logger.info(
                "device %s (gateway %s): status %d -> %d", device.device_id, gateway_id, was, device.status
            )


def _unknown_id(value: Any, invalid_code: str, kind: str) -> IssError:
    """A malformed id gets the action's Invalid…Id code, a well-formed unknown one ResourceNotFound."""
    if isinstance(value, str) and ENTITY_ID.fullmatch(value):
        return IssError("ResourceNotFound", f"{kind} {value} does not exist.")
    return IssError(invalid_code, f"{value!r} is not a valid {kind.lower()} id.")


GATEWAY_RELAY = web.AppKey("gateway_relay", GatewayRelay)


async def handle_relay_upgrade(request: web.Request) -> web.StreamResponse:
    """``GET /relay``: verify the signed ConnectGateway upgrade, then serve the gateway's link.

    A refusal is an iss error envelope in an HTTP 200 answer (no upgrade), like the API's.
    """
    relay = request.app[GATEWAY_RELAY]
    try:
        gateway_id = relay.authenticate(request)
    except IssError as error:
        logger.info(
            "relay connection refused: %s (gateway %s)", error.code, request.headers.get(GATEWAY_HEADER, "-")
        )
        return envelope_response(failure(error, new_request_id()))
    ws = relay.new_socket()
    if not ws.can_prepare(request).ok:
        refusal = IssError("UnsupportedProtocol", f"{CONNECT_ACTION} needs a WebSocket upgrade.")
        return envelope_response(failure(refusal, new_request_id()))
    await ws.prepare(request)
    await relay.serve(gateway_id, ws)
    return ws


def add_relay_routes(app: web.Application, relay: GatewayRelay, path: str = RELAY_PATH) -> None:
    """Serve the relay at ``path`` of ``app`` and close its links when the app shuts down."""

    async def close_relay(_: web.Application) -> None:
        await relay.close()

    app[GATEWAY_RELAY] = relay
    app.router.add_get(path, handle_relay_upgrade, allow_head=False)
    app.on_shutdown.append(close_relay)
