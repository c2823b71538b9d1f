"""The gateway end of the relay (gateway/relay.py) against a bare platform end on loopback.

The server below accepts every upgrade and hands each link to the test, which plays the
platform: it sends Command frames, reads Result/Event frames and closes links at will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from gateway.iss import API_VERSION
from gateway.iss.errors import IssError
from gateway.iss.signing import Tc3Signer, verify_request
from gateway.relay import CONNECT_ACTION, GATEWAY_HEADER, STABLE_LINK_SECONDS, Backoff, RelayLink

SECRET_ID = "AKIDrelayLinkTest"
SECRET_KEY = "relay-link-test-key"
GATEWAY_ID = "3c2f9a7e-1b4d-4e8a-9f06-5d7c1e2b3a48"
WAIT = 5.0


@dataclass(eq=False)
class ServerLink:
    """One accepted WebSocket as the platform sees it."""

    ws: web.WebSocketResponse
    headers: CIMultiDict[str]
    query: str
    frames: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def command(self, request_id: str, action: str = "ControlDevicePTZ", **params: Any) -> None:
        frame = {"Type": "Command", "RequestId": request_id, "Action": action, "Version": API_VERSION}
        await self.ws.send_str(json.dumps({**frame, "Params": params}))

    async def next_frame(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), WAIT)


class BarePlatform:
    """A relay server that accepts anything and queues each new link for the test."""

    def __init__(self) -> None:
        self.links: asyncio.Queue[ServerLink] = asyncio.Queue()
        app = web.Application()
        app.router.add_get("/relay", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/relay"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        link = ServerLink(ws, request.headers.copy(), request.query_string)
        self.links.put_nowait(link)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    link.frames.put_nowait(json.loads(message.data))
        finally:
            link.closed.set()
        return ws

    async def next_link(self) -> ServerLink:
        return await asyncio.wait_for(self.links.get(), WAIT)


class ScriptedHandler:
    """The gateway's command handler: records calls; actions in ``held`` wait for ``release``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.entered: asyncio.Queue[str] = asyncio.Queue()
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, action: str, params: dict[str, Any], request_id: str) -> dict[str, Any]:
        self.calls.append((action, params, request_id))
        self.entered.put_nowait(request_id)
        if action == "Fail":
            raise IssError("InvalidParameterValue.UnSupportedPTZCMD")
        if action == "Crash":
            raise RuntimeError("handler bug")
        if action in self.held:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return {"RequestId": request_id, "Echo": params}

    def runs(self, request_id: str) -> int:
        return sum(1 for _, _, seen in self.calls if seen == request_id)


class SteppedClock:
    """Wall time plus an offset the test moves (link health is judged on this clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def platform() -> AsyncIterator[BarePlatform]:
    bare = BarePlatform()
    async with bare.server:
        yield bare


def make_link(
    platform: BarePlatform,
    handler: ScriptedHandler,
    *,
    backoff: Backoff | None = None,
    clock: Any = time.time,
) -> RelayLink:
    return RelayLink(
        platform.url,
        GATEWAY_ID,
        Tc3Signer(SECRET_ID, SECRET_KEY),
        handler,
        clock=clock,
        backoff=backoff or Backoff(base=0.01, cap=0.05),
    )


@contextlib.asynccontextmanager
async def running(link: RelayLink) -> AsyncIterator[asyncio.Task[None]]:
    """Run the link as an owned task; cancel and await it on exit."""
    task = asyncio.create_task(link.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_upgrade_is_signed_for_the_relay_host(platform: BarePlatform) -> None:
    link = make_link(platform, ScriptedHandler())
    async with running(link):
        server_link = await platform.next_link()
        await asyncio.wait_for(link.connected.wait(), WAIT)
    headers = server_link.headers
    assert (headers["X-TC-Action"], headers["X-TC-Version"], headers[GATEWAY_HEADER]) == (
        CONNECT_ACTION,
        API_VERSION,
        GATEWAY_ID,
    )
    caller = verify_request(
        method="GET",
        headers=headers,
        body=b"",
        query=server_link.query,
        keys={SECRET_ID: SECRET_KEY},
        now=time.time(),
        expected_host=f"127.0.0.1:{platform.server.port}",
    )
    assert caller.secret_id == SECRET_ID


def test_backoff_grows_to_its_cap_with_full_jitter_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for ceiling in ceilings:
        assert 0.0 <= backoff.next_delay() <= ceiling
    assert backoff.failures == len(ceilings)
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() <= 0.5


async def test_reconnects_with_growing_backoff_when_the_server_keeps_closing(platform: BarePlatform) -> None:
    backoff = Backoff(base=0.01, cap=0.05)
    link = make_link(platform, ScriptedHandler(), backoff=backoff)
    async with running(link):
        first = await platform.next_link()
        await first.ws.close()
        second = await platform.next_link()
        assert backoff.failures == 1  # one backoff delay was taken before the second attempt
        await second.ws.close()
        await platform.next_link()
        # Links that close at once are not healthy: the backoff keeps growing (no tight loop).
        assert backoff.failures == 2
        await asyncio.wait_for(link.connected.wait(), WAIT)
        assert link.connections == 3


async def test_backoff_starts_over_after_a_link_that_stayed_up(platform: BarePlatform) -> None:
    backoff = Backoff(base=0.01, cap=0.05)
    clock = SteppedClock()
    link = make_link(platform, ScriptedHandler(), backoff=backoff, clock=clock)
    async with running(link):
        await (await platform.next_link()).ws.close()
        second = await platform.next_link()
        await asyncio.wait_for(link.connected.wait(), WAIT)  # the link noted when it came up
        assert backoff.failures == 1
        clock.offset += STABLE_LINK_SECONDS + 1  # the second link has now been up long enough
        await second.ws.close()
        await platform.next_link()
        assert backoff.failures == 1  # reset after the healthy link, then one delay


async def test_resent_command_is_executed_once_and_answered_on_both_links(platform: BarePlatform) -> None:
    handler = ScriptedHandler()
    link = make_link(platform, handler)
    async with running(link):
        first = await platform.next_link()
        await first.command("req-1", Type="left", Speed=4)
        answer_one = await first.next_frame()
        assert answer_one == {
            "Type": "Result",
            "RequestId": "req-1",
            "Response": {"RequestId": "req-1", "Echo": {"Type": "left", "Speed": 4}},
        }
        await first.ws.close()  # the platform never saw that answer, say; it re-sends on the next link
        second = await platform.next_link()
        await second.command("req-1", Type="left", Speed=4)
        answer_two = await second.next_frame()
        assert answer_two == answer_one
    assert handler.runs("req-1") == 1


async def test_command_running_when_the_link_drops_is_answered_on_the_new_link(
    platform: BarePlatform,
) -> None:
    handler = ScriptedHandler()
    handler.held.add("ControlDevicePTZ")
    link = make_link(platform, handler)
    async with running(link):
        first = await platform.next_link()
        await first.command("req-2", Type="up", Speed=1)
        assert await asyncio.wait_for(handler.entered.get(), WAIT) == "req-2"
        await first.ws.close()
        second = await platform.next_link()
        await second.command("req-2", Type="up", Speed=1)
        handler.release.set()
        answer = await second.next_frame()
        assert (answer["Type"], answer["RequestId"]) == ("Result", "req-2")
        assert first.frames.empty()  # nothing was written to the closed link
    assert handler.runs("req-2") == 1


async def test_command_arriving_twice_while_running_is_executed_once(platform: BarePlatform) -> None:
    handler = ScriptedHandler()
    handler.held.add("ControlDevicePTZ")
    link = make_link(platform, handler)
    async with running(link):
        server_link = await platform.next_link()
        await server_link.command("req-3", Type="down", Speed=2)
        await server_link.command("req-3", Type="down", Speed=2)
        # Frames are handled in order: once this later command is answered, both copies were seen.
        await server_link.command("barrier", "DescribeDevicePreset")
        assert (await server_link.next_frame())["RequestId"] == "barrier"
        handler.release.set()
        answers = [await server_link.next_frame(), await server_link.next_frame()]
    assert [answer["RequestId"] for answer in answers] == ["req-3", "req-3"]
    assert answers[0] == answers[1]
    assert handler.runs("req-3") == 1


async def test_handler_errors_become_error_answers(platform: BarePlatform) -> None:
    handler = ScriptedHandler()
    link = make_link(platform, handler)
    async with running(link):
        server_link = await platform.next_link()
        await server_link.command("req-fail", "Fail")
        await server_link.command("req-crash", "Crash")
        frames = [await server_link.next_frame(), await server_link.next_frame()]
    answers = {frame["RequestId"]: frame["Response"] for frame in frames}
    assert answers == {
        "req-fail": {
            "Error": IssError("InvalidParameterValue.UnSupportedPTZCMD").to_dict(),
            "RequestId": "req-fail",
        },
        "req-crash": {"Error": IssError("InternalError").to_dict(), "RequestId": "req-crash"},
    }


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '"text"',
        '{"Type": "Command"}',
        '{"Type": "Command", "RequestId": 5, "Action": "ControlDevicePTZ"}',
        '{"Type": "Command", "RequestId": "r", "Action": ""}',
        '{"Type": "Command", "RequestId": "r", "Action": "ControlDevicePTZ", "Params": [1]}',
        '{"Type": "Surprise", "RequestId": "r"}',
        b"\x00binary",
    ],
    ids=[
        "garbled",
        "array",
        "string",
        "no-ids",
        "numeric-id",
        "empty-action",
        "params-array",
        "type",
        "binary",
    ],
)
async def test_malformed_frames_are_ignored(platform: BarePlatform, frame: str | bytes) -> None:
    handler = ScriptedHandler()
    link = make_link(platform, handler)
    async with running(link) as task:
        server_link = await platform.next_link()
        if isinstance(frame, bytes):
            await server_link.ws.send_bytes(frame)
        else:
            await server_link.ws.send_str(frame)
        await server_link.command("after", Type="left", Speed=1)
        assert (await server_link.next_frame())["RequestId"] == "after"
        assert not task.done() and link.connections == 1
    assert [request_id for _, _, request_id in handler.calls] == ["after"]


async def test_send_event_is_false_while_the_link_is_down(platform: BarePlatform) -> None:
    link = make_link(platform, ScriptedHandler())
    assert await link.send_event("DeviceState", {"DeviceId": "d", "Online": True}) is False
    async with running(link):
        server_link = await platform.next_link()
        await asyncio.wait_for(link.connected.wait(), WAIT)
        assert await link.send_event("DeviceState", {"DeviceId": "d", "Online": True}) is True
        assert await server_link.next_frame() == {
            "Type": "Event",
            "Event": "DeviceState",
            "DeviceId": "d",
            "Online": True,
        }
    assert not link.connected.is_set()
    assert await link.send_event("DeviceState", {"DeviceId": "d", "Online": False}) is False


async def test_cancelling_run_leaves_no_tasks_behind(platform: BarePlatform) -> None:
    handler = ScriptedHandler()
    handler.held.add("ControlDevicePTZ")
    link = make_link(platform, handler)
    async with running(link):
        server_link = await platform.next_link()
        await server_link.command("req-4", Type="left", Speed=1)
        await asyncio.wait_for(handler.entered.get(), WAIT)
    # The context manager cancelled run() and awaited it: the held command was cancelled too.
    assert handler.cancelled.is_set()
    await asyncio.wait_for(server_link.closed.wait(), WAIT)
    link_tasks = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").startswith("RelayLink.")
    ]
    assert link_tasks == []
    assert not link.connected.is_set()
