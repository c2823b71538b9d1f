"""Liveness probes against real loopback servers: the simulated ONVIF device and small RTSP servers."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from bridges.liveness import onvif_answers, rtsp_stream_answers
from bridges.onvif.models import DeviceAddress
from sim.onvif import OnvifDeviceServer
from tests.sim.onvif_fixtures import camera_description

TIMEOUT = 1.0
REALM, NONCE = "SimRTSP", "0123456789abcdef"

RtspHandler = Callable[[str, dict[str, str]], tuple[int, dict[str, str]]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_onvif_probe_reaches_the_simulated_camera_without_credentials(http: aiohttp.ClientSession) -> None:
    async with OnvifDeviceServer(camera_description(), host="127.0.0.1") as device:
        result = await onvif_answers(http, DeviceAddress(device.host, device.port), TIMEOUT)
        assert result.ok, result.detail
        assert device.request_counts["device.GetSystemDateAndTime"] == 1
        assert sum(device.auth_failures.values()) == 0


async def test_onvif_probe_fails_on_a_closed_port_and_on_a_web_page(http: aiohttp.ClientSession) -> None:
    closed = await onvif_answers(http, DeviceAddress("127.0.0.1", unused_port()), TIMEOUT)

    async def web_page(_request: web.BaseRequest) -> web.Response:
        return web.Response(status=404, text="<html>not here</html>", content_type="text/html")

    async with RawTestServer(web_page, host="127.0.0.1") as server:
        page = await onvif_answers(http, DeviceAddress("127.0.0.1", server.port or 0), TIMEOUT)
    assert not closed.ok and "unreachable" in closed.detail
    assert not page.ok and "404" in page.detail


async def test_onvif_probe_gives_up_on_a_silent_device_within_its_timeout(http: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def silent(_request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async with RawTestServer(silent, host="127.0.0.1") as server:
        started = time.monotonic()
        result = await onvif_answers(http, DeviceAddress("127.0.0.1", server.port or 0), 0.3)
        elapsed = time.monotonic() - started
        release.set()
    assert not result.ok and "no ONVIF answer" in result.detail
    assert elapsed < 0.3 + 0.2


@asynccontextmanager
async def rtsp_server(handler: RtspHandler) -> AsyncIterator[tuple[int, list[str]]]:
    """A minimal RTSP server: each request is answered by ``handler(request line, headers)``."""
    requests: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                line, *rest = head.split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
                requests.append(head)
                status, extra = handler(line, headers)
                body = "v=0\r\n" if status == 200 else ""
                lines = [f"RTSP/1.0 {status} X", f"CSeq: {headers.get('cseq', '0')}", f"Content-Length: {len(body)}"]
                lines += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], requests
    finally:
        server.close()
        await server.wait_closed()


def digest_protected(path: str, username: str, password: str) -> RtspHandler:
    """200 for ``path`` with a correct Digest answer (RFC 2617 without qop), 401 otherwise."""

    def handle(line: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        _, url, _ = line.split(" ")
        if not url.endswith(path):
            return 404, {}
        authorization = headers.get("authorization", "")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', authorization))
        ha1 = hashlib.md5(f"{username}:{REALM}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{fields.get('uri', '')}".encode()).hexdigest()
        expected = hashlib.md5(f"{ha1}:{NONCE}:{ha2}".encode()).hexdigest()
        if authorization.startswith("Digest ") and fields.get("response") == expected and fields.get("username") == username:
            return 200, {"Content-Type": "application/sdp"}
        return 401, {"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{NONCE}"'}

    return handle


async def test_rtsp_probe_answers_a_digest_challenge_once() -> None:
    async with rtsp_server(digest_protected("/ch1", "admin", "s3cret")) as (port, requests):
        ok = await rtsp_stream_answers(f"rtsp://127.0.0.1:{port}/ch1", TIMEOUT, username="admin", password="s3cret")
        wrong = await rtsp_stream_answers(f"rtsp://127.0.0.1:{port}/ch1", TIMEOUT, username="admin", password="nope")
        embedded = await rtsp_stream_answers(f"rtsp://admin:s3cret@127.0.0.1:{port}/ch1", TIMEOUT)
    assert ok.ok and embedded.ok
    assert not wrong.ok and wrong.detail == "RTSP 401"
    assert len(requests) == 6  # challenge + answer, three times; never a third try
    assert all("admin:s3cret@" not in request for request in requests)  # credentials never in the URL sent


async def test_rtsp_probe_reports_a_missing_stream_a_closed_port_and_a_silent_server() -> None:
    async with rtsp_server(digest_protected("/ch1", "admin", "pw")) as (port, _):
        missing = await rtsp_stream_answers(f"rtsp://127.0.0.1:{port}/gone", TIMEOUT)
    closed = await rtsp_stream_answers(f"rtsp://127.0.0.1:{unused_port()}/ch1", TIMEOUT)
    not_rtsp = await rtsp_stream_answers("http://127.0.0.1/ch1", TIMEOUT)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        started = time.monotonic()
        hung = await rtsp_stream_answers(f"rtsp://127.0.0.1:{server.sockets[0].getsockname()[1]}/ch1", 0.3)
        elapsed = time.monotonic() - started
    finally:
        server.close()
        await server.wait_closed()
    assert (missing.ok, missing.detail) == (False, "RTSP 404")
    assert not closed.ok and "RTSP failed" in closed.detail
    assert not not_rtsp.ok
    assert not hung.ok and "no RTSP answer" in hung.detail and elapsed < 0.5


