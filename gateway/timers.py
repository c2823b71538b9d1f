"""APScheduler jobs whose running coroutines are owned: cancelled and awaited at shutdown.

APScheduler's AsyncIOScheduler starts each job as a bare task; :class:`JobTimers` wraps every
job so its task is tracked, its failure is logged instead of raised into the scheduler, and
:meth:`stop` stops the timers and then cancels and awaits whatever job is still running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

_LOGGER = logging.getLogger(__name__)


class JobTimers:
    """One AsyncIOScheduler (UTC) and the tasks of the jobs it is running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> AsyncIOScheduler:
        """Start the scheduler (on the running loop) and return it for adding jobs."""
        self.scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self.scheduler.start()
        return self.scheduler

    def tracked(self, body: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """A job coroutine tracked for shutdown whose failure is logged, never raised."""

        async def job() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await body()
            except Exception:  # noqa: BLE001 - one failed run must not stop the timer
                _LOGGER.exception("%s: %s failed", self.name, getattr(body, "__name__", "job"))
            finally:
                self._tasks.discard(task)

        return job

    async def stop(self) -> None:
        """Stop the timers, then cancel and await the jobs still running; idempotent."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler.shutdown runs as a loop callback
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
