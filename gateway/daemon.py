"""The daemon's lifecycle: start-up, main loop, shutdown, in that fixed order.

Like uvicorn's server, signal handlers only set an event; the loop does the work. Every
long-lived resource is one pair in :meth:`Gateway._resources` (an ``AsyncExitStack``), so
teardown runs in reverse order of set-up and only for what was actually set up. A second
SIGINT/SIGTERM skips the graceful path.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Final

from aiohttp import web

from . import __version__
from .config import Config, parse_listen
from .iss.client import IssClient
from .iss.signing import Tc3Signer
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

STORE_KEY: Final = web.AppKey("store", StateStore)
CONFIG_KEY: Final = web.AppKey("config", Config)


class Gateway:
    """One running gateway: owns the store, the cloud client and the local API listener."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.stop_requested = asyncio.Event()
        self.ready = asyncio.Event()
        self.store: StateStore | None = None
        self.cloud: IssClient | None = None
        self.api_port: int | None = None
        self._signals = 0

    def request_stop(self) -> None:
        """Ask for a graceful stop (what SIGTERM does); a second request forces exit."""
        self._signals += 1
        if self._signals > 1:
            _LOGGER.warning("second stop signal: exiting now")
            raise SystemExit(1)
        _LOGGER.info("stop requested")
        self.stop_requested.set()

    async def run(self) -> None:
        """Start everything, wait for a stop request, shut down in order."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            async with AsyncExitStack() as stack:
                await self._startup(stack)
                self.ready.set()
                _LOGGER.info("gateway %s ready", self.config.gateway.name, extra={"version": __version__})
                await self.stop_requested.wait()
                _LOGGER.info("shutting down")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        _LOGGER.info("gateway stopped")

    async def _startup(self, stack: AsyncExitStack) -> None:
        self.store = await stack.enter_async_context(StateStore(self.config.gateway.state_dir))
        if self.config.cloud is not None:
            cloud = self.config.cloud
            self.cloud = await stack.enter_async_context(
                IssClient(
                    cloud.endpoint,
                    Tc3Signer(cloud.secret_id, cloud.secret_key),
                    region=cloud.region,
                    timeout=cloud.timeout,
                )
            )
        else:
            _LOGGER.info("no [cloud] section: standalone mode, devices keep local ids")
        await self._start_api(stack)

    async def _start_api(self, stack: AsyncExitStack) -> None:
        app = web.Application()
        app[CONFIG_KEY] = self.config
        assert self.store is not None
        app[STORE_KEY] = self.store
        app.router.add_get("/healthz", _healthz)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        host, port = parse_listen(self.config.api.listen)
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.api_port = sockets[0].getsockname()[1] if sockets else port
        _LOGGER.info("local API listening", extra={"listen": f"{host}:{self.api_port}"})


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: the loop answers and the database is reachable."""
    store = request.app[STORE_KEY]
    version = await store.schema_version()
    return web.json_response({"status": "ok", "version": __version__, "schema": version})
