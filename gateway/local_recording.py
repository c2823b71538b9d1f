"""The gateway's local recordings as the iss "local recording" actions see them.

Handlers (registered by name in ``gateway/dispatch.py``'s one table) answer ControlRecordTimeline,
PlayRecord, ControlRecord, the download tasks and DescribeVideoBitRate from the recording index;
:class:`LocalRecordings` owns the playback sessions, the export worker and the two HTTP routes
the answers point at, both behind the local API's signed, expiring links:

* ``GET /live/<ChannelId>@<Session>.live.mp4`` streams a playback session's range as one
  fragmented MP4 (the spec's URL shape, ``.mp4`` because that is what it is);
* ``GET /exports/<task>.mp4`` serves a finished download task's file.

Recordings are indexed under the channel's ChannelId (``ChannelRecord.channel_id``), as the
recording service records them; a request may name the channel by its cloud or local id. A channel whose device is offline still
has its recordings, so channels are looked up in the inventory too, not only among live sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from .api import SnapshotLinks
from .export import EXPORT_DIRECTORY, ExportRequest, ExportService, ExportTask, TaskStatus
from .inventory import ChannelRecord
from .iss.errors import IssError
from .iss.schema import Kind, Param, Schema, array, boolean, integer, string
from .playback import (
    PLAYBACK_SCALES,
    STREAM_QUEUE_CHUNKS,
    PlaybackSession,
    PlaybackSessions,
    QueueSink,
    RangeEmpty,
    RemuxStopped,
    remux_range,
)
from .recordings import RecordingIndex, Segment

if TYPE_CHECKING:
    from .daemon import Gateway

_LOGGER = logging.getLogger(__name__)

PLAYBACK_ROUTE: Final = r"/live/{channel_id:[^/@]+}@{session_id:[0-9a-f-]+}.live.mp4"
EXPORT_ROUTE: Final = r"/exports/{task_id:[0-9a-f-]+}.mp4"
BITRATE_WINDOW_SECONDS: Final = 300.0
"""DescribeVideoBitRate averages the segments that overlap the last five minutes."""
MAX_BITRATE_CHANNELS: Final = 3000
MAX_URL_EXPIRES: Final = 86_400
DEFAULT_PAGE_SIZE: Final = 20
INVALID_CHANNEL_ID: Final = "InvalidParameterValue.InvalidChannelId"
STREAM_NOT_FOUND: Final = "ResourceNotFound.StreamNotExistOrClose"
_ENTITY_ID: Final = re.compile(r"[0-9A-Za-z]+(?:-[0-9A-Za-z]+){4}")
_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


class LocalRecordings:
    """Playback sessions, download tasks and their routes, over one recording index."""

    def __init__(
        self,
        index: RecordingIndex,
        links: SnapshotLinks,
        export_directory: Path,
        base_url: Callable[[], str],
        *,
        clock: Callable[[], float],
    ) -> None:
        self.index = index
        self.links = links
        self.sessions = PlaybackSessions(clock)
        self.exports = ExportService(index, export_directory, clock)
        self._base_url = base_url
        self._clock = clock

    async def __aenter__(self) -> Self:
        await self.exports.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.sessions.close_all()
        await self.exports.__aexit__(*exc_info)

    @staticmethod
    def export_directory(state_dir: Path) -> Path:
        return state_dir / EXPORT_DIRECTORY

    def add_routes(self, app: web.Application) -> None:
        """The playback and export routes (``LocalApi(extra_routes=...)``)."""
        app.router.add_get(PLAYBACK_ROUTE, self.serve_playback)
        app.router.add_get(EXPORT_ROUTE, self.serve_export)

    # -- links -------------------------------------------------------------------------------------

    def playback_url(self, session: PlaybackSession) -> str:
        path = f"/live/{session.channel_id}@{session.session_id}.live.mp4"
        query = {"start": str(int(session.start)), "end": str(int(session.end)), **self.links.query(path)}
        return f"{self._base_url()}{path}?{urlencode(query)}"

    def export_url(self, task: ExportTask, lifetime: float | None = None, *, preview: bool = False) -> str:
        path = f"/exports/{task.task_id}.mp4"
        url = f"{self._base_url()}{path}?{urlencode(self.links.query(path, lifetime))}"
        return f"{url}&preview=true" if preview else url

    def _check_link(self, request: web.Request) -> None:
        if not self.links.valid(request.path, request.query.get("expires", ""), request.query.get("signature", "")):
            raise web.HTTPForbidden(text="this link is not valid (expired or altered)")

    # -- routes ------------------------------------------------------------------------------------

    async def serve_export(self, request: web.Request) -> web.StreamResponse:
        """A finished download task's MP4."""
        self._check_link(request)
        task = self.exports.get(request.match_info["task_id"])
        if task is None or task.status is not TaskStatus.COMPLETED:
            raise web.HTTPNotFound(text="no finished download task with this id")
        preview = request.query.get("preview", "").lower() in ("1", "true")
        disposition = "inline" if preview else f'attachment; filename="{task.task_id}.mp4"'
        return web.FileResponse(task.path, headers={"Content-Type": "video/mp4", "Content-Disposition": disposition})

    async def serve_playback(self, request: web.Request) -> web.StreamResponse:
        """Stream a session from its position to its end, at its scale."""
        self._check_link(request)
        session = self.sessions.get(request.match_info["session_id"])
        if session is None or session.channel_id != request.match_info["channel_id"]:
            raise web.HTTPNotFound(text="this playback session does not exist or was stopped")
        if session.paused:
            raise web.HTTPConflict(text="this playback session is paused (ControlRecord play resumes it)")
        begin = session.start + session.position
        segments = await self.index.segments_between(session.channel_key, begin, session.end)
        stop = threading.Event()
        reached = [begin]
        session.streams.add(stop)
        try:
            return await stream_range(
                request, segments, begin, session.end, session.scale, stop, lambda wall: reached.__setitem__(0, wall)
            )
        finally:
            session.streams.discard(stop)
            if session.paused:
                session.position = min(session.duration, max(0.0, reached[0] - session.start))


async def stream_range(
    request: web.Request,
    segments: list[Segment],
    begin: float,
    end: float,
    scale: float,
    stop: threading.Event,
    progress: Callable[[float], None],
) -> web.StreamResponse:
    """Remux ``[begin, end)`` in a thread and write it to the response as it is produced.

    The response starts with the first chunk, so an empty range can still answer 404. However
    the response ends (player gone, session paused, shutdown), ``stop`` is set and the thread is
    awaited before returning.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(STREAM_QUEUE_CHUNKS)
    sink = QueueSink(loop, queue, stop)
    producer = asyncio.ensure_future(
        asyncio.to_thread(remux_range, segments, begin, end, sink, scale=scale, progress=progress, stop=stop)
    )
    response: web.StreamResponse | None = None
    try:
        while (chunk := await _next_chunk(queue, producer)) is not None:
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Cache-Control": "no-store"})
                await response.prepare(request)
            await response.write(chunk)
        producer.result()
    except RangeEmpty:
        if response is None:
            raise web.HTTPNotFound(text="no recording in this range") from None
    except RemuxStopped:
        _LOGGER.debug("playback stream interrupted (%.0f-%.0f)", begin, end)
    finally:
        stop.set()
        with contextlib.suppress(RemuxStopped, RangeEmpty, asyncio.CancelledError):
            await producer
    if response is None:
        raise web.HTTPNotFound(text="no recording in this range")
    await response.write_eof()
    return response


async def _next_chunk(queue: asyncio.Queue[bytes], producer: asyncio.Future[Any]) -> bytes | None:
    """The next chunk, or None once the remux has finished and everything it wrote was taken."""
    if not queue.empty() or not producer.done():
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
    try:
        return queue.get_nowait()
    except asyncio.QueueEmpty:
        return None


# --- channel and time checks ---------------------------------------------------------------------


async def recorded_channel(gateway: Gateway, channel_id: str) -> tuple[str, ChannelRecord, str]:
    """``(device identity, channel, device name)`` of a channel this gateway knows, live or not.

    As elsewhere: a UUID-shaped id naming no channel is ``ResourceNotFound``, a malformed one
    ``InvalidParameterValue.InvalidChannelId``.
    """
    found = await gateway.inventory.find_channel(channel_id)
    if found is None:
        if _ENTITY_ID.fullmatch(channel_id):
            raise IssError("ResourceNotFound", f"Channel {channel_id} does not exist on this gateway.")
        raise IssError(INVALID_CHANNEL_ID, f"{channel_id!r} is not a valid channel id.")
    device, channel = found
    return device.identity, channel, device.name


def recording_key(channel: ChannelRecord) -> str:
    """The key a channel's segments are indexed under: its ChannelId (cloud id, or local id
    while it has none), as the recording service records it."""
    return channel.channel_id


def check_range(start: int, end: int, now: float) -> None:
    """The documented time-range refusals, in the order the spec lists the fields."""
    if start == 0:
        raise IssError("InvalidParameterValue.StartTimeZero", "Start must not be empty.")
    if end == 0:
        raise IssError("InvalidParameterValue.EndTimeZero", "End must not be empty.")
    if start > now:
        raise IssError("InvalidParameterValue.StartOverNowTime", "Start is later than the current time.")
    if start > end:
        raise IssError("InvalidParameterValue.StartOverEndTime", "Start is later than End.")
    if start == end:
        raise IssError("InvalidParameterValue.StartTimeGreaterThanOrEqualEndTime", "Start equals End.")


def _local_recordings(gateway: Gateway) -> LocalRecordings:
    return gateway.local_recordings


# --- schemas ---------------------------------------------------------------------------------------

_CHANNEL_ID = string(required=True, empty=INVALID_CHANNEL_ID)
_TIME = integer(required=True, minimum=0)
CONTROL_RECORD_TIMELINE: Final[Schema] = {"ChannelId": _CHANNEL_ID, "Start": _TIME, "End": _TIME}
PLAY_RECORD: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "Start": _TIME,
    "End": _TIME,
    "StreamType": integer(choices=frozenset({1, 2})),
    "Resolution": string(),
    "IsInternal": boolean(),
}
CONTROL_RECORD: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "Session": string(required=True, empty=STREAM_NOT_FOUND),
    "ControlAction": string(required=True, choices=frozenset({"play", "pause", "stop"})),
    "Position": integer(minimum=0),
    "Scale": Param(Kind.FLOAT, choices=PLAYBACK_SCALES, invalid="InvalidParameterValue.UnSupportScale",
                   wrong_type="InvalidParameterValue.UnSupportedScaleParam"),
}
CREATE_VIDEO_DOWNLOAD_TASK: Final[Schema] = {
    "ChannelId": _CHANNEL_ID,
    "BeginTime": integer(required=True, minimum=1),
    "EndTime": integer(required=True, minimum=1),
    "Scale": integer(choices=frozenset({1, 2, 4, 8})),
    "Expire": integer(choices=frozenset({7, 15, 30, 60, 90, 180, 365})),
    "FileType": integer(choices=frozenset({1})),
    "CompletionPolicy": integer(choices=frozenset({0, 1})),
}
LIST_VIDEO_DOWNLOAD_TASK: Final[Schema] = {
    "DeviceName": string(),
    "ChannelName": string(),
    "Status": integer(choices=frozenset(int(status) for status in TaskStatus)),
    "SortRule": string(),
    "WithPreviewUrl": integer(choices=frozenset({0, 1})),
    "PageNumber": integer(minimum=1),
    "PageSize": integer(minimum=1, maximum=1000),
    "DownloadTaskId": string(),
    "UrlExpires": integer(minimum=1, maximum=MAX_URL_EXPIRES),
}
BATCH_DELETE_VIDEO_DOWNLOAD_TASK: Final[Schema] = {"DownloadTaskIds": array(string())}
DESCRIBE_VIDEO_BIT_RATE: Final[Schema] = {
    "ChannelIds": array(string(empty="InvalidParameterValue.ContainInvalidChannelId"), required=True),
}


# --- handlers --------------------------------------------------------------------------------------


async def control_record_timeline(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """Spans of the range with footage (whole seconds); ``Data`` is null when there is none."""
    check_range(params["Start"], params["End"], gateway.clock())
    _, channel, _ = await recorded_channel(gateway, params["ChannelId"])
    spans = await _local_recordings(gateway).index.timeline(recording_key(channel), params["Start"], params["End"])
    data = [{"Begin": int(span.start), "End": int(-(-span.end // 1))} for span in spans]
    return {"Data": data or None}


async def play_record(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """A playback session over the range and its signed URL (``Data.Flv``, an MP4 stream here)."""
    if "StreamType" in params and "Resolution" in params:
        raise IssError("UnsupportedOperation.StreamTypeOrResolution", "StreamType and Resolution are exclusive.")
    check_range(params["Start"], params["End"], gateway.clock())
    _, channel, _ = await recorded_channel(gateway, params["ChannelId"])
    recordings = _local_recordings(gateway)
    key = recording_key(channel)
    if not await recordings.index.timeline(key, params["Start"], params["End"]):
        raise IssError("ResourceNotFound", "The channel has no local recording in this range.")
    session = recordings.sessions.open(params["ChannelId"], key, params["Start"], params["End"])
    return {"Data": {"Flv": recordings.playback_url(session)}}


async def control_record(gateway: Gateway, params: dict[str, Any]) -> None:
    """Seek, speed, pause/play or stop a playback session (see gateway/playback.py)."""
    if "Position" in params and "Scale" in params:
        raise IssError("UnsupportedOperation.ScaleAndPosBothExist", "Scale and Position are exclusive.")
    await recorded_channel(gateway, params["ChannelId"])
    sessions = _local_recordings(gateway).sessions
    session = sessions.get(params["Session"])
    if session is None or session.channel_id != params["ChannelId"]:
        raise IssError(STREAM_NOT_FOUND, "No open playback session with this id on this channel.")
    action = params["ControlAction"]
    if action == "stop":
        sessions.close(session.session_id)
        return
    if "Position" in params:
        if params["Position"] >= session.duration:
            raise IssError("InvalidParameterValue", "Position is beyond the end of the playback range.")
        session.position = float(params["Position"])
    if "Scale" in params:
        session.scale = float(params["Scale"])
    if action == "pause" and not session.paused:
        session.paused = True
        session.interrupt()
    elif action == "play":
        session.paused = False
    _LOGGER.info(
        "channel %s: playback %s %s (position %.0f s, scale %g)",
        session.channel_key, session.session_id, action, session.position, session.scale,
    )


async def create_video_download_task(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """Queue an export of the range to one MP4."""
    begin, end = params["BeginTime"], params["EndTime"]
    if begin >= end:
        raise IssError("InvalidParameterValue", "BeginTime must be earlier than EndTime.")
    if begin > gateway.clock():
        raise IssError("InvalidParameterValue", "BeginTime is later than the current time.")
    identity, channel, device_name = await recorded_channel(gateway, params["ChannelId"])
    recordings = _local_recordings(gateway)
    key = recording_key(channel)
    if not await recordings.index.timeline(key, begin, end):
        raise IssError("ResourceNotFound", "The channel has no local recording in this range.")
    task = await recordings.exports.create(
        ExportRequest(
            channel_id=params["ChannelId"],
            channel_key=key,
            channel_name=channel.name,
            channel_code=channel.source_token,
            device_name=device_name,
            device_code=identity,
            begin=begin,
            end=end,
            scale=params.get("Scale") or 1,
            expire_days=params.get("Expire") or 7,
            complete_only=params.get("CompletionPolicy", 1) == 0,
        )
    )
    return {"Data": {"DownloadTaskId": task.task_id}}


async def list_video_download_task(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """The download tasks, filtered, sorted and paged, with signed download URLs."""
    recordings = _local_recordings(gateway)
    tasks = [task for task in recordings.exports.tasks() if _matches(task, params)]
    for key, descending in reversed(_sort_keys(params.get("SortRule") or "-StartTime")):
        tasks.sort(key=lambda task, k=key: _sort_value(task, k), reverse=descending)
    size = params.get("PageSize") or DEFAULT_PAGE_SIZE
    offset = ((params.get("PageNumber") or 1) - 1) * size
    zone = ZoneInfo(gateway.config.gateway.timezone)
    page = [
        _task_info(recordings, task, zone, params.get("UrlExpires"), bool(params.get("WithPreviewUrl")))
        for task in tasks[offset : offset + size]
    ]
    return {"Data": {"List": page, "TotalCount": len(tasks)}}


async def batch_delete_video_download_task(gateway: Gateway, params: dict[str, Any]) -> None:
    """Delete tasks of any status (running ones are stopped) and their files."""
    await _local_recordings(gateway).exports.delete(params.get("DownloadTaskIds") or [])


async def describe_video_bit_rate(gateway: Gateway, params: dict[str, Any]) -> dict[str, Any]:
    """kbps per channel: bytes over duration of the segments overlapping the last five minutes."""
    channel_ids: list[str] = params["ChannelIds"]
    if len(channel_ids) > MAX_BITRATE_CHANNELS:
        raise IssError("LimitExceeded.ChannelNumExceeded", f"At most {MAX_BITRATE_CHANNELS} channels per query.")
    index = _local_recordings(gateway).index
    now = gateway.clock()
    rates = []
    for channel_id in channel_ids:
        found = await gateway.inventory.find_channel(channel_id)
        if found is None:
            raise IssError("InvalidParameterValue.ContainInvalidChannelId", f"{channel_id!r} is not a channel here.")
        segments = await index.segments_between(recording_key(found[1]), now - BITRATE_WINDOW_SECONDS, now)
        rates.append({"ChannelId": channel_id, "Bitrate": measured_kbps(segments)})
    return {"Data": {"BitRates": rates}}


def measured_kbps(segments: list[Segment]) -> float:
    """Average bit rate of whole segments (a segment's bytes are not split by time)."""
    seconds = sum(segment.duration for segment in segments)
    if seconds <= 0:
        return 0.0
    return round(sum(segment.bytes for segment in segments) * 8 / 1000 / seconds, 2)


# --- task list helpers -----------------------------------------------------------------------------


def _matches(task: ExportTask, params: dict[str, Any]) -> bool:
    request = task.request
    return (
        params.get("DeviceName", "") in request.device_name
        and params.get("ChannelName", "") in request.channel_name
        and params.get("Status", task.status) == task.status
        and params.get("DownloadTaskId", task.task_id) == task.task_id
    )


def _sort_keys(rule: str) -> list[tuple[str, bool]]:
    keys = []
    for part in (piece.strip() for piece in rule.split(",")):
        name = part.lstrip("-").lower()
        if name not in ("starttime", "endtime"):
            raise IssError("InvalidParameterValue", "SortRule takes StartTime and EndTime (with - for descending).")
        keys.append((name, part.startswith("-")))
    return keys


def _sort_value(task: ExportTask, key: str) -> float:
    return task.created if key == "starttime" else (task.finished or float("inf"))


def _format(moment: float | None, zone: ZoneInfo) -> str:
    return "" if moment is None else dt.datetime.fromtimestamp(moment, zone).strftime(_TIME_FORMAT)


def _task_info(
    recordings: LocalRecordings, task: ExportTask, zone: ZoneInfo, url_expires: int | None, preview: bool
) -> dict[str, Any]:
    request = task.request
    done = task.status is TaskStatus.COMPLETED
    info = {
        "DownloadTaskId": task.task_id,
        "ChannelId": request.channel_id,
        "ChannelName": request.channel_name,
        "ChannelCode": request.channel_code,
        "DeviceName": request.device_name,
        "DeviceCode": request.device_code,
        "Status": int(task.status),
        "VideoTimeSection": f"{_format(request.begin, zone)}-{_format(request.end, zone)}",
        "Scale": request.scale,
        "DownloadTime": int(request.end - request.begin),
        "VideoSize": task.size,
        "StartTime": _format(task.created, zone),
        "EndTime": _format(task.finished, zone),
        "FileDownloadUrl": recordings.export_url(task, url_expires) if done else "",
        "FailedReason": task.failure,
        "Expire": request.expire_days,
    }
    if preview:
        info["PreviewUrl"] = recordings.export_url(task, url_expires, preview=True) if done else ""
    return info


__all__ = [
    "BATCH_DELETE_VIDEO_DOWNLOAD_TASK",
    "CONTROL_RECORD",
    "CONTROL_RECORD_TIMELINE",
    "CREATE_VIDEO_DOWNLOAD_TASK",
    "DESCRIBE_VIDEO_BIT_RATE",
    "LIST_VIDEO_DOWNLOAD_TASK",
    "PLAY_RECORD",
    "LocalRecordings",
    "batch_delete_video_download_task",
    "control_record",
    "control_record_timeline",
    "create_video_download_task",
    "describe_video_bit_rate",
    "list_video_download_task",
    "measured_kbps",
    "play_record",
    "recorded_channel",
]
