"""Download tasks (CreateVideoDownloadTask): a range of a channel's recording exported to ONE MP4.

A task is a remux (:func:`gateway.playback.remux_range`) into ``<exports>/<task id>.mp4``, run in
a worker thread, one task at a time (exports are disk-bound; several at once would only compete).
The segments it reads are pinned in the recording index from creation until the task ends, so
eviction cannot delete a file under it. Progress is the share of the range written (percent).

Status codes are the spec's: 0 waiting, 1 executing, 2 completed, 3 failed. CompletionPolicy
0 fails a task whose range has holes (the recording is incomplete); 1 (our default) exports
what exists. The tasks live in memory: after a restart the list is empty (files already written
stay on disk until the directory is cleaned by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Final, Self

import av

from .playback import RangeEmpty, RemuxStopped, remux_range
from .recordings import RecordingIndex, Segment

_LOGGER = logging.getLogger(__name__)

EXPORT_DIRECTORY: Final = "exports"
COVERAGE_TOLERANCE_SECONDS: Final = 1.0
"""A range counts as complete when its footage misses at most this much (segment cuts wait for
a keyframe, so adjacent files can leave sub-second seams)."""


class TaskStatus(IntEnum):
    """VideoDownloadTask.Status."""

    WAITING = 0
    EXECUTING = 1
    COMPLETED = 2
    FAILED = 3


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What CreateVideoDownloadTask asked for, with the channel's names for the task list."""

    channel_id: str
    channel_key: str
    channel_name: str
    channel_code: str
    device_name: str
    device_code: str
    begin: float
    end: float
    scale: int = 1
    expire_days: int = 7
    complete_only: bool = False


@dataclass(slots=True)
class ExportTask:
    """One task and how far it got."""

    task_id: str
    request: ExportRequest
    path: Path
    created: float
    status: TaskStatus = TaskStatus.WAITING
    progress: float = 0.0
    finished: float | None = None
    size: int = 0
    failure: str = ""
    pinned: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


class ExportService:
    """Queues, runs, lists and deletes download tasks; owns one worker task (start/close)."""

    def __init__(self, index: RecordingIndex, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self._index = index
        self.directory = directory
        self._clock = clock
        self._tasks: dict[str, ExportTask] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="exports")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks.values():
            task.stop.set()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for task in self._tasks.values():
            await self._release(task)

    async def create(self, request: ExportRequest) -> ExportTask:
        """Pin the range's segments and queue the task."""
        task_id = str(uuid.uuid4())
        task = ExportTask(task_id, request, self.directory / f"{task_id}.mp4", self._clock())
        segments = await self._index.segments_between(request.channel_key, request.begin, request.end)
        task.pinned = [segment.id for segment in segments]
        await self._index.pin(task.pinned)
        self._tasks[task_id] = task
        await self._queue.put(task_id)
        _LOGGER.info("channel %s: download task %s queued (%d segments)", request.channel_key, task_id, len(segments))
        return task

    def tasks(self) -> list[ExportTask]:
        return list(self._tasks.values())

    def get(self, task_id: str) -> ExportTask | None:
        return self._tasks.get(task_id)

    async def delete(self, task_ids: list[str]) -> None:
        """Stop (if running) and forget tasks, removing their files; unknown ids are ignored."""
        for task_id in task_ids:
            task = self._tasks.pop(task_id, None)
            if task is None:
                continue
            task.stop.set()
            await self._release(task)
            await asyncio.to_thread(task.path.unlink, missing_ok=True)
            _LOGGER.info("channel %s: download task %s deleted", task.request.channel_key, task_id)

    async def wait_finished(self, task_id: str) -> ExportTask:
        """Until the task completed or failed (callers bound it with a timeout)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: (t := self._tasks.get(task_id)) is None or t.status >= TaskStatus.COMPLETED
            )
        task = self._tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    async def _run(self) -> None:
        while True:
            task_id = await self._queue.get()
            task = self._tasks.get(task_id)
            if task is None:
                continue
            try:
                await self._execute(task)
            except Exception:  # one failed export must not stop the others
                _LOGGER.exception("channel %s: download task %s failed", task.request.channel_key, task_id)
                task.status, task.failure = TaskStatus.FAILED, "internal error"
            finally:
                task.finished = self._clock()
                await self._release(task)
                async with self._changed:
                    self._changed.notify_all()

    async def _execute(self, task: ExportTask) -> None:
        request = task.request
        task.status = TaskStatus.EXECUTING
        segments = await self._index.segments_between(request.channel_key, request.begin, request.end)
        if request.complete_only and not covers(segments, request.begin, request.end):
            task.status, task.failure = TaskStatus.FAILED, "the recording of this range is incomplete"
            return
        length = request.end - request.begin

        def progress(wall: float) -> None:
            task.progress = max(task.progress, min(99.0, 100.0 * (wall - request.begin) / length))

        try:
            await asyncio.to_thread(self._write, task, segments, progress)
        except RangeEmpty:
            task.status, task.failure = TaskStatus.FAILED, "no recording in this range"
        except RemuxStopped:
            task.status, task.failure = TaskStatus.FAILED, "deleted"
        except (av.FFmpegError, OSError) as error:
            _LOGGER.warning("channel %s: download task %s: %s", request.channel_key, task.task_id, error)
            task.status, task.failure = TaskStatus.FAILED, "the recording could not be read or written"
        else:
            task.size = task.path.stat().st_size
            task.progress, task.status = 100.0, TaskStatus.COMPLETED
            _LOGGER.info("channel %s: download task %s done (%d bytes)", request.channel_key, task.task_id, task.size)
        if task.status is TaskStatus.FAILED:
            await asyncio.to_thread(task.path.unlink, missing_ok=True)

    @staticmethod
    def _write(task: ExportTask, segments: list[Segment], progress: Callable[[float], None]) -> None:
        partial = task.path.with_suffix(".part")
        try:
            with partial.open("wb") as sink:
                remux_range(
                    segments, task.request.begin, task.request.end, sink,
                    scale=task.request.scale, progress=progress, stop=task.stop,
                )
            partial.replace(task.path)
        finally:
            partial.unlink(missing_ok=True)

    async def _release(self, task: ExportTask) -> None:
        pinned, task.pinned = task.pinned, []
        if pinned:
            await self._index.unpin(pinned)


def covers(segments: list[Segment], begin: float, end: float) -> bool:
    """Whether ``segments`` (oldest first) cover ``[begin, end]`` up to the tolerance."""
    missing, reached = 0.0, begin
    for segment in segments:
        missing += max(0.0, segment.start - reached)
        reached = max(reached, segment.end)
    missing += max(0.0, end - reached)
    return missing <= COVERAGE_TOLERANCE_SECONDS


__all__ = ["EXPORT_DIRECTORY", "ExportRequest", "ExportService", "ExportTask", "TaskStatus", "covers"]
