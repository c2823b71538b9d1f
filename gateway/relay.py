"""The outbound WebSocket to the platform: commands in, answers and events out.

Sites sit behind NAT, so the gateway dials out (docs/relay-protocol.md). The link reconnects with
capped exponential backoff and full jitter; the backoff starts over only after a link that stayed
up for a while, so a platform that accepts and at once closes (another process connected with the
same GatewayId) is not hammered. Commands are executed at most once per RequestId: an answer is
remembered for a while, and a command already running is joined rather than started again, so a
platform that re-sends after a reconnect gets the first execution's answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
from yarl import URL

from .iss import API_VERSION
from .iss.errors import IssError
from .iss.signing import Tc3Signer

_LOGGER = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]
"""``(action, params, request_id) -> iss Response object`` (success or ``Error``)."""

CONNECT_ACTION: Final = "ConnectGateway"
GATEWAY_HEADER: Final = "X-IVC-Gateway-Id"
REMEMBERED_ANSWERS: Final = 1024
STABLE_LINK_SECONDS: Final = 30.0
"""A link up at least this long counts as healthy: the reconnect backoff starts over after it."""
HANDSHAKE_TIMEOUT_SECONDS: Final = 30.0


class Backoff:
    """Capped exponential backoff with full jitter; :meth:`reset` after a healthy connection."""

    def __init__(self, base: float = 0.5, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt."""
        self.failures += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        """Start over from the base delay."""
        self.failures = 0


class RelayLink:
    """One gateway's link to the relay; run :meth:`run` as an owned task, cancel it to stop."""

    def __init__(
        self,
        url: str,
        gateway_id: str,
        signer: Tc3Signer,
        handler: CommandHandler,
        *,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
        heartbeat: float = 20.0,
        backoff: Backoff | None = None,
    ) -> None:
        """``clock`` (UNIX seconds) signs the upgrade and times link health; ``backoff`` replaces
        the default ``Backoff(cap=max_backoff)`` (tests inject one to watch it)."""
        self._url = URL(url)
        self._gateway_id = gateway_id
        self._signer = signer
        self._handler = handler
        self._backoff = backoff or Backoff(cap=max_backoff)
        self._clock = clock
        self._heartbeat = heartbeat
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._running: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connect_listeners: list[Callable[[], None]] = []
        self.connected = asyncio.Event()
        self.connections = 0

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every (re)connection: the platform then marks every device of
        the gateway online, so whoever knows better must send its state again."""
        self._connect_listeners.append(listener)

    async def run(self) -> None:
        """Connect, serve, reconnect, until cancelled."""
        timeout = aiohttp.ClientTimeout(total=HANDSHAKE_TIMEOUT_SECONDS)  # bounds the upgrade only
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while True:
                    try:
                        await self._serve_once(session)
                    except (aiohttp.ClientError, OSError, TimeoutError) as err:
                        _LOGGER.warning(
                            "relay link failed: %s", err, extra={"relay": str(self._url.with_query(None))}
                        )
                    delay = self._backoff.next_delay()
                    _LOGGER.info("relay reconnect in %.1f s", delay)
                    await asyncio.sleep(delay)
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def send_event(self, event: str, body: dict[str, Any]) -> bool:
        """Send an unsolicited event; False when the link is down (the caller keeps the state)."""
        ws = self._ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_str(json.dumps({"Type": "Event", "Event": event, **body}, ensure_ascii=False))
        except ConnectionError as err:  # closing under our feet
            _LOGGER.debug("relay event %s not sent: %s", event, err)
            return False
        return True

    def _upgrade_headers(self) -> dict[str, str]:
        host = self._url.raw_authority
        signed = self._signer.sign(
            action=CONNECT_ACTION,
            body=b"",
            host=host,
            timestamp=int(self._clock()),
            version=API_VERSION,
            method="GET",
        )
        return {**signed.headers, GATEWAY_HEADER: self._gateway_id}

    async def _serve_once(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(
            self._url, headers=self._upgrade_headers(), heartbeat=self._heartbeat
        ) as ws:
            self._ws = ws
            self.connections += 1
            connected_at = self._clock()
            self.connected.set()
            _LOGGER.info("relay connected", extra={"gateway_id": self._gateway_id})
            for listener in self._connect_listeners:
                listener()
            try:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        self._on_text(ws, message.data)
                    elif message.type is aiohttp.WSMsgType.ERROR:
                        break
            finally:
                self._ws = None
                self.connected.clear()
                if self._clock() - connected_at >= STABLE_LINK_SECONDS:
                    self._backoff.reset()
                _LOGGER.info("relay disconnected", extra={"gateway_id": self._gateway_id})

    def _on_text(self, ws: aiohttp.ClientWebSocketResponse, data: str) -> None:
        try:
            frame = json.loads(data)
            if not isinstance(frame, dict):
                raise TypeError("a frame must be an object")
            if frame.get("Type") != "Command":
                return
            request_id, action = frame["RequestId"], frame["Action"]
            if not isinstance(request_id, str) or not request_id or not isinstance(action, str) or not action:
                raise TypeError("RequestId and Action must be non-empty strings")
            params = frame.get("Params") or {}
            if not isinstance(params, dict):
                raise TypeError("Params must be an object")
        except (ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("relay sent a malformed frame: %s", err)
            return
        answer: asyncio.Task[dict[str, Any]] | dict[str, Any] | None = self._answers.get(request_id)
        if answer is None:
            answer = self._running.get(request_id)
        if answer is None:
            answer = self._running[request_id] = self._own(self._execute(action, params, request_id))
        # Answer on the link the command arrived on (a re-sent command waits for the first run).
        self._own(self._reply(ws, request_id, answer))

    def _own(self, coroutine: Any) -> asyncio.Task[Any]:
        """Start a task this link keeps a handle on and cancels when it stops."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _execute(self, action: str, params: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Run the handler once; a handler that raises still yields an answer (an iss error)."""
        try:
            response = await self._handler(action, params, request_id)
        except IssError as err:
            response = {"Error": err.to_dict(), "RequestId": request_id}
        except Exception:
            _LOGGER.exception("relay command %s (request %s) failed", action, request_id)
            response = {"Error": IssError("InternalError").to_dict(), "RequestId": request_id}
        finally:
            self._running.pop(request_id, None)
        self._answers[request_id] = response
        while len(self._answers) > REMEMBERED_ANSWERS:
            self._answers.popitem(last=False)
        return response

    async def _reply(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        request_id: str,
        answer: asyncio.Task[dict[str, Any]] | dict[str, Any],
    ) -> dict[str, Any]:
        response = await answer if isinstance(answer, asyncio.Task) else answer
        if ws.closed:
            return response
        result = {"Type": "Result", "RequestId": request_id, "Response": response}
        try:
            await ws.send_str(json.dumps(result, ensure_ascii=False))
        except ConnectionError as err:  # the link closed meanwhile; the platform re-sends on the next
            _LOGGER.debug("relay result %s not sent: %s", request_id, err)
        return response
