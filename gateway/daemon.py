"""The daemon's lifecycle: start-up, main loop, shutdown, in that fixed order.

Like uvicorn's server, signal handlers only set an event; the loop does the work. Every
long-lived resource is one pair in :meth:`Gateway._resources` (an ``AsyncExitStack``), so
teardown runs in reverse order of set-up and only for what was actually set up. A second
SIGINT/SIGTERM skips the graceful path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Final
from zoneinfo import ZoneInfo

from bridges.media import RecorderSettings, WriterSettings
from bridges.onvif.discovery import DeviceFinder
from bridges.onvif.models import DeviceAddress

from . import __version__
from .api import LocalApi
from .config import Config
from .devices import DeviceManager
from .dispatch import ACTIONS, Dispatcher
from .inventory import Inventory
from .iss.client import IssClient
from .iss.signing import Tc3Signer
from .local_recording import LocalRecordings
from .metrics import GatewayMetrics, add_metrics_route
from .outbox import Outbox
from .presets import PresetBook, PresetControl
from .ptz import PtzController
from .recording_service import RecordingService
from .recordings import RecordingIndex, Span
from .registration import CloudTarget, Registrar
from .relay import RelayLink
from .retention import DiskGuard, RetentionSweeper
from .schedule import CloudPlanSource, RecordingScheduler, RecordPlanSource, StaticPlanSource
from .sdnotify import SystemdNotifier
from .snapshots import SNAPSHOT_DIRECTORY, SnapshotArchive, SnapshotService, channel_key, with_credentials
from .status_page import status_routes
from .upload import UploadService
from .store import StateStore
from .supervisor import SiteSupervisor

_LOGGER = logging.getLogger(__name__)

RELAY_GRACE_SECONDS: Final = 5.0
DEBUG_HOOKS_ENV: Final = "IVC_GATEWAY_DEBUG_HOOKS"
DEBUG_BLOCK_SECONDS: Final = 10.0
PENDING_RETRY_SECONDS: Final = 2.0


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
        self.relay: RelayLink | None = None
        self.notifier = SystemdNotifier()
        self.dispatcher = Dispatcher(self, ACTIONS)
        self.round_done = asyncio.Condition()
        self.rounds_completed = 0
        self._signals = 0
        self._inventory: Inventory | None = None
        self._devices: DeviceManager | None = None
        self._ptz: PtzController | None = None
        self._presets: PresetControl | None = None
        self._snapshots: SnapshotService | None = None
        self._local_api: LocalApi | None = None
        self.outbox: Outbox | None = None
        self.uploads: UploadService | None = None
        self._local_recordings: LocalRecordings | None = None
        # Health checks, reconcile, queued cloud writes (gateway/supervisor.py).
        self.metrics = GatewayMetrics()
        self.supervisor: SiteSupervisor | None = None
        self.discovery_wanted = asyncio.Event()
        # Local recording (gateway/recording_service.py, schedule.py, retention.py).
        self.recording_index: RecordingIndex | None = None
        self._recording: RecordingService | None = None
        self.recording_schedule: RecordingScheduler | None = None
        self.retention: RetentionSweeper | None = None
        self.disk_guard: DiskGuard | None = None

    @property
    def inventory(self) -> Inventory:
        """The device inventory (available once started)."""
        assert self._inventory is not None, "the gateway is not started"
        return self._inventory

    @property
    def devices(self) -> DeviceManager:
        """The device sessions (available once started)."""
        assert self._devices is not None, "the gateway is not started"
        return self._devices

    @property
    def ptz(self) -> PtzController:
        """The PTZ step controller (available once started)."""
        assert self._ptz is not None, "the gateway is not started"
        return self._ptz

    @property
    def presets(self) -> PresetControl:
        """Preset commands and the index map (available once started)."""
        assert self._presets is not None, "the gateway is not started"
        return self._presets

    @property
    def snapshots(self) -> SnapshotService:
        """Snapshot taking and storage (available once started)."""
        assert self._snapshots is not None, "the gateway is not started"
        return self._snapshots

    @property
    def local_recordings(self) -> LocalRecordings:
        """Playback sessions and download tasks over the local recordings (once started)."""
        assert self._local_recordings is not None, "the gateway is not started"
        return self._local_recordings

    @property
    def local_api(self) -> LocalApi:
        """The local API listener (available once started)."""
        assert self._local_api is not None, "the gateway is not started"
        return self._local_api

    @property
    def recordings_service(self) -> RecordingService:
        """The channel recorders (available once started with ``[recording] enabled``)."""
        assert self._recording is not None, "the gateway is not started or recording is disabled"
        return self._recording

    def is_recording(self, channel_id: str) -> bool:
        """Whether the channel is being recorded right now (for status pages)."""
        return self._recording is not None and self._recording.is_recording(channel_id)

    async def latest_snapshot_url(self, channel_id: str) -> str:
        """A signed link to the channel's newest snapshot, or ``""`` when it has none."""
        found = self.devices.channel(channel_id)
        if found is None:
            return ""
        identity, channel = found
        record = await self.snapshots.archive.latest(channel_key(identity, channel))
        return self.local_api.snapshot_urls(record)[1] if record is not None else ""

    async def recording_spans(self, channel_id: str, start: float, end: float) -> list[Span]:
        """Stretches of ``[start, end]`` with local footage of the channel."""
        if self.recording_index is None:
            return []
        return await self.recording_index.timeline(channel_id, start, end)

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
        if os.environ.get(DEBUG_HOOKS_ENV) == "1":
            loop.add_signal_handler(signal.SIGUSR2, self._debug_block_loop)
        try:
            async with AsyncExitStack() as stack:
                stack.callback(self.notifier.close)
                await self._startup(stack)
                self.ready.set()
                self.notifier.notify(READY=1, STATUS="started, discovering devices")
                await self._own_task(stack, self.notifier.watchdog(), "watchdog")
                _LOGGER.info("gateway %s ready", self.config.gateway.name, extra={"version": __version__})
                await self.stop_requested.wait()
                self.notifier.notify(STOPPING=1, STATUS="shutting down")
                _LOGGER.info("shutting down")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
                loop.remove_signal_handler(signum)
        _LOGGER.info("gateway stopped")

    def _debug_block_loop(self) -> None:
        """Test hook (``IVC_GATEWAY_DEBUG_HOOKS=1``, SIGUSR2): block the event loop on purpose.

        Proves the watchdog: while the loop is stuck no WATCHDOG=1 is sent, so systemd restarts us.
        """
        _LOGGER.warning("debug hook: blocking the event loop for %.0f s", DEBUG_BLOCK_SECONDS)
        time.sleep(DEBUG_BLOCK_SECONDS)

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
                    observer=self.metrics.observe_cloud_call,
                )
            )
        else:
            _LOGGER.info("no [cloud] section: standalone mode, devices keep local ids")
        self._inventory = Inventory(self.store, self.clock)
        self.outbox = outbox = Outbox(self.store, self.clock)
        registrar = Registrar(
            self.store,
            self._inventory,
            outbox,
            self.cloud,
            self._cloud_target(),
            self._password_for,
        )
        finder = DeviceFinder(self.config.discovery, self.config.cameras)
        self._devices = DeviceManager(self.config, finder, inventory=self._inventory, registrar=registrar)
        stack.push_async_callback(self._devices.close)
        await self._start_recording(stack)
        await self._start_device_control(stack)
        await self._start_api(stack)
        if self.config.relay is not None and self.config.cloud is not None:
            self.relay = RelayLink(
                self.config.relay.url,
                self.config.gateway.gateway_id,
                Tc3Signer(self.config.cloud.secret_id, self.config.cloud.secret_key),
                self.dispatcher.handle,
                max_backoff=self.config.relay.max_backoff,
                clock=self.clock,
            )
            await self._own_task(stack, self.relay.run(), "relay")
        self.supervisor = await stack.enter_async_context(self._site_supervisor(registrar, outbox))
        await self._start_recording_jobs(stack)
        await self._own_task(stack, self._discovery_loop(), "discovery")

    async def _start_recording(self, stack: AsyncExitStack) -> None:
        """The recording index and service (start-up recovery runs here, before any recorder).

        Entered after the device sessions and before the API, so at shutdown the current
        segments are closed after the API stopped taking commands and before sessions close.
        """
        assert self.store is not None
        recording = self.config.recording
        self.recording_index = RecordingIndex(self.store, self.config.recordings_dir, clock=self.clock)
        if not recording.enabled:
            _LOGGER.info("[recording] enabled = false: nothing is recorded")
            return
        settings = RecorderSettings(writer=WriterSettings(segment_seconds=float(recording.segment_seconds)))
        self._recording = await stack.enter_async_context(
            RecordingService(
                self.recording_index,
                stream_url_for=self._stream_url_for,
                settings=settings,
                counters=self.metrics.recorder,
                is_disabled=self._channel_disabled,
                clock=self.clock,
            )
        )

    async def _start_recording_jobs(self, stack: AsyncExitStack) -> None:
        """Plan schedule, disk guard and age retention; stopped first at shutdown."""
        if self._recording is None or self.recording_index is None:
            return
        assert self.store is not None
        recording = self.config.recording
        self.disk_guard = await stack.enter_async_context(
            DiskGuard(
                self.recording_index,
                self.store,
                self._recording,
                min_free_bytes=int(recording.min_free_bytes),
                min_free_percent=recording.min_free_percent,
                policy=recording.full_disk_policy,
                interval=float(recording.disk_check_interval),
                registry=self.metrics.registry,
            )
        )
        self.recording_schedule = await stack.enter_async_context(
            RecordingScheduler(
                self._recording,
                self._plan_source(),
                self.config.gateway.timezone,
                refresh_seconds=float(recording.plan_refresh),
                clock=self.clock,
            )
        )
        self.retention = await stack.enter_async_context(
            RetentionSweeper(
                self.recording_index,
                self.store,
                default_days=recording.retention_days,
                plan_days=self.recording_schedule.retention_days,
                clock=self.clock,
            )
        )
        if self.cloud is not None and self.config.upload.url:
            uploads = UploadService(
                self.config.upload, self.cloud, self.store, self.recording_index,
                ZoneInfo(self.config.gateway.timezone), plan_refresh=float(recording.plan_refresh), clock=self.clock,
            )
            await uploads.start()
            stack.push_async_callback(uploads.close)
            self.uploads = uploads

    def _plan_source(self) -> RecordPlanSource:
        """Record plans from the cloud; standalone, the configured channels around the clock."""
        if self.cloud is not None:
            return CloudPlanSource(self.cloud)
        return StaticPlanSource.around_the_clock(self.config.recording.channels)

    async def _stream_url_for(self, channel_id: str) -> str | None:
        """The channel's main RTSP URI with its device's credentials, once discovery knows it."""
        found = self.devices.channel(channel_id)
        if found is None:
            return None
        identity, channel = found
        if not channel.main_uri or channel.state == "removed":
            return None
        record = await self.inventory.get(identity)
        username = record.username if record else ""
        return with_credentials(channel.main_uri, username, self.devices.password_for(identity))

    def _channel_disabled(self, channel_id: str) -> bool:
        found = self.devices.channel(channel_id)
        return found is not None and self.supervisor is not None and self.supervisor.is_disabled(found[0])

    def _site_supervisor(self, registrar: Registrar, outbox: Outbox) -> SiteSupervisor:
        """Health checks, reconcile cycles, the outbox drainer and DeviceState events."""
        assert self.store is not None
        devices = self.devices

        def session_address(identity: str) -> DeviceAddress | None:
            session = devices.session(identity)
            return session.address if session is not None else None

        return SiteSupervisor(
            config=self.config,
            store=self.store,
            inventory=self.inventory,
            outbox=outbox,
            metrics=self.metrics,
            registrar=registrar if self.cloud is not None else None,
            cloud=self.cloud,
            relay=self.relay,
            session_address=session_address,
            password_for=self._password_for,
            request_discovery=self.discovery_wanted.set,
        )

    def _cloud_target(self) -> CloudTarget | None:
        cloud = self.config.cloud
        if cloud is None:
            return None
        return CloudTarget(self.config.gateway.gateway_id, cloud.organization_id, cloud.cluster_id)

    def _password_for(self, identity: str) -> str:
        return self._devices.password_for(identity) if self._devices else ""

    async def _own_task(self, stack: AsyncExitStack, coroutine: Any, name: str) -> None:
        """Start a background task that is cancelled and awaited at shutdown (in reverse order)."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            _LOGGER.info("%s stopped", name)

        stack.push_async_callback(stop)

    async def _discovery_loop(self) -> None:
        """A discovery round at start, then every ``discovery.interval``.

        A round that left cloud work pending (cloud unreachable, relay not yet connected) is
        followed sooner, with a doubling delay capped at the interval. A failed round is logged.
        """
        if self.relay is not None:
            # Channel ids are learnt through the relay: give it a moment before the first round.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.relay.connected.wait(), RELAY_GRACE_SECONDS)
        retry = PENDING_RETRY_SECONDS
        while True:
            pending = False
            try:
                outcomes = await self.devices.run_round()
                pending = any(outcome.pending for outcome in outcomes)
            except Exception:  # noqa: BLE001 - one bad round must not end discovery
                _LOGGER.exception("discovery round failed")
            self.rounds_completed += 1
            await self._report_status()
            async with self.round_done:
                self.round_done.notify_all()
            if pending:
                delay, retry = min(retry, self.config.discovery.interval), retry * 2
            else:
                delay, retry = self.config.discovery.interval, PENDING_RETRY_SECONDS
            # A device that went offline may have moved: health checks ask for a round sooner.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.discovery_wanted.wait(), delay)
            self.discovery_wanted.clear()

    async def _report_status(self) -> None:
        """One STATUS= line for ``systemctl status``: devices and channels, online of total."""
        records = await self.inventory.all()
        online = sum(1 for record in records if record.state == "online")
        channels = [c for record in records for c in record.channels if c.state != "removed"]
        self.notifier.notify(
            STATUS=f"{online}/{len(records)} devices online, {len(channels)} channels, "
            f"{self.rounds_completed} discovery rounds"
        )

    async def wait_for_rounds(self, count: int) -> None:
        """Wait until ``count`` discovery rounds have completed since start."""
        async with self.round_done:
            await self.round_done.wait_for(lambda: self.rounds_completed >= count)

    async def _start_device_control(self, stack: AsyncExitStack) -> None:
        """PTZ steps, presets and snapshots; closed after the API stops and before the sessions
        close, so a step still running is stopped on a live session."""
        assert self.store is not None
        self._ptz = PtzController(
            step_seconds=self.config.ptz.step_seconds, command_timeout=self.config.ptz.command_timeout
        )
        stack.push_async_callback(self._ptz.close)
        self._presets = PresetControl(PresetBook(self.store, self.clock))
        archive = SnapshotArchive(
            self.store, self.config.gateway.state_dir / SNAPSHOT_DIRECTORY, self.config.snapshot.max_per_channel
        )
        self._snapshots = await stack.enter_async_context(
            SnapshotService(
                archive,
                command_timeout=self.config.ptz.command_timeout,
                rtsp_timeout=self.config.snapshot.rtsp_timeout,
                clock=self.clock,
            )
        )

    async def _start_api(self, stack: AsyncExitStack) -> None:
        """The local API (gateway/api.py, also /healthz); it stops first at shutdown."""
        assert self.store is not None
        self._local_api = LocalApi(
            self.config.api,
            store=self.store,
            handle=self.dispatcher.handle,
            archive=self.snapshots.archive,
            link_lifetime=self.config.snapshot.link_lifetime,
            clock=self.clock,
            extra_routes=(
                lambda app: add_metrics_route(app, self.metrics),
                lambda app: self.local_recordings.add_routes(app),
                status_routes(self),
            ),
        )
        # Playback sessions and download tasks sign their links with the API's signer; entered
        # before the API starts, so at shutdown the API stops first, then running exports.
        assert self.recording_index is not None
        api = self._local_api
        self._local_recordings = await stack.enter_async_context(
            LocalRecordings(
                self.recording_index,
                api.links,
                LocalRecordings.export_directory(self.config.gateway.state_dir),
                lambda: api.base_url,
                clock=self.clock,
            )
        )
        await self._local_api.start()
        stack.push_async_callback(self._local_api.close)
        self.api_port = self._local_api.port
