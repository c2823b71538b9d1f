"""Record plans turned into a schedule: which channel records when, applied with APScheduler.

Three layers, so the part with the rules is small and tested with an injected clock and zone:

* **sections -> state** (pure): :func:`schedule_state` answers "is this weekly schedule on at
  this instant, and when does that next change?" from a template's ``TimeSections`` read in the
  site's time zone.  Rules (documented in docs/decisions.md):

  - ``DayOfWeek`` is ISO (1 = Monday .. 7 = Sunday); times are wall-clock ``HH:MM:SS`` in
    ``[gateway] timezone``.
  - ``EndTime`` 23:59:59 means the end of that day (the API cannot say 24:00:00; without this a
    Monday-to-Tuesday schedule would stop for one second at every midnight).
  - A section whose ``EndTime`` is before its ``StartTime`` crosses midnight: it runs from
    ``StartTime`` on ``DayOfWeek`` to ``EndTime`` the next day (Sunday wraps to Monday).  The
    cloud refuses such sections today; a plan source that has them (config, a later API) is
    still read sensibly.  Equal times are an empty section and ignored.
  - Sections that touch or overlap are merged, across midnight and across the week's end.
  - Wall times are turned into instants day by day with the zone's rules: on a spring-forward
    day a section 01:00-04:00 lasts two hours, on a fall-back day three; a wall time that does
    not exist is read with the offset before the change (``fold=0``).

* **plans** (:class:`CloudPlanSource`, :class:`StaticPlanSource`): from the cloud,
  ListRecordPlans -> DescribeRecordPlan (TemplateId, LifeCycle) -> ListRecordPlanDevices (the
  plan's channels; ListRecordPlanChannels only lists channel ids of *all* plans together, so it
  cannot tell which template applies) -> DescribeRecordTemplate.  Standalone, the configured
  channels are recorded around the clock.

* **applying** (:class:`RecordingScheduler`): refresh plans on an interval; for each planned
  channel start or stop its recorder *now* according to :func:`schedule_state` and add an
  APScheduler ``date`` job at the next change, which re-evaluates that channel.  A daemon started
  in the middle of a section therefore starts recording at once.  A channel that cannot record
  yet (not discovered, device disabled, writes paused) is retried every ``retry_seconds``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self
from zoneinfo import ZoneInfo

from .iss.client import IssClient
from .timers import JobTimers

_LOGGER = logging.getLogger(__name__)

DAY_SECONDS: Final = 86400
LAST_SECOND_OF_DAY: Final = DAY_SECONDS - 1
PLAN_PAGE_SIZE: Final = 1000
REFRESH_JOB: Final = "record-plans"
_HH_MM_SS = re.compile(r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")


@dataclass(frozen=True, slots=True, order=True)
class TimeSection:
    """One weekly section: ISO day of week and start/end as seconds of the (local) day.

    ``end`` may be below ``start`` (the section crosses midnight) and is 86400 for "end of day".
    """

    day_of_week: int
    start: int
    end: int

    @classmethod
    def from_wire(cls, item: Mapping[str, Any]) -> TimeSection:
        """A ``RecordTemplateTimeSections`` element; ValueError if it is malformed."""
        day = int(item["DayOfWeek"])
        if not 1 <= day <= 7:
            raise ValueError(f"DayOfWeek {day} is outside 1-7")
        start = seconds_of_day(str(item["StartTime"]))
        end = seconds_of_day(str(item["EndTime"]))
        return cls(day, start, DAY_SECONDS if end == LAST_SECOND_OF_DAY else end)


def seconds_of_day(value: str) -> int:
    """``HH:MM:SS`` as seconds since midnight; ValueError otherwise."""
    match = _HH_MM_SS.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a time of day in HH:MM:SS")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """When a channel records: around the clock (``sections`` None) or in weekly sections."""

    sections: tuple[TimeSection, ...] | None = None

    @classmethod
    def always(cls) -> WeeklySchedule:
        return cls(None)

    @classmethod
    def from_wire(cls, items: Iterable[Mapping[str, Any]]) -> WeeklySchedule:
        return cls(tuple(sorted(TimeSection.from_wire(item) for item in items)))


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """Whether recording is on at the asked instant, and when (POSIX seconds) that next changes."""

    on: bool
    next_change: float | None


def schedule_state(schedule: WeeklySchedule, now: float, zone: dt.tzinfo) -> ScheduleState:
    """Evaluate a weekly schedule at ``now`` (POSIX seconds) in ``zone``; pure."""
    if schedule.sections is None:
        return ScheduleState(True, None)
    if not schedule.sections:
        return ScheduleState(False, None)
    intervals = _merged(_instants(schedule.sections, now, zone))
    for start, end in intervals:
        if start <= now < end:
            return ScheduleState(True, end)
        if start > now:
            return ScheduleState(False, start)
    return ScheduleState(False, None)  # unreachable with a non-empty week, kept for the type


def _instants(sections: Sequence[TimeSection], now: float, zone: dt.tzinfo) -> list[tuple[float, float]]:
    """Absolute (start, end) of every section occurrence from yesterday to eight days ahead.

    Yesterday is included so a section that began before midnight and is still running is seen;
    eight days ahead so that the next start of a once-a-week section is always found.
    """
    today = dt.datetime.fromtimestamp(now, zone).date()
    found: list[tuple[float, float]] = []
    for offset in range(-1, 9):
        day = today + dt.timedelta(days=offset)
        for section in sections:
            if section.day_of_week != day.isoweekday() or section.start == section.end:
                continue
            end_day = day + dt.timedelta(days=1) if section.end < section.start else day
            found.append((_instant(day, section.start, zone), _instant(end_day, section.end, zone)))
    return sorted(found)


def _instant(day: dt.date, seconds: int, zone: dt.tzinfo) -> float:
    """POSIX time of a wall-clock second of ``day`` in ``zone`` (86400 = the next midnight)."""
    if seconds >= DAY_SECONDS:
        day, seconds = day + dt.timedelta(days=1), seconds - DAY_SECONDS
    wall = dt.datetime.combine(day, dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60), zone)
    return wall.timestamp()


def _merged(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# -- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    """What one channel's plan asks: its schedule and, if the plan says, how long to keep footage."""

    channel_id: str
    schedule: WeeklySchedule
    retention_days: int | None = None
    plan_id: str = ""


class RecordPlanSource(Protocol):
    """Where plans come from; ``fetch`` raises on failure (the old plans are kept then)."""

    async def fetch(self) -> dict[str, ChannelPlan]: ...


class StaticPlanSource:
    """Fixed plans: the standalone configuration (channels around the clock), or tests."""

    def __init__(self, plans: Iterable[ChannelPlan]) -> None:
        self._plans = {plan.channel_id: plan for plan in plans}

    @classmethod
    def around_the_clock(cls, channel_ids: Iterable[str]) -> StaticPlanSource:
        return cls(ChannelPlan(channel_id, WeeklySchedule.always()) for channel_id in channel_ids)

    async def fetch(self) -> dict[str, ChannelPlan]:
        return dict(self._plans)


def life_cycle_days(life_cycle: Mapping[str, Any] | None) -> int | None:
    """Local retention for a plan's ``LifeCycleData``: hot plus cold days (the footage's whole life).

    The gateway's disk is one tier, so the cloud's hot/cold split has no local meaning; what it
    does say is how long the customer wants the footage to exist.  The disk floor still evicts
    earlier when space runs out.
    """
    if not life_cycle:
        return None
    days = int(life_cycle.get("Transition") or 0) + int(life_cycle.get("Expiration") or 0)
    return days if days > 0 else None


class CloudPlanSource:
    """Real-time record plans of the cloud account, with their templates' sections."""

    def __init__(self, client: IssClient) -> None:
        self._client = client

    async def fetch(self) -> dict[str, ChannelPlan]:
        listed = (await self._client.call("ListRecordPlans", {})).get("Data") or []
        templates: dict[str, WeeklySchedule] = {}
        plans: dict[str, ChannelPlan] = {}
        for summary in listed:
            plan = (await self._client.call("DescribeRecordPlan", {"PlanId": summary["PlanId"]}))["Data"]
            if plan.get("Status", 1) != 1:
                continue  # being deleted
            template_id = plan["TemplateId"]
            if template_id not in templates:
                templates[template_id] = await self._template(template_id)
            retention = life_cycle_days(plan.get("LifeCycle"))
            for channel_id in await self._channels(plan["PlanId"]):
                plans[channel_id] = ChannelPlan(channel_id, templates[template_id], retention, plan["PlanId"])
        return plans

    async def _template(self, template_id: str) -> WeeklySchedule:
        data = (await self._client.call("DescribeRecordTemplate", {"TemplateId": template_id}))["Data"]
        return WeeklySchedule.from_wire(data.get("TimeSections") or [])

    async def _channels(self, plan_id: str) -> list[str]:
        channel_ids: list[str] = []
        page_number = 1
        while True:
            data = (
                await self._client.call(
                    "ListRecordPlanDevices",
                    {"PlanId": plan_id, "PageSize": PLAN_PAGE_SIZE, "PageNumber": page_number},
                )
            )["Data"]
            items = data.get("List") or []
            channel_ids += [item["ChannelId"] for item in items]
            if not items or len(channel_ids) >= int(data.get("TotalCount") or 0):
                return channel_ids
            page_number += 1


# -- applying -----------------------------------------------------------------------------------


class ChannelRecording(Protocol):
    """What the scheduler drives (``gateway.recording_service.RecordingService``)."""

    async def record(self, channel_id: str) -> bool: ...

    async def stop(self, channel_id: str) -> None: ...


class RecordingScheduler:
    """Keeps each planned channel's recorder on exactly during its plan's sections.

    An async context manager: entering fetches the plans once and applies them (so recording
    starts at once mid-section), then the refresh and change jobs run on an AsyncIOScheduler;
    leaving stops the timers and awaits any job still running.  Recorders are *not* stopped on
    exit: the recording service closes its segments itself, in the daemon's shutdown order.
    """

    def __init__(
        self,
        recording: ChannelRecording,
        source: RecordPlanSource,
        zone: dt.tzinfo | str,
        *,
        refresh_seconds: float = 300.0,
        retry_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._recording = recording
        self._source = source
        self._zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._plans: dict[str, ChannelPlan] = {}
        self._timers = JobTimers("recording schedule")
        self._lock = asyncio.Lock()

    @property
    def plans(self) -> dict[str, ChannelPlan]:
        """The plans applied last (channel id -> plan)."""
        return dict(self._plans)

    def retention_days(self, channel_id: str) -> int | None:
        """The plan's retention for a channel, if its plan sets one (for the retention sweeper)."""
        plan = self._plans.get(channel_id)
        return plan.retention_days if plan is not None else None

    async def __aenter__(self) -> Self:
        scheduler = self._timers.start()
        await self.refresh()
        first = dt.datetime.fromtimestamp(self._clock() + self._refresh_seconds, dt.UTC)
        scheduler.add_job(
            self._timers.tracked(self.refresh), "interval", seconds=self._refresh_seconds, id=REFRESH_JOB,
            next_run_time=first, max_instances=1, coalesce=True, misfire_grace_time=None,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._timers.stop()
        _LOGGER.info("recording schedule stopped")

    async def refresh(self) -> None:
        """Fetch the plans and apply them; a failed fetch keeps the plans applied before."""
        try:
            plans = await self._source.fetch()
        except Exception:  # the cloud being away must not stop recording what is planned
            _LOGGER.exception("record plans could not be fetched; keeping the %d known", len(self._plans))
            return
        async with self._lock:
            for channel_id in sorted(set(self._plans) - set(plans)):
                _LOGGER.info("channel %s: no longer in a record plan", channel_id)
                self._remove_job(channel_id)
                await self._recording.stop(channel_id)
            self._plans = plans
        for channel_id in sorted(plans):
            try:
                await self.evaluate(channel_id)
            except Exception:  # one channel's trouble must not keep the others from their plans
                _LOGGER.exception("channel %s: applying its record plan failed", channel_id)

    async def evaluate(self, channel_id: str) -> None:
        """Start or stop one channel for its plan now, and set the job for its next change."""
        async with self._lock:
            plan = self._plans.get(channel_id)
            if plan is None:
                return
            now = self._clock()
            state = schedule_state(plan.schedule, now, self._zone)
            next_at = state.next_change
            if state.on:
                if not await self._recording.record(channel_id):
                    retry = now + self._retry_seconds
                    next_at = retry if next_at is None else min(next_at, retry)
            else:
                await self._recording.stop(channel_id)
            self._set_job(channel_id, next_at)

    def _set_job(self, channel_id: str, at: float | None) -> None:
        scheduler = self._timers.scheduler
        if scheduler is None:
            return
        if at is None:
            self._remove_job(channel_id)
            return
        when = dt.datetime.fromtimestamp(at, dt.UTC)
        scheduler.add_job(
            self._timers.tracked(lambda: self.evaluate(channel_id)), "date", run_date=when, id=_job_id(channel_id),
            replace_existing=True, misfire_grace_time=None,
        )  # fmt: skip

    def _remove_job(self, channel_id: str) -> None:
        scheduler = self._timers.scheduler
        if scheduler is not None and scheduler.get_job(_job_id(channel_id)) is not None:
            scheduler.remove_job(_job_id(channel_id))


def _job_id(channel_id: str) -> str:
    return f"record:{channel_id}"


__all__ = [
    "ChannelPlan",
    "ChannelRecording",
    "CloudPlanSource",
    "RecordPlanSource",
    "RecordingScheduler",
    "ScheduleState",
    "StaticPlanSource",
    "TimeSection",
    "WeeklySchedule",
    "life_cycle_days",
    "schedule_state",
    "seconds_of_day",
]
