"""One simulated ONVIF device on a real socket: ``OnvifDeviceServer``.

The server binds its own socket (port 0 picks a free one), so the port is known before any XAddr
is printed. Each request is parsed, counted, authenticated with WS-Security (except the pre-auth
GetSystemDateAndTime), dispatched to its service and answered with a response or an ONVIF fault.
The snapshot endpoint uses HTTP Digest/Basic instead, as on real cameras.

Usage::

    async with OnvifDeviceServer(description) as device:
        camera = ONVIFCamera("127.0.0.1", device.port, user, password)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

from aiohttp import hdrs, web
from multidict import CIMultiDict

from .http_auth import DigestCredentials, HttpAuthenticator, HttpAuthOutcome
from .jpeg import SnapshotImages
from .model import DeviceDescription, Quirk, StreamKind, profile_token
from .motion import MonotonicClock, PtzPosition
from .services.base import OnvifService, OperationHandler
from .services.device import DeviceService
from .services.imaging import ImagingService
from .services.media import MediaService
from .services.ptz import PtzService
from .soap import (
    SoapFault,
    SoapRequest,
    action_not_supported,
    envelope_bytes,
    fault_bytes,
    not_authorized,
    parse_request,
)
from .state import (
    DEVICE_PATH,
    SNAPSHOT_PATH_PREFIX,
    DeviceState,
    ImagingState,
    PtzPreset,
    ServiceAddresses,
    WallClock,
)
from .wsse import AuthRejection, UsernameTokenVerifier, WsseRejected

_LOGGER = logging.getLogger(__name__)

PRE_AUTH_DEVICE_OPERATIONS = frozenset({"GetSystemDateAndTime"})
"""Answered without credentials: clients read the clock first to sign with the device's time."""

_SHUTDOWN_TIMEOUT_S = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready IPv4 socket; binding here tells us the port before the app starts."""
    if ipaddress.ip_address(host).version != 4:
        raise ValueError(f"the ONVIF simulator listens on IPv4 literals only, got {host!r}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class OnvifDeviceServer:
    """An ONVIF camera or NVR answering on ``host:port`` until closed.

    ``clock`` drives PTZ and focus motion (monotonic seconds; tests pass a fake one).
    ``wall_clock`` is the host's epoch time; the device clock is it plus the skew offset.
    """

    def __init__(
        self,
        description: DeviceDescription,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: MonotonicClock = time.monotonic,
        wall_clock: WallClock = time.time,
    ) -> None:
        self._description = description
        self._host = host
        self._requested_port = port
        self._state = DeviceState(description, clock, wall_clock)
        self._verifier = UsernameTokenVerifier(
            description.username,
            description.password,
            digest_only=description.wsse_digest_only,
            text_only=description.wsse_text_only,
            clock_tolerance_s=description.wsse_clock_tolerance_s,
        )
        self._http_auth = HttpAuthenticator(
            DigestCredentials(
                description.username,
                description.password,
                realm=f"{description.manufacturer} {description.serial_number}",
            ),
            description.snapshot_auth,
            wall_clock,
        )
        self._images = SnapshotImages()
        self._runner: web.AppRunner | None = None
        self._addresses: ServiceAddresses | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the socket, build the services for the bound port and start serving."""
        if self._runner is not None or self._closed:
            raise RuntimeError("an OnvifDeviceServer starts once")
        sock = _bind_socket(self._host, self._requested_port)
        self._addresses = ServiceAddresses(
            host=self._host,
            port=sock.getsockname()[1],
            malformed_xaddrs=self._description.has_quirk(Quirk.BAD_XADDRS),
        )
        runner = web.AppRunner(
            self._build_app(self._addresses), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        _LOGGER.info(
            "ONVIF %s %s listening on %s (%d channel(s), quirks: %s)",
            self._description.kind.value,
            self._description.name,
            self.xaddr,
            len(self._description.channels),
            ",".join(sorted(self._description.quirks)) or "none",
        )

    async def close(self) -> None:
        """Stop serving; idempotent."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            _LOGGER.info("ONVIF %s %s stopped", self._description.kind.value, self._description.name)

    # --- what the orchestrator and tests read -------------------------------------------------

    @property
    def description(self) -> DeviceDescription:
        """The description this device was built from."""
        return self._description

    @property
    def host(self) -> str:
        """The address the device listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound TCP port (after start)."""
        return self._require_addresses().port

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return self._require_addresses().base_url

    @property
    def xaddr(self) -> str:
        """The device service URL, as WS-Discovery would announce it (never malformed)."""
        return f"{self.base_url}{DEVICE_PATH}"

    @property
    def state(self) -> DeviceState:
        """Live state: clock offset, PTZ heads, presets, imaging, request counters."""
        return self._state

    @property
    def request_counts(self) -> Counter[str]:
        """Requests received per ``service.Operation`` (``device.GetProfiles``, ``ptz.Stop``...)."""
        return self._state.request_counts

    @property
    def auth_failures(self) -> Counter[AuthRejection]:
        """WS-Security rejections by reason."""
        return self._state.auth_failures

    def profile_token(self, channel_index: int = 0, kind: StreamKind = StreamKind.MAIN) -> str:
        """Token of a channel's main or sub profile."""
        return profile_token(channel_index, kind)

    def snapshot_url(self, channel_index: int = 0, kind: StreamKind = StreamKind.MAIN) -> str:
        """The URL GetSnapshotUri hands out for that profile."""
        return self._require_addresses().snapshot_url(profile_token(channel_index, kind))

    def ptz_position(self, channel_index: int = 0) -> PtzPosition:
        """Where a channel's head is now (per the injected clock)."""
        return self._state.ptz[channel_index].position()

    def presets(self, channel_index: int = 0) -> list[PtzPreset]:
        """A channel's stored presets."""
        return self._state.presets[channel_index].sorted_presets()

    def imaging(self, channel_index: int = 0) -> ImagingState:
        """Imaging state of a channel's video source."""
        token = self._description.channels[channel_index].video_source_token
        return self._state.imaging[token]

    async def wait_for_request(self, key: str, count: int = 1) -> None:
        """Wait until ``key`` (``service.Operation``) arrived ``count`` times; wrap in a timeout."""
        await self._state.wait_for_request(key, count)

    def _require_addresses(self) -> ServiceAddresses:
        if self._addresses is None:
            raise RuntimeError("the device server has not been started")
        return self._addresses

    # --- HTTP --------------------------------------------------------------------------------

    def _build_app(self, addresses: ServiceAddresses) -> web.Application:
        middlewares = []
        if self._description.has_quirk(Quirk.SLOW):
            middlewares.append(self._slow_middleware)
        app = web.Application(middlewares=middlewares)
        media = MediaService(self._state, addresses)
        others: list[OnvifService] = [media, ImagingService(self._state)]
        if self._description.has_ptz:
            others.insert(1, PtzService(self._state))
        for service in (DeviceService(self._state, addresses, others), *others):
            handlers = dict(service.operations())
            app.router.add_post(service.path, functools.partial(self._handle_soap, service, handlers))
        app.router.add_get(SNAPSHOT_PATH_PREFIX + "{token}", self._handle_snapshot)
        return app

    @web.middleware
    async def _slow_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The ``slow`` quirk: hold every request before handling it."""
        await asyncio.sleep(self._description.slow_delay_s)
        return await handler(request)

    async def _handle_soap(
        self, service: OnvifService, handlers: Mapping[str, OperationHandler], request: web.Request
    ) -> web.Response:
        """Parse, count, authenticate and answer one SOAP request; every failure is a SOAP fault."""
        payload = await request.read()
        try:
            soap_request = parse_request(payload)
            key = f"{service.name}.{soap_request.operation.localname}"
            await self._state.record_request(key)
            body = self._answer(service, handlers, soap_request)
            status = 200
        except SoapFault as fault:
            body = fault_bytes(fault)
            status = fault.http_status
            _LOGGER.debug(
                "device %s %s: fault %s %s",
                self._description.name,
                service.name,
                fault.code.value,
                "/".join(fault.subcodes),
            )
        return web.Response(body=body, status=status, content_type="application/soap+xml", charset="utf-8")

    def _answer(
        self, service: OnvifService, handlers: Mapping[str, OperationHandler], soap_request: SoapRequest
    ) -> bytes:
        """Authenticate unless pre-auth, then dispatch; credentials are checked before the
        operation is looked up, as devices do, so an unauthenticated client learns nothing."""
        operation = soap_request.operation
        same_namespace = operation.namespace == service.namespace
        pre_auth = service.name == "device" and operation.localname in PRE_AUTH_DEVICE_OPERATIONS
        if not (pre_auth and same_namespace):
            self._authenticate(soap_request)
        handler = handlers.get(operation.localname) if same_namespace else None
        if handler is None:
            raise action_not_supported(f"{service.name}.{operation.localname}")
        return envelope_bytes(handler(soap_request.body))

    def _authenticate(self, soap_request: SoapRequest) -> None:
        try:
            self._verifier.verify(soap_request.header, self._state.device_time())
        except WsseRejected as rejection:
            self._state.auth_failures[rejection.reason] += 1
            _LOGGER.debug(
                "device %s refused %s: %s",
                self._description.name,
                soap_request.operation.localname,
                rejection.reason.value,
            )
            raise not_authorized() from None

    async def _handle_snapshot(self, request: web.Request) -> web.Response:
        """Serve a profile's JPEG behind HTTP Digest/Basic; ``no_snapshot`` 404s before auth."""
        token = request.match_info["token"]
        self._state.snapshot_requests[token] += 1
        if self._description.has_quirk(Quirk.NO_SNAPSHOT):
            raise web.HTTPNotFound()
        outcome = self._http_auth.check(
            request.method, request.raw_path, request.headers.get(hdrs.AUTHORIZATION)
        )
        if outcome is not HttpAuthOutcome.ACCEPTED:
            challenges: CIMultiDict[str] = CIMultiDict()
            for challenge in self._http_auth.challenges(stale=outcome is HttpAuthOutcome.STALE_NONCE):
                challenges.add(hdrs.WWW_AUTHENTICATE, challenge)
            return web.Response(status=401, headers=challenges, text="401 Unauthorized")
        profile = next((p for p in self._state.profiles if p.token == token), None)
        if profile is None:
            raise web.HTTPNotFound()
        image = await self._images.jpeg(profile.channel_index, profile.channel.resolution(profile.kind))
        return web.Response(body=image, content_type="image/jpeg")
