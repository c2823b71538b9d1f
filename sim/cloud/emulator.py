"""The cloud emulator as an aiohttp server and an async context manager for tests.

    async with CloudEmulator(tmp_path, "AKIDtest", "secret") as cloud:
        client = IssClient(credential.Credential("AKIDtest", "secret"), "ap-guangzhou",
                           ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=cloud.endpoint)))

The emulator inherits the test-support operations of :class:`EmulatorControl` (faults, call log,
gateways, channel reports), the same ones its ``/_emulator/`` endpoints offer. With ``relay=True``
(the default) it is also the platform end of the gateway relay (``ws://<endpoint>/relay``,
:mod:`sim.cloud.relay`), which answers the forwarded actions and RefreshDeviceChannel of gateway
devices by asking the connected gateway.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .admin import add_admin_routes
from .api import MAX_BODY_BYTES, handle_api_request
from .control import EmulatorControl
from .ratelimit import DEFAULT_PER_SECOND, RequestRateLimiter
from .relay import DEFAULT_DEADLINE_SECONDS, RELAY_PATH, GatewayRelay, add_relay_routes
from .reports import ChannelSource
from .seeds import seed_store
from .state import EMULATOR_STATE, ActionForwarder, EmulatorState
from .store import CloudStore
from .uploads import UPLOADS_PATH, ReceivedUpload, UploadInbox, add_upload_routes

logger = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT = 2.0


def _require_loopback(host: str) -> None:
    """The admin endpoints are unsigned, so the emulator refuses to listen beyond loopback."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the cloud emulator only listens on loopback addresses, not {host!r}")


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    """Open (and seed) the store for the app's lifetime; close it after the last request."""
    state = app[EMULATOR_STATE]
    store = await CloudStore.open(state.state_dir)
    try:
        if state.seed and await seed_store(store, state.clock()):
            logger.info("seeded a new emulated account in %s", state.state_dir)
        state.attach_store(store)
        yield
    finally:
        state.attach_store(None)
        await store.close()


def build_app(
    state: EmulatorState,
    relay: GatewayRelay | None = None,
    relay_path: str = RELAY_PATH,
    inbox: UploadInbox | None = None,
) -> web.Application:
    """The emulator's aiohttp application: ``/`` is the iss API, ``/_emulator/`` the admin API
    and the recording upload receiver, ``relay_path`` the gateway relay (when ``relay`` is given)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app[EMULATOR_STATE] = state
    app.cleanup_ctx.append(_store_context)
    app.router.add_route("*", "/", handle_api_request)
    add_admin_routes(app, relay)
    add_upload_routes(app, inbox or UploadInbox(state.state_dir / "uploads"))
    if relay is not None:
        add_relay_routes(app, relay, relay_path)
    return app


class CloudEmulator(EmulatorControl):
    """An emulated Tencent Cloud IVC account serving the iss API on a loopback port."""

    def __init__(
        self,
        state_dir: Path | str,
        secret_id: str,
        secret_key: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        rate_limit: int = DEFAULT_PER_SECOND,
        rate_limits: Mapping[str, int] | None = None,
        seed: bool = True,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        relay: bool = True,
        relay_path: str = RELAY_PATH,
        relay_deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        _require_loopback(host)
        if not relay_path.startswith("/") or relay_path == "/" or relay_path.startswith("/_emulator"):
            raise ValueError(f"relay_path must be a path of its own, not {relay_path!r}")
        state = EmulatorState(
            state_dir=Path(state_dir),
            keys={secret_id: secret_key},
            clock=clock,
            limiter=RequestRateLimiter(clock, rate_limit, rate_limits),
            seed=seed,
        )
        super().__init__(state)
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._relay = GatewayRelay(state, deadline=relay_deadline) if relay else None
        self._relay_path = relay_path
        self._inbox = UploadInbox(Path(state_dir) / "uploads")
        self.set_forwarder(None)
        self.set_channel_source(None)

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
        """Open the store, bind the port and start answering."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            build_app(self._state, self._relay, self._relay_path, self._inbox),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._state.endpoint = f"{host}:{port}"
        self._runner = runner
        logger.info(
            "cloud emulator listening on %s (state in %s)", self._state.endpoint, self._state.state_dir
        )

    async def close(self) -> None:
        """Stop listening, let in-flight calls finish (bounded), close the store. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logger.info("cloud emulator on %s stopped", self._state.endpoint)

    @property
    def endpoint(self) -> str:
        """``host:port``, the value for the SDK's ``HttpProfile(endpoint=...)`` and the signed Host."""
        if not self._state.endpoint:
            raise RuntimeError("the emulator is not running")
        return self._state.endpoint

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}/"

    @property
    def relay_url(self) -> str:
        """``ws://<endpoint>/relay``, the gateway's ``[relay] url``."""
        if self._relay is None:
            raise RuntimeError("this emulator has no relay (relay=False)")
        return f"ws://{self.endpoint}{self._relay_path}"

    @property
    def relay(self) -> GatewayRelay:
        """The platform end of the gateway links (connection state, waits, test-support drops)."""
        if self._relay is None:
            raise RuntimeError("this emulator has no relay (relay=False)")
        return self._relay

    @property
    def upload_url(self) -> str:
        """Base URL of the recording upload receiver (the gateway's ``[upload] url``)."""
        return f"http://{self.endpoint}{UPLOADS_PATH}"

    def uploads(self) -> list[ReceivedUpload]:
        """Recording uploads received so far (``channel/name``, bytes, times PUT), by name."""
        return self._inbox.uploads()

    def upload_path(self, name: str) -> Path:
        """Where the received upload ``channel/name`` is stored."""
        return self._inbox.path_of(name)

    @property
    def store(self) -> CloudStore:
        return self._state.store

    def set_forwarder(self, forwarder: ActionForwarder | None) -> None:
        """Answer the forwarded actions (ControlDevicePTZ, PlayRecord, ...) with ``forwarder``.

        None restores the default: the relay when it is enabled, else ``UnsupportedOperation``.
        """
        if forwarder is None and self._relay is not None:
            forwarder = self._relay.forward
        self._state.forwarder = forwarder

    def set_channel_source(self, source: ChannelSource | None) -> None:
        """Let RefreshDeviceChannel of gateway devices ask ``source`` first.

        None restores the default: the relay when it is enabled, else the stored reports only.
        """
        if source is None and self._relay is not None:
            source = self._relay.fetch_channels
        self._state.channel_source = source

    def __repr__(self) -> str:
        where = self._state.endpoint or "not running"
        return f"CloudEmulator({where}, state_dir={str(self._state.state_dir)!r})"

    def describe(self) -> dict[str, Any]:
        """The ready line's content."""
        ready: dict[str, Any] = {"event": "ready", "endpoint": self.endpoint}
        if self._relay is not None:
            ready["relay"] = self.relay_url
        return ready
