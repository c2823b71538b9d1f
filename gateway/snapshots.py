"""ControlDeviceSnapshot and ListDeviceSnapshots: JPEGs taken from cameras, kept on the gateway.

A shot is the camera's ONVIF snapshot (GetSnapshotUri, HTTP Digest then Basic, in the session).
A camera without one (DeviceUnsupported), or whose snapshot fails, is photographed from its
video instead: one keyframe of the channel's main RTSP stream (TCP transport) decoded with PyAV
and encoded as JPEG, in a worker thread, within ``[snapshot] rtsp_timeout``.

ControlDeviceSnapshot asks for ``SnapNum`` shots ``Interval`` seconds apart (the spec states no
unit; seconds, README §11 item 8). The call answers after the first shot, so a broken camera is
reported to the caller; the others are taken by a burst task this service owns. Every shot of one
call carries the call's RequestId as ``SessionId``, as GBDeviceSnapInfo describes.

Storage: ``<state_dir>/snapshots/<channel>/<file>.jpg`` (``channel`` = the channel's local id,
which never changes, unlike the cloud id it gets at registration) with one ``snapshots`` row
each. Retention: an image is deleted when its ``Expire`` days (default 7) have passed, or when
its channel holds more than ``[snapshot] max_per_channel`` images (oldest first). The row stays
``ROW_KEEP_SECONDS`` longer so ListDeviceSnapshots still lists the shot, with empty URLs, which
is how the spec says "expired".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal, Self
from zoneinfo import ZoneInfo

import av
from yarl import URL

from bridges.errors import (
    DeviceAuthFailed,
    DeviceBadResponse,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    DeviceUnsupported,
)
from bridges.onvif.session import CameraSession

from .inventory import ChannelRecord, local_channel_id
from .iss.errors import IssError
from .store import StateStore

_LOGGER = logging.getLogger(__name__)

SNAPSHOT_DIRECTORY: Final = "snapshots"
EXPIRE_DAYS: Final = frozenset({7, 15, 30, 60, 90, 180, 365})
DEFAULT_EXPIRE_DAYS: Final = 7
ROW_KEEP_SECONDS: Final = 30 * 86400
"""How long a deleted image stays listed (with empty URLs) before its row goes too."""
SWEEP_INTERVAL_SECONDS: Final = 600.0
RTSP_GRABS_AT_ONCE: Final = 4
"""Decoding is CPU work: a burst of fallback snapshots must not starve the recorder."""
JPEG_QUALITY_SCALE: Final = 3
"""MJPEG ``qscale`` (2 best .. 31 worst): 3 looks like a camera's own snapshot."""

FILE_NAME_RE: Final = re.compile(r"^[0-9]{8}T[0-9]{9}Z_[0-9a-z]{1,12}_[0-9]{2}\.jpg$")
CHANNEL_KEY_RE: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

DEFAULT_PAGE_SIZE: Final = 200
MAX_PAGE_SIZE: Final = 2000

ImageSource = Literal["onvif", "rtsp"]


def channel_key(identity: str, channel: ChannelRecord) -> str:
    """The directory and index key of a channel's snapshots (its local id)."""
    return local_channel_id(identity, channel.source_token)


def snapshot_file_name(created_at: float, session_id: str, shot: int) -> str:
    """``<UTC yyyymmddThhmmssmmm>Z_<session>_<shot>.jpg``: sorts by time, unique per call and shot."""
    stamp = dt.datetime.fromtimestamp(created_at, dt.UTC)
    session = re.sub(r"[^0-9a-z]", "", session_id.lower())[:12] or "local"
    return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond // 1000:03d}Z_{session}_{shot:02d}.jpg"


def with_credentials(url: str, username: str, password: str) -> str:
    """The stream URL with the device's credentials, unless it carries its own."""
    parsed = URL(url)
    if not username or parsed.user:
        return url
    return str(parsed.with_user(username).with_password(password or None))


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One stored shot (its file is gone once ``deleted_at`` is set)."""

    id: int
    channel: str
    session_id: str
    file_name: str
    bytes: int
    source: str
    created_at: float
    received_at: float
    expires_at: float
    deleted_at: float | None

    @property
    def available(self) -> bool:
        """Whether the image can still be downloaded."""
        return self.deleted_at is None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SnapshotRecord:
        """Build from a ``snapshots`` row."""
        return cls(
            id=row["id"],
            channel=row["channel"],
            session_id=row["session_id"],
            file_name=row["file_name"],
            bytes=row["bytes"],
            source=row["source"],
            created_at=row["created_at"],
            received_at=row["received_at"],
            expires_at=row["expires_at"],
            deleted_at=row["deleted_at"],
        )

    def snap_info(self, zone: ZoneInfo, download_url: str, preview_url: str) -> dict[str, Any]:
        """The spec's GBDeviceSnapInfo; times in the site's zone, URLs empty once deleted."""
        available = self.available
        return {
            "FileName": self.file_name,
            "DownloadUrl": download_url if available else "",
            "ImageSize": self.bytes,
            "CreatedTime": dt.datetime.fromtimestamp(self.created_at, zone).strftime(TIME_FORMAT),
            "ReceivedTime": dt.datetime.fromtimestamp(self.received_at, zone).strftime(TIME_FORMAT),
            "PreviewUrl": preview_url if available else "",
            "SessionId": self.session_id,
        }


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    """One page of a channel's shots and the number of shots in the whole window."""

    total: int
    records: tuple[SnapshotRecord, ...]


def snapshot_window(start: int | None, end: int | None, now: float, zone: ZoneInfo) -> tuple[float, float]:
    """ListDeviceSnapshots' ``[Start, End]`` in UNIX seconds, both ends included.

    The spec's default for each is "today": the site's calendar day (``[gateway] timezone``),
    from 00:00:00 to 23:59:59. Start after now or after End is refused with its documented code.
    """
    midnight = dt.datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight.timestamp() if start is None else float(start)
    last = (midnight + dt.timedelta(days=1)).timestamp() - 1 if end is None else float(end)
    if first > now:
        raise IssError("InvalidParameterValue.StartOverNowTime", "Start may not be later than now.")
    if first > last:
        raise IssError("InvalidParameterValue.StartOverEndTime", "Start may not be later than End.")
    return first, last + 0.999999


def page_bounds(page_number: int, page_size: int) -> tuple[int, int]:
    """``(offset, limit)`` of a page; PageSize is 1-2000 (default 200), PageNumber from 1."""
    if page_size > MAX_PAGE_SIZE:
        raise IssError("InvalidParameterValue.PageSizeExceedLimit", f"PageSize may be at most {MAX_PAGE_SIZE}.")
    if page_size < 1:
        raise IssError("InvalidParameterValue.InvalidPageSize", "PageSize must be at least 1.")
    return (page_number - 1) * page_size, page_size


# --- the RTSP fallback ------------------------------------------------------------------------


def encode_jpeg(frame: av.VideoFrame) -> bytes:
    """Encode one decoded frame as a baseline JPEG (blocking)."""
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qscale": str(JPEG_QUALITY_SCALE)}
    packets = [*encoder.encode(frame.reformat(format="yuvj420p")), *encoder.encode(None)]
    if not packets:
        raise ValueError("the MJPEG encoder produced nothing")
    return bytes(packets[0])


def grab_keyframe_jpeg(url: str, timeout_s: float, host: str, device: str) -> bytes:
    """Connect over RTSP/TCP, decode the first keyframe, return it as JPEG (blocking).

    ``timeout_s`` bounds the connection, every read, and the whole search for a keyframe.
    FFmpeg's messages name the URL, which may hold the password: only the error number and
    its text go into the raised error.
    """
    deadline = time.monotonic() + timeout_s
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(timeout_s, timeout_s)) as container:
            if not container.streams.video:
                raise DeviceBadResponse("the stream has no video", host=host, device=device)
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for packet in container.demux(stream):
                if time.monotonic() > deadline:
                    break
                for frame in packet.decode():
                    return encode_jpeg(frame)
    except (av.error.ExitError, av.error.TimeoutError) as error:  # ExitError: the timeout's interrupt fired
        raise DeviceTimeout(f"stream: no keyframe within {timeout_s:g} s", host=host, device=device) from error
    except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as error:
        raise DeviceAuthFailed(f"stream: {error.strerror}", host=host, device=device) from error
    except ConnectionError as error:
        raise DeviceUnreachable(f"stream: {error.strerror}", host=host, device=device) from error
    except av.error.FFmpegError as error:
        if time.monotonic() >= deadline:  # FFmpeg reports a read that timed out as whatever it was parsing
            raise DeviceTimeout(f"stream: no keyframe within {timeout_s:g} s", host=host, device=device) from error
        raise DeviceBadResponse(f"stream: {error.strerror}", host=host, device=device) from error
    except ValueError as error:
        raise DeviceBadResponse(f"stream: cannot encode the frame ({error})", host=host, device=device) from error
    raise DeviceTimeout(f"stream: no keyframe within {timeout_s:g} s", host=host, device=device)


# --- storage ------------------------------------------------------------------------------------


class SnapshotArchive:
    """Image files under ``<state_dir>/snapshots`` and their index rows."""

    def __init__(self, store: StateStore, directory: Path, max_per_channel: int) -> None:
        self._store = store
        self.directory = directory
        self._max_per_channel = max_per_channel

    def path_of(self, channel: str, file_name: str) -> Path:
        """Where an image lives; refuses names that could leave the directory."""
        if not CHANNEL_KEY_RE.match(channel) or not FILE_NAME_RE.match(file_name):
            raise ValueError("not a snapshot name")
        return self.directory / channel / file_name

    async def add(
        self,
        channel: str,
        session_id: str,
        image: bytes,
        source: ImageSource,
        *,
        shot: int,
        created_at: float,
        received_at: float,
        expires_at: float,
    ) -> SnapshotRecord:
        """Write the file (atomically), index it, then apply the per-channel count limit."""
        file_name = snapshot_file_name(created_at, session_id, shot)
        path = self.path_of(channel, file_name)
        await asyncio.to_thread(_write_atomically, path, image)

        def insert(connection: sqlite3.Connection) -> SnapshotRecord:
            cursor = connection.execute(
                """INSERT INTO snapshots (channel, session_id, file_name, bytes, source, created_at, received_at,
                   expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (channel, session_id, file_name, len(image), source, created_at, received_at, expires_at),
            )
            row = connection.execute("SELECT * FROM snapshots WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return SnapshotRecord.from_row(row)

        record = await self._store.transaction(insert)
        await self._evict_beyond_count(channel, received_at)
        return record

    async def find(self, channel: str, file_name: str) -> SnapshotRecord | None:
        """The row of an image, if indexed."""
        row = await self._store.fetchone(
            "SELECT * FROM snapshots WHERE channel = ? AND file_name = ?", (channel, file_name)
        )
        return SnapshotRecord.from_row(row) if row is not None else None

    async def latest(self, channel: str) -> SnapshotRecord | None:
        """The newest image of a channel that is still on disk."""
        row = await self._store.fetchone(
            "SELECT * FROM snapshots WHERE channel = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1",
            (channel,),
        )
        return SnapshotRecord.from_row(row) if row is not None else None

    async def page(self, channel: str, start: float, end: float, offset: int, limit: int) -> SnapshotPage:
        """Shots created in ``[start, end]``, oldest first."""

        def read(connection: sqlite3.Connection) -> SnapshotPage:
            window = (channel, start, end)
            total = connection.execute(
                "SELECT count(*) FROM snapshots WHERE channel = ? AND created_at >= ? AND created_at <= ?", window
            ).fetchone()[0]
            rows = connection.execute(
                """SELECT * FROM snapshots WHERE channel = ? AND created_at >= ? AND created_at <= ?
                   ORDER BY created_at, id LIMIT ? OFFSET ?""",
                (*window, limit, offset),
            ).fetchall()
            return SnapshotPage(total, tuple(SnapshotRecord.from_row(row) for row in rows))

        return await self._store.run(read)

    async def sweep(self, now: float) -> int:
        """Delete expired images, forget rows deleted long ago; return the images deleted."""
        rows = await self._store.fetchall(
            "SELECT * FROM snapshots WHERE deleted_at IS NULL AND expires_at <= ?", (now,)
        )
        await self._delete([SnapshotRecord.from_row(row) for row in rows], now)
        await self._store.execute(
            "DELETE FROM snapshots WHERE deleted_at IS NOT NULL AND deleted_at <= ?", (now - ROW_KEEP_SECONDS,)
        )
        return len(rows)

    async def _evict_beyond_count(self, channel: str, now: float) -> None:
        rows = await self._store.fetchall(
            """SELECT * FROM snapshots WHERE channel = ? AND deleted_at IS NULL
               ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?""",
            (channel, self._max_per_channel),
        )
        if rows:
            await self._delete([SnapshotRecord.from_row(row) for row in rows], now)
            _LOGGER.info("channel %s: %d snapshot(s) over the limit deleted", channel, len(rows))

    async def _delete(self, records: list[SnapshotRecord], now: float) -> None:
        """Unlink the files (already gone is fine), then mark the rows."""
        if not records:
            return
        paths = [self.path_of(record.channel, record.file_name) for record in records]
        await asyncio.to_thread(_unlink_all, paths)
        await self._store.transaction(
            lambda connection: connection.executemany(
                "UPDATE snapshots SET deleted_at = ? WHERE id = ?", [(now, record.id) for record in records]
            )
        )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """One validated ControlDeviceSnapshot."""

    session_id: str
    count: int
    interval_s: float
    expire_days: int


class SnapshotService:
    """Takes shots, owns the burst tasks and the retention sweeper; an async context manager."""

    def __init__(
        self,
        archive: SnapshotArchive,
        *,
        command_timeout: float,
        rtsp_timeout: float,
        clock: Callable[[], float] = time.time,
        sweep_interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self.archive = archive
        self._command_timeout = command_timeout
        self._rtsp_timeout = rtsp_timeout
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._grabs = asyncio.Semaphore(RTSP_GRABS_AT_ONCE)
        self._bursts: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closed = False

    async def __aenter__(self) -> Self:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(), name="snapshot-retention")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel bursts in progress, stop the sweeper; idempotent."""
        self._closed = True
        self._stop.set()
        tasks = [*self._bursts, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._sweeper = None
        _LOGGER.info("snapshot service closed")

    async def take(
        self,
        session: CameraSession,
        identity: str,
        channel: ChannelRecord,
        stream_url: str,
        request: SnapshotRequest,
    ) -> SnapshotRecord:
        """Take the first shot now; the rest follow in the background, ``interval_s`` apart."""
        if self._closed:
            raise RuntimeError("the snapshot service is closed")
        first = await self._shoot(session, identity, channel, stream_url, request, 1)
        if request.count > 1:
            task = asyncio.get_running_loop().create_task(
                self._burst(session, identity, channel, stream_url, request),
                name=f"snapshot-burst {request.session_id}",
            )
            self._bursts.add(task)
            task.add_done_callback(self._bursts.discard)
        return first

    async def capture(
        self, session: CameraSession, identity: str, channel: ChannelRecord, stream_url: str
    ) -> tuple[bytes, ImageSource]:
        """One JPEG: the ONVIF snapshot, else a keyframe of the stream."""
        try:
            async with asyncio.timeout(self._command_timeout):
                return await session.snapshot(channel.source_token), "onvif"
        except TimeoutError:
            onvif_error: DeviceError = DeviceTimeout(
                f"snapshot: no answer in {self._command_timeout:g} s", host=session.address.host, device=identity
            )
        except DeviceError as error:
            onvif_error = error
        if not stream_url:
            raise onvif_error
        level = logging.DEBUG if isinstance(onvif_error, DeviceUnsupported) else logging.INFO
        _LOGGER.log(level, "channel %s/%s: snapshot from the stream (%s)", identity, channel.source_token, onvif_error)
        try:
            async with self._grabs:
                image = await asyncio.to_thread(
                    grab_keyframe_jpeg, stream_url, self._rtsp_timeout, session.address.host, identity
                )
        except DeviceError as stream_error:
            _LOGGER.info("channel %s/%s: no snapshot from the stream either: %s", identity, channel.source_token, stream_error)
            raise (stream_error if isinstance(onvif_error, DeviceUnsupported) else onvif_error) from stream_error
        return image, "rtsp"

    async def _shoot(
        self,
        session: CameraSession,
        identity: str,
        channel: ChannelRecord,
        stream_url: str,
        request: SnapshotRequest,
        shot: int,
    ) -> SnapshotRecord:
        created_at = self._clock()
        image, source = await self.capture(session, identity, channel, stream_url)
        received_at = self._clock()
        record = await self.archive.add(
            channel_key(identity, channel),
            request.session_id,
            image,
            source,
            shot=shot,
            created_at=created_at,
            received_at=received_at,
            expires_at=created_at + request.expire_days * 86400,
        )
        _LOGGER.info(
            "channel %s/%s: snapshot %d/%d stored (%s, %d bytes)",
            identity, channel.source_token, shot, request.count, source, record.bytes,
        )
        return record

    async def _burst(
        self,
        session: CameraSession,
        identity: str,
        channel: ChannelRecord,
        stream_url: str,
        request: SnapshotRequest,
    ) -> None:
        for shot in range(2, request.count + 1):
            await asyncio.sleep(request.interval_s)
            try:
                await self._shoot(session, identity, channel, stream_url, request, shot)
            except DeviceError as error:
                _LOGGER.warning(
                    "channel %s/%s: snapshot %d/%d failed: %s", identity, channel.source_token, shot, request.count, error
                )

    async def _sweep_loop(self) -> None:
        """Sweep at start, then every interval, until closed; a failed pass is logged."""
        while not self._stop.is_set():
            try:
                deleted = await self.archive.sweep(self._clock())
                if deleted:
                    _LOGGER.info("snapshot retention: %d expired image(s) deleted", deleted)
            except Exception:  # noqa: BLE001 - one bad pass must not end retention
                _LOGGER.exception("snapshot retention pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._sweep_interval)
