"""The local API: the iss protocol on ``[api] listen``, so Tencent's SDKs drive the gateway directly.

``POST /`` is checked in the cloud's order (the emulator's pipeline, sim/cloud/api.py):
method → body size (10 MB) → a key is configured → TC3-HMAC-SHA256 signature → replay →
token → Content-Type → version → action → JSON body → the dispatch table. Every answer is
HTTP 200 with ``Content-Type: application/json`` exactly (the SDK ignores ``Response.Error``
otherwise) and a fresh ``RequestId``.

* **No key configured** (``[api] secret_id``/``secret_key`` empty): every POST is refused with
  ``AuthFailure.SecretIdNotFound``; the API never runs unauthenticated.
* **Host**: the signature covers the Host header, and the SDK sends the endpoint it was given
  (``127.0.0.1:8640``). A Host is accepted when it names this listener: ``listen`` itself; for a
  loopback or wildcard listen also ``127.0.0.1``, ``localhost`` and ``[::1]`` with the port; for
  a wildcard listen any host with the bound port (the box's addresses are not enumerated); and
  the authority of ``[api] public_url``. Any other Host (a signature made for the cloud's
  endpoint, say) is ``AuthFailure.SignatureFailure``.
* **Replay**: a correctly signed request whose signature was already used for the same action
  in the last 10 minutes (twice the ±5 min timestamp window, so a signature cannot outlive its
  memory) is ``AuthFailure.SignatureFailure``. The action is part of the key because the SDK
  signs only ``content-type;host``: DescribeDevicePreset and ListDeviceSnapshots of one channel
  sent in the same second carry the same signature. TC3 has no nonce, so two byte-identical
  calls of one action in the same second are refused too: a client repeating a command waits
  for the next second (the SDK then signs anew).
* ``Region`` is not checked: the gateway holds one site's data whatever the region.

``GET /snapshots/<channel>/<file>?expires=..&signature=..`` serves a stored snapshot. Links are
made by :class:`SnapshotLinks`: HMAC-SHA256 over path and expiry with a key derived from the
API secret (a random per-process key when none is configured, so links then die with the
process); an expired or altered link is 403, an image that is gone 404. ``preview=true``
serves it inline, otherwise as a download. ``GET /healthz`` answers liveness.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from . import __version__
from .config import ApiSection, parse_listen
from .iss import SERVICE
from .iss.envelope import CONTENT_TYPE, dumps, failure, new_request_id
from .iss.errors import IssError
from .iss.request import parse_params, version_and_action
from .iss.signing import MAX_SKEW_SECONDS, verify_request
from .snapshots import SnapshotArchive, SnapshotRecord
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]
"""``(action, params, request_id) -> iss Response object``: :meth:`Dispatcher.handle`."""

MAX_BODY_BYTES: Final = 10 * 1024 * 1024
"""Spec README §3.2: POST with signature v3 ≤ 10 MB."""
REPLAY_WINDOW_SECONDS: Final = 2 * MAX_SKEW_SECONDS
REPLAY_CAPACITY: Final = 200_000
"""Signatures remembered at most (≈ 330 calls/s sustained over the window); beyond it the
oldest are forgotten early, which is logged."""
SNAPSHOT_PREFIX: Final = "/snapshots"
SHUTDOWN_TIMEOUT_SECONDS: Final = 5.0
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})
_LINK_KEY_LABEL: Final = b"ivc-gateway snapshot links"


class ReplayCache:
    """Verified signatures of the last ``window`` seconds, in arrival order."""

    def __init__(self, window: float = REPLAY_WINDOW_SECONDS, capacity: int = REPLAY_CAPACITY) -> None:
        self._window = window
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._overflow_logged = False

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, signature: str, now: float) -> bool:
        """Record ``signature``; False when it was already used within the window."""
        while self._seen:
            oldest, arrived = next(iter(self._seen.items()))
            if arrived + self._window >= now:
                break
            del self._seen[oldest]
        if signature in self._seen:
            return False
        self._seen[signature] = now
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
            if not self._overflow_logged:
                self._overflow_logged = True
                _LOGGER.warning("replay cache full (%d signatures): forgetting the oldest early", self._capacity)
        return True


def authority(host: str, port: int) -> str:
    """``host:port`` as a Host header writes it (IPv6 in brackets)."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """Which Host headers name this API (see the module docstring)."""

    def __init__(self, listen_host: str, port: int, public_url: str = "") -> None:
        self._port = port
        self._wildcard = listen_host in _WILDCARDS
        names = set()
        if not self._wildcard:
            names.add(authority(listen_host, port).lower())
        if self._wildcard or _is_loopback(listen_host):
            names |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        if public_url:
            names.add(URL(public_url).raw_authority.lower())
        self._names = frozenset(names)
        self.canonical = authority("127.0.0.1" if self._wildcard else listen_host, port)

    def accepts(self, host: str) -> bool:
        """Whether a request signed for ``host`` was meant for this API."""
        host = host.strip().lower()
        return host in self._names or (self._wildcard and host.endswith(f":{self._port}"))


class SnapshotLinks:
    """Signed, expiring snapshot URLs."""

    def __init__(self, key: bytes, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock

    @classmethod
    def for_secret(cls, secret_key: str, lifetime: float, clock: Callable[[], float] = time.time) -> SnapshotLinks:
        """Links keyed by the API secret (a derived key), or a per-process random key without one."""
        if secret_key:
            key = hmac.new(secret_key.encode("utf-8"), _LINK_KEY_LABEL, hashlib.sha256).digest()
        else:
            key = secrets.token_bytes(32)
        return cls(key, lifetime, clock)

    @staticmethod
    def path(channel: str, file_name: str) -> str:
        """The URL path of an image."""
        return f"{SNAPSHOT_PREFIX}/{channel}/{file_name}"

    def _signature(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"GET\n{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str, lifetime: float | None = None) -> dict[str, str]:
        """``expires`` and ``signature`` for a link made now (valid ``lifetime`` s, default the
        configured one); playback and export links use the same signer."""
        expires = int(self._clock() + (self._lifetime if lifetime is None else lifetime))
        return {"expires": str(expires), "signature": self._signature(path, expires)}

    def valid(self, path: str, expires: str, signature: str) -> bool:
        """The link was made by us for this path and has not expired."""
        if not expires.isdigit() or int(expires) < self._clock():
            return False
        return hmac.compare_digest(self._signature(path, int(expires)), signature)


@dataclass(slots=True)
class ApiContext:
    """What the API's handlers share (one per application, under :data:`API_CONTEXT`)."""

    keys: Mapping[str, str]
    hosts: HostPolicy
    replays: ReplayCache
    handle: CommandHandler
    archive: SnapshotArchive
    links: SnapshotLinks
    store: StateStore
    clock: Callable[[], float]


API_CONTEXT: Final = web.AppKey("api_context", ApiContext)


def envelope_response(envelope: dict[str, Any]) -> web.Response:
    """HTTP 200 with the exact Content-Type the SDK requires."""
    return web.Response(body=dumps(envelope), headers={"Content-Type": CONTENT_TYPE})


async def handle_call(request: web.Request) -> web.Response:
    """``POST /``: one iss call."""
    context = request.app[API_CONTEXT]
    request_id = new_request_id()
    action = request.headers.get("X-TC-Action", "")
    started = time.monotonic()
    try:
        response = await _process(context, request, action, request_id)
    except IssError as error:
        response = failure(error, request_id)["Response"]
    code = response.get("Error", {}).get("Code", "OK")
    _LOGGER.debug(
        "local API %s -> %s in %.1f ms (request %s)",
        action or "-", code, (time.monotonic() - started) * 1000, request_id,
        extra={"action": action, "code": code, "remote": request.remote},
    )
    return envelope_response({"Response": response})


async def _process(context: ApiContext, request: web.Request, action: str, request_id: str) -> dict[str, Any]:
    if request.method != "POST":
        raise IssError("UnsupportedProtocol", "Only POST with a JSON body (TC3-HMAC-SHA256) is served.")
    body = await _read_body(request)
    if not context.keys:
        raise IssError("AuthFailure.SecretIdNotFound", "The local API has no key configured ([api] secret_id).")
    host = request.headers.get("Host", "")
    caller = verify_request(
        method=request.method,
        headers=request.headers,
        body=body,
        query=request.query_string,
        keys=context.keys,
        now=context.clock(),
        expected_host=host if context.hosts.accepts(host) else context.hosts.canonical,
        service=SERVICE,
    )
    if not context.replays.first_use(f"{action}\n{caller.signature}", context.clock()):
        raise IssError("AuthFailure.SignatureFailure", "This signature was already used (replayed request).")
    if request.headers.get("X-TC-Token"):
        raise IssError("AuthFailure.TokenFailure", "The local API takes long-term keys only, no X-TC-Token.")
    if request.content_type != "application/json":
        raise IssError("InvalidParameter", "Content-Type must be application/json (signature v3).")
    version_and_action(request.headers)
    return await context.handle(action, parse_params(body), request_id)


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise IssError("RequestSizeLimitExceeded") from None


async def serve_snapshot(request: web.Request) -> web.StreamResponse:
    """``GET /snapshots/<channel>/<file>``: a stored image behind a valid link."""
    context = request.app[API_CONTEXT]
    channel, file_name = request.match_info["channel"], request.match_info["file_name"]
    path = SnapshotLinks.path(channel, file_name)
    if not context.links.valid(path, request.query.get("expires", ""), request.query.get("signature", "")):
        raise web.HTTPForbidden(text="this link is not valid (expired or altered)")
    try:
        file_path = context.archive.path_of(channel, file_name)
    except ValueError:
        raise web.HTTPNotFound() from None
    record = await context.archive.find(channel, file_name)
    if record is None or not record.available:
        raise web.HTTPNotFound(text="this snapshot has expired")
    preview = request.query.get("preview", "").lower() in ("1", "true")
    disposition = "inline" if preview else f'attachment; filename="{file_name}"'
    return web.FileResponse(
        file_path, headers={"Content-Type": "image/jpeg", "Content-Disposition": disposition, "Cache-Control": "private"}
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the loop answers and the database is reachable."""
    version = await request.app[API_CONTEXT].store.schema_version()
    return web.json_response({"status": "ok", "version": __version__, "schema": version})


def _bind(host: str, port: int) -> socket.socket:
    """Bind before serving, so the port (and the Host policy) is known before any request."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalApi:
    """The listener: bound and served by :meth:`start`, stopped by :meth:`close`."""

    def __init__(
        self,
        config: ApiSection,
        *,
        store: StateStore,
        handle: CommandHandler,
        archive: SnapshotArchive,
        link_lifetime: float,
        clock: Callable[[], float] = time.time,
        extra_routes: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        """``extra_routes`` add other components' routes (``GET /metrics``) to the app."""
        self._extra_routes = tuple(extra_routes)
        self._config = config
        self._store = store
        self._handle = handle
        self._archive = archive
        self._clock = clock
        self._keys = {config.secret_id: str(config.secret_key)} if config.secret_id and config.secret_key else {}
        self.links = SnapshotLinks.for_secret(str(config.secret_key), link_lifetime, clock)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.base_url = ""

    async def start(self) -> None:
        """Bind ``[api] listen`` and serve."""
        host, port = parse_listen(self._config.listen)
        sock = _bind(host, port)
        self.port = sock.getsockname()[1]
        self.base_url = self._base_url(host, self.port)
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app[API_CONTEXT] = ApiContext(
            keys=self._keys,
            hosts=HostPolicy(host, self.port, self._config.public_url),
            replays=ReplayCache(),
            handle=self._handle,
            archive=self._archive,
            links=self.links,
            store=self._store,
            clock=self._clock,
        )
        app.router.add_route("*", "/", handle_call)
        app.router.add_get("/healthz", healthz)
        app.router.add_get(SNAPSHOT_PREFIX + "/{channel}/{file_name}", serve_snapshot)
        for add_routes in self._extra_routes:
            add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        if not self._keys:
            _LOGGER.warning("local API has no key ([api] secret_id/secret_key): every call will be refused")
        _LOGGER.info("local API listening", extra={"listen": f"{host}:{self.port}"})

    def _base_url(self, host: str, port: int) -> str:
        if self._config.public_url:
            return self._config.public_url.rstrip("/")
        if host in _WILDCARDS:
            _LOGGER.warning("[api] listen is a wildcard and public_url is empty: snapshot links name 127.0.0.1")
            host = "127.0.0.1"
        return f"http://{authority(host, port)}"

    def snapshot_urls(self, record: SnapshotRecord) -> tuple[str, str]:
        """Download and preview URLs of a stored image, valid for ``[snapshot] link_lifetime``."""
        path = SnapshotLinks.path(record.channel, record.file_name)
        query = self.links.query(path)
        download = f"{self.base_url}{path}?{urlencode(query)}"
        return download, f"{download}&preview=true"

    async def close(self) -> None:
        """Stop listening, let running calls finish (bounded), close; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            _LOGGER.info("local API stopped")
