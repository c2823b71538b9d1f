"""IssClient against a real loopback server: envelope parsing, retries, rate limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.iss import API_VERSION, IssError, Tc3Signer
from gateway.iss.client import IssClient, RetryPolicy
from gateway.iss.envelope import CONTENT_TYPE, dumps, failure, success
from gateway.iss.errors import IssTransportError
from gateway.iss.ratelimit import ActionRateLimiter
from gateway.iss.signing import verify_request

KEYS = {"id": "key"}
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)

Handler = Callable[[web.Request, int], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[TestServer] = []

    async def start(behaviour: Handler) -> tuple[TestServer, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            verify_request(method="POST", headers=request.headers, body=body, query="", keys=KEYS, now=time.time(),
                           expected_host=request.host)
            seen.append({"action": request.headers["X-TC-Action"], "at": time.monotonic(), "body": json.loads(body),
                         "region": request.headers.get("X-TC-Region"), "version": request.headers["X-TC-Version"]})
            return await behaviour(request, len(seen))

        app = web.Application()
        app.router.add_post("/", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server, seen

    yield start
    for server in servers:
        await server.close()


def _client(server: TestServer, **kwargs: Any) -> IssClient:
    kwargs.setdefault("retry", FAST)
    return IssClient(f"http://127.0.0.1:{server.port}", Tc3Signer("id", "key"), region="ap-guangzhou", **kwargs)


def _answer(envelope: dict[str, Any]) -> web.Response:
    return web.Response(body=dumps(envelope), content_type=CONTENT_TYPE)


async def test_success_returns_response_fields(serve: Any) -> None:
    async def ok(request: web.Request, n: int) -> web.Response:
        return _answer(success({"Data": {"DeviceId": "d-1"}}, "r-1"))

    server, seen = await serve(ok)
    async with _client(server) as client:
        response = await client.call("AddUserDevice", {"Name": "门口"})
    assert response == {"Data": {"DeviceId": "d-1"}, "RequestId": "r-1"}
    assert seen[0]["body"] == {"Name": "门口"} and seen[0]["region"] == "ap-guangzhou"
    assert seen[0]["version"] == API_VERSION


async def test_documented_error_is_raised_without_retry(serve: Any) -> None:
    async def bad(request: web.Request, n: int) -> web.Response:
        return _answer(failure(IssError("InvalidParameterValue.InvalidIpv4"), "r-2"))

    server, seen = await serve(bad)
    async with _client(server) as client:
        with pytest.raises(IssError) as caught:
            await client.call("AddUserDevice", {})
    assert caught.value.code == "InvalidParameterValue.InvalidIpv4" and caught.value.request_id == "r-2"
    assert len(seen) == 1


@pytest.mark.parametrize("trouble", ["RequestLimitExceeded", "InternalError", "http503", "drop"])
async def test_transient_trouble_is_retried(serve: Any, trouble: str) -> None:
    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        if n < 3:
            if trouble == "http503":
                return web.Response(status=503, text="busy")
            if trouble == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return _answer(failure(IssError(trouble), f"r-{n}"))
        return _answer(success({"Data": n}, "r-ok"))

    server, seen = await serve(flaky)
    async with _client(server) as client:
        assert (await client.call("ListGateways"))["Data"] == 3
    assert len(seen) == 3


async def test_retry_false_makes_exactly_one_attempt(serve: Any) -> None:
    async def busy(request: web.Request, n: int) -> web.Response:
        return web.Response(status=503)

    server, seen = await serve(busy)
    async with _client(server) as client:
        with pytest.raises(IssTransportError):
            await client.call("AddUserDevice", {}, retry=False)
    assert len(seen) == 1


async def test_unknown_cloud_code_becomes_failed_operation(serve: Any) -> None:
    async def odd(request: web.Request, n: int) -> web.Response:
        return web.Response(body=b'{"Response":{"Error":{"Code":"Brand.NewCode","Message":"m"},"RequestId":"r"}}',
                            content_type=CONTENT_TYPE)

    server, seen = await serve(odd)
    async with _client(server) as client:
        with pytest.raises(IssError) as caught:
            await client.call("ListGateways")
    assert caught.value.code == "FailedOperation" and "Brand.NewCode" in caught.value.message
    assert len(seen) == 1  # not a "try again" code: no retry


async def test_client_side_rate_limit_spaces_calls(serve: Any) -> None:
    async def ok(request: web.Request, n: int) -> web.Response:
        return _answer(success({}, "r"))

    server, seen = await serve(ok)
    limiter = ActionRateLimiter({"ListGatewayDevices": 5.0}, default_rate=20.0)
    async with _client(server, limiter=limiter) as client:
        await asyncio.gather(*(client.call("ListGatewayDevices") for _ in range(6)))
        await asyncio.gather(*(client.call("DescribeGateway") for _ in range(6)))
    paced = [s["at"] for s in seen if s["action"] == "ListGatewayDevices"]
    fast = [s["at"] for s in seen if s["action"] == "DescribeGateway"]
    # 6 calls at 5/s starting with one token: the last waits about a second; at 20/s a quarter of that.
    assert paced[-1] - paced[0] == pytest.approx(1.0, abs=0.2)
    assert fast[-1] - fast[0] == pytest.approx(0.25, abs=0.1)
