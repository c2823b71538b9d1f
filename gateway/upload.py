"""Recording upload plans: send the previous day's chosen recordings during the upload hours.

An upload ("backup") template says *when* to upload (``TimeSections``) and *what*: the hours of
the previous day's recordings (``DevTimeSections``) — an upload section on day D+1 sends the
device sections of day D, Sunday being followed by Monday. A plan applies a template to channels.

Three parts, three jobs:

* :class:`UploadPlanner` reads plans, templates and plan channels from the cloud and answers,
  for an instant in the site's time zone, which recording windows are due (pure
  :func:`due_windows`);
* :class:`Uploader` queues the due closed segments in SQLite (table ``uploads``), pins them so
  retention cannot delete them meanwhile, PUTs each whole file to
  ``<url>/<channel>/<segment file name>`` with bounded concurrency, and unpins after. A row is
  keyed by the segment's relative path and ``uploaded`` is final, so a segment is sent at most
  once, across restarts too; a failure leaves it pending with a backoff, and a later pass resumes;
* :class:`UploadService` owns the HTTP session and the loop that refreshes plans and runs passes.

Queued segments are only sent while their plan is inside an upload section, so retries keep to
the hours the customer gave the uplink.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Final

import aiohttp
from yarl import URL

from gateway.config import UploadSection
from gateway.iss.client import IssClient
from gateway.recordings import RecordingIndex, Segment
from gateway.schedule import DAY_SECONDS, TimeSection
from gateway.store import StateStore

_LOGGER = logging.getLogger(__name__)

PLAN_PAGE_SIZE: Final = 1000
PLAN_ACTIVE: Final = 1
DEFAULT_PASS_INTERVAL: Final = 60.0
DEFAULT_PLAN_REFRESH: Final = 300.0


# -- plans and due windows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """One upload plan with its template's sections and its channels."""

    plan_id: str
    upload_sections: tuple[TimeSection, ...]
    device_sections: tuple[TimeSection, ...]
    scale: int
    channel_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of recordings (POSIX seconds) whose segments are due for upload."""

    start: float
    end: float


def _local_instant(day: dt.date, seconds: int, zone: dt.tzinfo) -> float:
    """POSIX time of a wall-clock second of ``day`` in ``zone`` (86400 = the next midnight)."""
    day, seconds = day + dt.timedelta(days=seconds // DAY_SECONDS), seconds % DAY_SECONDS
    wall = dt.datetime.combine(day, dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60), zone)
    return wall.timestamp()


def _occurrence(section: TimeSection, day: dt.date, zone: dt.tzinfo) -> tuple[float, float]:
    """Start and end instants of ``section`` on ``day`` (an end below the start is the next day)."""
    end_seconds = section.end + DAY_SECONDS if section.end < section.start else section.end
    return _local_instant(day, section.start, zone), _local_instant(day, end_seconds, zone)


def active_upload_day(plan: UploadPlan, now: float, zone: dt.tzinfo) -> dt.date | None:
    """The local day whose upload section contains ``now`` (a section may cross midnight), or None."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    for day in (today, today - dt.timedelta(days=1)):
        for section in plan.upload_sections:
            if section.day_of_week != day.isoweekday() or section.start == section.end:
                continue
            start, end = _occurrence(section, day, zone)
            if start <= now < end:
                return day
    return None


def due_windows(plan: UploadPlan, now: float, zone: dt.tzinfo) -> list[Window]:
    """Windows of the previous day's device sections, if ``now`` is inside an upload section; pure."""
    upload_day = active_upload_day(plan, now, zone)
    if upload_day is None:
        return []
    recorded_day = upload_day - dt.timedelta(days=1)
    windows = [
        Window(*_occurrence(section, recorded_day, zone))
        for section in plan.device_sections
        if section.day_of_week == recorded_day.isoweekday() and section.start != section.end
    ]
    return sorted(windows, key=lambda window: window.start)


class UploadPlanner:
    """The cloud account's upload plans, fetched with the four read actions."""

    def __init__(self, client: IssClient, zone: dt.tzinfo) -> None:
        self._client = client
        self.zone = zone
        self.plans: dict[str, UploadPlan] = {}
        self.loaded = False

    async def refresh(self) -> dict[str, UploadPlan]:
        """Fetch every active plan; on failure the exception propagates and old plans are kept."""
        listed = (await self._client.call("ListRecordBackupPlans", {})).get("Data") or []
        templates: dict[str, dict[str, Any]] = {}
        plans: dict[str, UploadPlan] = {}
        for summary in listed:
            plan = await self._data("DescribeRecordBackupPlan", {"PlanId": summary["PlanId"]})
            if plan.get("Status", PLAN_ACTIVE) != PLAN_ACTIVE:
                continue  # being deleted
            template_id = plan["TemplateId"]
            if template_id not in templates:
                templates[template_id] = await self._data(
                    "DescribeRecordBackupTemplate", {"TemplateId": template_id}
                )
            channel_ids = await self._channels(plan["PlanId"])
            plans[plan["PlanId"]] = _upload_plan(plan["PlanId"], templates[template_id], channel_ids)
        self.plans, self.loaded = plans, True
        _LOGGER.debug("upload plans refreshed: %d plan(s)", len(plans))
        return plans

    def due(self, now: float) -> dict[str, list[Window]]:
        """``plan_id -> windows`` for the plans inside an upload section at ``now``."""
        return {
            plan_id: due_windows(plan, now, self.zone)
            for plan_id, plan in self.plans.items()
            if active_upload_day(plan, now, self.zone) is not None
        }

    async def _data(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = (await self._client.call(action, params))["Data"]
        return data

    async def _channels(self, plan_id: str) -> tuple[str, ...]:
        channel_ids: list[str] = []
        page_number = 1
        while True:
            data = (
                await self._client.call(
                    "ListRecordBackupPlanDevices",
                    {"PlanId": plan_id, "PageSize": PLAN_PAGE_SIZE, "PageNumber": page_number},
                )
            )["Data"]
            items = data.get("List") or []
            channel_ids += [item["ChannelId"] for item in items]
            if not items or len(channel_ids) >= int(data.get("TotalCount") or 0):
                return tuple(channel_ids)
            page_number += 1


def _upload_plan(plan_id: str, template: dict[str, Any], channel_ids: Iterable[str]) -> UploadPlan:
    return UploadPlan(
        plan_id=plan_id,
        upload_sections=tuple(
            sorted(TimeSection.from_wire(item) for item in template.get("TimeSections") or [])
        ),
        device_sections=tuple(
            sorted(TimeSection.from_wire(item) for item in template.get("DevTimeSections") or [])
        ),
        scale=int(template.get("Scale") or 1),
        channel_ids=tuple(channel_ids),
    )


# -- the queue and the sender ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedUpload:
    """A pending ``uploads`` row."""

    segment_path: str
    segment_id: int
    channel: str
    plan_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did (for logs and tests)."""

    queued: int = 0
    uploaded: int = 0
    failed: int = 0
    missing: int = 0
    abandoned: int = 0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` of a failed upload: doubling from ``base``, capped at ``ceiling``."""

    base: float = 30.0
    ceiling: float = 3600.0

    def delay(self, attempts: int) -> float:
        return min(self.ceiling, self.base * 2 ** max(0, attempts - 1))


class UploadFailed(Exception):
    """The endpoint did not take the file (HTTP status, transport error or timeout)."""


class Uploader:
    """Queues due segments, sends them once each, records the outcome in SQLite."""

    def __init__(
        self,
        store: StateStore,
        index: RecordingIndex,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        concurrency: int = 2,
        timeout: float = 300.0,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._index = index
        self._session = session
        self._base_url = URL(base_url.rstrip("/"))
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff
        self._clock = clock
        self._pass_lock = asyncio.Lock()

    async def run_pass(self, planner: UploadPlanner, now: float | None = None) -> PassResult:
        """Queue what is due at ``now``, then send what is queued for plans in their upload hours."""
        async with self._pass_lock:
            now = self._clock() if now is None else now
            # Until plans were read once, "no plans" means "unknown", not "all deleted".
            abandoned = await self._abandon(set(planner.plans)) if planner.loaded else 0
            due = planner.due(now)
            queued = 0
            for plan_id, windows in due.items():
                queued += await self._queue(planner.plans[plan_id], windows, now)
            result = await self._send(await self._pending(set(due), now))
            return PassResult(queued, result.uploaded, result.failed, result.missing, abandoned)

    # -- queueing -------------------------------------------------------------------------------

    async def _queue(self, plan: UploadPlan, windows: Sequence[Window], now: float) -> int:
        segments: list[Segment] = []
        for channel_id in plan.channel_ids:
            for window in windows:
                segments += await self._index.segments_between(channel_id, window.start, window.end)
        new_ids = await self._store.transaction(
            lambda connection: self._insert(connection, plan.plan_id, segments, now)
        )
        if new_ids:
            await self._index.pin(new_ids)
            _LOGGER.info("plan %s: %d segment(s) queued for upload", plan.plan_id, len(new_ids))
        return len(new_ids)

    def _insert(
        self, connection: sqlite3.Connection, plan_id: str, segments: Sequence[Segment], now: float
    ) -> list[int]:
        new_ids: list[int] = []
        for segment in segments:
            cursor = connection.execute(
                "INSERT INTO uploads (segment_path, segment_id, channel, plan_id, queued_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (segment_path) DO NOTHING",
                (self._relative(segment.path), segment.id, segment.channel, plan_id, now),
            )
            if cursor.rowcount:
                new_ids.append(segment.id)
        return new_ids

    async def _abandon(self, live_plan_ids: set[str]) -> int:
        """Drop pending rows of plans that no longer exist (releasing their pins)."""
        rows = await self._store.fetchall(
            "SELECT segment_path, segment_id, plan_id FROM uploads WHERE state = 'pending'"
        )
        gone = [row for row in rows if row["plan_id"] not in live_plan_ids]
        if not gone:
            return 0

        def delete(connection: sqlite3.Connection) -> None:
            for row in gone:
                connection.execute(
                    "DELETE FROM uploads WHERE segment_path = ? AND state = 'pending'", (row["segment_path"],)
                )

        await self._store.transaction(delete)
        await self._index.unpin([row["segment_id"] for row in gone])
        _LOGGER.info("%d queued upload(s) dropped: their plan is gone", len(gone))
        return len(gone)

    async def _pending(self, plan_ids: set[str], now: float) -> list[QueuedUpload]:
        rows = await self._store.fetchall(
            "SELECT segment_path, segment_id, channel, plan_id, attempts FROM uploads"
            " WHERE state = 'pending' AND next_attempt <= ? ORDER BY queued_at, segment_path",
            (now,),
        )
        return [
            QueuedUpload(
                row["segment_path"], row["segment_id"], row["channel"], row["plan_id"], row["attempts"]
            )
            for row in rows
            if row["plan_id"] in plan_ids
        ]

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, queued: Sequence[QueuedUpload]) -> PassResult:
        limit = asyncio.Semaphore(self._concurrency)
        outcomes: list[str] = []

        async def one(upload: QueuedUpload) -> None:
            async with limit:
                outcomes.append(await self._send_one(upload))

        async with asyncio.TaskGroup() as group:
            for upload in queued:
                group.create_task(one(upload))
        return PassResult(
            uploaded=outcomes.count("uploaded"),
            failed=outcomes.count("failed"),
            missing=outcomes.count("missing"),
        )

    async def _send_one(self, upload: QueuedUpload) -> str:
        path = self._index.recordings_dir / upload.segment_path
        try:
            await self._put(upload.channel, path)
        except FileNotFoundError:
            _LOGGER.warning(
                "channel %s: segment %s vanished before upload", upload.channel, upload.segment_path
            )
            await self._finish(upload, "missing", "file not found")
            return "missing"
        except UploadFailed as err:
            delay = self._backoff.delay(upload.attempts + 1)
            _LOGGER.warning(
                "channel %s: upload of %s failed (%s), retry in %.0f s",
                upload.channel,
                upload.segment_path,
                err,
                delay,
            )
            await self._store.execute(
                "UPDATE uploads SET attempts = attempts + 1, last_error = ?, next_attempt = ?"
                " WHERE segment_path = ?",
                (str(err), self._clock() + delay, upload.segment_path),
            )
            return "failed"
        await self._finish(upload, "uploaded", "")
        _LOGGER.info("channel %s: uploaded %s", upload.channel, upload.segment_path)
        return "uploaded"

    async def _finish(self, upload: QueuedUpload, state: str, error: str) -> None:
        """Record a final state, then release the pin taken when the segment was queued."""
        await self._store.execute(
            "UPDATE uploads SET state = ?, attempts = attempts + 1, last_error = ?, uploaded_at = ?"
            " WHERE segment_path = ?",
            (state, error, self._clock() if state == "uploaded" else None, upload.segment_path),
        )
        await self._index.unpin([upload.segment_id])

    async def _put(self, channel: str, path: Path) -> None:
        """PUT the whole file; raise :class:`UploadFailed` unless the endpoint answers 2xx."""
        url = self._base_url / channel / path.name
        source, size = await asyncio.to_thread(_open_for_reading, path)
        try:
            async with self._session.put(
                url, data=source, headers={"Content-Length": str(size)}, timeout=self._timeout
            ) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise UploadFailed(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as err:
            raise UploadFailed(f"{type(err).__name__}: {err}") from err
        finally:
            await asyncio.to_thread(source.close)

    def _relative(self, path: Path) -> str:
        return PurePosixPath(path.relative_to(self._index.recordings_dir)).as_posix()


def _open_for_reading(path: Path) -> tuple[BinaryIO, int]:
    source = path.open("rb")
    return source, path.stat().st_size


# -- the service ---------------------------------------------------------------------------------


class UploadService:
    """Owns the upload HTTP session and the loop: refresh plans now and then, run a pass often.

    ``start()`` opens the session and starts the loop task; ``close()`` stops the loop (an
    in-flight upload is cancelled and stays pending, to be resumed) and closes the session.
    """

    def __init__(
        self,
        config: UploadSection,
        client: IssClient,
        store: StateStore,
        index: RecordingIndex,
        zone: dt.tzinfo,
        *,
        pass_interval: float = DEFAULT_PASS_INTERVAL,
        plan_refresh: float = DEFAULT_PLAN_REFRESH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._index = index
        self._clock = clock
        self._pass_interval = pass_interval
        self._plan_refresh = plan_refresh
        self.planner = UploadPlanner(client, zone)
        self.uploader: Uploader | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start uploading (a no-op when ``[upload] url`` is empty)."""
        if not self._config.url or self._task is not None:
            return
        self._session = aiohttp.ClientSession()
        self.uploader = Uploader(
            self._store,
            self._index,
            self._session,
            self._config.url,
            concurrency=self._config.concurrency,
            timeout=float(self._config.timeout),
            clock=self._clock,
        )
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="recording-upload")
        _LOGGER.info("recording upload started (concurrency %d)", self._config.concurrency)

    async def close(self) -> None:
        """Stop the loop and close the session; idempotent."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            _LOGGER.info("recording upload stopped")

    async def _run(self) -> None:
        refreshed_at: float | None = None
        while not self._stop.is_set():
            if refreshed_at is None or time.monotonic() - refreshed_at >= self._plan_refresh:
                refreshed_at = await self._refresh(refreshed_at)
            await self._pass()
            try:
                await asyncio.wait_for(self._stop.wait(), self._pass_interval)
            except TimeoutError:
                pass

    async def _refresh(self, previous: float | None) -> float | None:
        try:
            await self.planner.refresh()
        except Exception:
            _LOGGER.warning("upload plans could not be fetched; keeping the previous ones", exc_info=True)
            return previous
        return time.monotonic()

    async def _pass(self) -> None:
        assert self.uploader is not None
        try:
            result = await self.uploader.run_pass(self.planner)
        except Exception:
            _LOGGER.exception("upload pass failed")
            return
        if result != PassResult():
            _LOGGER.debug("upload pass: %s", result)


__all__ = [
    "Backoff",
    "PassResult",
    "UploadFailed",
    "UploadPlan",
    "UploadPlanner",
    "UploadService",
    "Uploader",
    "Window",
    "active_upload_day",
    "due_windows",
]
