"""ControlDevicePTZ on ONVIF: every command is a bounded step that the gateway ends itself.

The spec documents no stop command and no duration (README §11 item 7): a cloud console sends
``left`` once per click, or repeatedly while a button is held. So each command becomes one
*step*: an ONVIF ContinuousMove at the commanded speed, answered as soon as the device accepted
it, and a Stop ``[ptz] step_seconds`` later. A command that arrives during a step replaces it:
the pending stop is called off and the new move goes out, so a held button moves smoothly
instead of stuttering through stop/start pairs.

Speed 1-8 maps linearly onto the ONVIF generic velocity space: ``velocity = speed / 8``, so speed
8 is full speed and speed 1 is an eighth of it. Diagonals drive both axes at that velocity.

``focusfar``/``focusnear`` are a step of the imaging service's continuous focus move
(``speed / 8``, positive = far) ended by a focus Stop. ``irisin``/``irisout`` open or close the
iris by one notch through the imaging settings: an eighth of the device's iris range times
``speed / 8`` (one unit times ``speed / 8`` when the device reports no range). An iris change is
not a motion: it neither ends nor is ended by a running step.

Every channel has one :class:`ChannelStepper` that owns its stop timer task; the
:class:`PtzController` owns the steppers and, at shutdown, stops whatever still moves.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from bridges.errors import DeviceError, DeviceRequestRejected, DeviceUnsupported
from bridges.onvif.session import CameraSession

from .inventory import ChannelRecord

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SPEED: Final = 8
PAN_TILT_ZOOM_DIRECTIONS: Final[Mapping[str, tuple[int, int, int]]] = {
    "up": (0, 1, 0),
    "down": (0, -1, 0),
    "left": (-1, 0, 0),
    "right": (1, 0, 0),
    "leftup": (-1, 1, 0),
    "rightup": (1, 1, 0),
    "leftdown": (-1, -1, 0),
    "rightdown": (1, -1, 0),
    "zoomin": (0, 0, 1),
    "zoomout": (0, 0, -1),
}
"""ONVIF generic spaces: positive pan turns right, positive tilt looks up, positive zoom is tele."""
FOCUS_DIRECTIONS: Final[Mapping[str, int]] = {"focusfar": 1, "focusnear": -1}
IRIS_DIRECTIONS: Final[Mapping[str, int]] = {"irisin": 1, "irisout": -1}
PTZ_COMMANDS: Final = frozenset({*PAN_TILT_ZOOM_DIRECTIONS, *FOCUS_DIRECTIONS, *IRIS_DIRECTIONS})
"""Every ``Type`` of ControlDevicePTZ (spec: 14 commands)."""

MOVE_TIMEOUT_MARGIN_S: Final = 1.0
"""ContinuousMove carries ``Timeout = step + margin``: should the gateway die mid-step, a camera
that honours Timeout still stops by itself instead of turning until someone notices."""
IRIS_NOTCHES_PER_RANGE: Final = 8
IRIS_UNIT_WITHOUT_RANGE: Final = 1.0

_NOT_MOVING: Final = (DeviceUnsupported, DeviceRequestRejected)
"""A start that failed like this certainly did not set anything in motion: nothing to stop."""


def velocity(speed: int) -> float:
    """The generic-space velocity of a ControlDevicePTZ ``Speed`` (1-8)."""
    return speed / MAX_SPEED


class StepKind(enum.Enum):
    """The motor a step drives; a step of another kind is stopped before a new one starts."""

    MOTION = "pan/tilt/zoom"
    FOCUS = "focus"


@dataclass(eq=False, slots=True)
class _RunningStep:
    kind: StepKind
    stop: Callable[[], Awaitable[None]]
    timer: asyncio.Task[None] | None = None
    stopping: bool = False


class ChannelStepper:
    """One channel's running step: its stop timer, replaced by the next command.

    The lock orders this channel's commands with their timers (two commands racing would
    otherwise each schedule a stop and orphan one). The device's own lock, in its session,
    orders commands across the device's channels.
    """

    def __init__(self, label: str, *, step_seconds: float, stop_timeout: float) -> None:
        self.label = label
        self._step_seconds = step_seconds
        self._stop_timeout = stop_timeout
        self._lock = asyncio.Lock()
        self._running: _RunningStep | None = None

    @property
    def busy(self) -> bool:
        """Whether a command of this channel is being carried out."""
        return self._lock.locked()

    @property
    def moving(self) -> StepKind | None:
        """The kind of the step in progress, if any."""
        return self._running.kind if self._running else None

    async def step(
        self, kind: StepKind, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``start`` now (replacing a running step) and ``stop`` one step later.

        Returns when the device accepted the start. If the start failed in a way that may have
        reached the device (timeout, lost connection), the stop is still scheduled.
        """
        async with self._lock:
            await self._end_running(replaced_by=kind)
            try:
                await start()
            except _NOT_MOVING:
                raise
            except BaseException:
                self._schedule(_RunningStep(kind, stop))
                raise
            self._schedule(_RunningStep(kind, stop))

    async def alone(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run a command that is not a step (an iris notch) in this channel's order."""
        async with self._lock:
            return await command()

    async def close(self) -> None:
        """Call off the pending stop timer and stop the motor now, so nothing keeps moving."""
        async with self._lock:
            await self._end_running(replaced_by=None)

    def _schedule(self, running: _RunningStep) -> None:
        running.timer = asyncio.get_running_loop().create_task(
            self._stop_later(running), name=f"ptz-stop {self.label}"
        )
        self._running = running

    async def _stop_later(self, running: _RunningStep) -> None:
        try:
            await asyncio.sleep(self._step_seconds)
            running.stopping = True
            await self._stop_now(running)
        finally:
            if self._running is running:
                self._running = None

    async def _end_running(self, replaced_by: StepKind | None) -> None:
        """Cancel the running step's timer; stop its motor now unless the new step drives it.

        A timer already sending its Stop is waited for, not cancelled, so the device sees the
        Stop and then the new move, never an interrupted request.
        """
        running, self._running = self._running, None
        if running is None or running.timer is None:
            return
        if running.stopping:
            await asyncio.wait([running.timer])
            return
        running.timer.cancel()
        await asyncio.wait([running.timer])
        if replaced_by is not running.kind:
            await self._stop_now(running)

    async def _stop_now(self, running: _RunningStep) -> None:
        """Send the stop; a failure is logged (the ONVIF move Timeout is the safety net)."""
        try:
            async with asyncio.timeout(self._stop_timeout):
                await running.stop()
        except (DeviceError, TimeoutError) as error:
            _LOGGER.warning(
                "channel %s: %s stop failed: %s", self.label, running.kind.value, str(error) or "no answer in time"
            )
        else:
            _LOGGER.debug("channel %s: %s step ended", self.label, running.kind.value)


class PtzController:
    """Executes ControlDevicePTZ commands; owns one :class:`ChannelStepper` per channel."""

    def __init__(self, *, step_seconds: float, command_timeout: float) -> None:
        self._step_seconds = step_seconds
        self._command_timeout = command_timeout
        self._steppers: dict[tuple[str, str], ChannelStepper] = {}
        self._move_timeout_refused: set[str] = set()
        self._iris_ranges: dict[tuple[str, str], float | None] = {}
        self._closed = False

    def stepper(self, identity: str, source_token: str) -> ChannelStepper:
        """The stepper of one channel (created on first use)."""
        key = (identity, source_token)
        stepper = self._steppers.get(key)
        if stepper is None:
            stepper = ChannelStepper(
                f"{identity}/{source_token}", step_seconds=self._step_seconds, stop_timeout=self._command_timeout
            )
            self._steppers[key] = stepper
        return stepper

    async def execute(self, session: CameraSession, identity: str, channel: ChannelRecord, command: str, speed: int) -> None:
        """Carry out one validated command; bridge errors propagate to the dispatcher."""
        if self._closed:
            raise RuntimeError("the PTZ controller is closed")
        stepper = self.stepper(identity, channel.source_token)
        token = channel.source_token
        if command in PAN_TILT_ZOOM_DIRECTIONS:
            pan, tilt, zoom = (sign * velocity(speed) for sign in PAN_TILT_ZOOM_DIRECTIONS[command])
            await stepper.step(
                StepKind.MOTION,
                lambda: self._move(session, identity, token, pan, tilt, zoom),
                lambda: session.stop(token),
            )
        elif command in FOCUS_DIRECTIONS:
            focus = FOCUS_DIRECTIONS[command] * velocity(speed)
            await stepper.step(
                StepKind.FOCUS, lambda: session.focus_move(token, focus), lambda: session.focus_stop(token)
            )
        elif command in IRIS_DIRECTIONS:
            await stepper.alone(lambda: self._iris_notch(session, identity, token, IRIS_DIRECTIONS[command], speed))
        else:
            raise ValueError(f"not a PTZ command: {command!r}")
        _LOGGER.debug("channel %s/%s: %s at speed %d", identity, token, command, speed)

    async def _move(self, session: CameraSession, identity: str, token: str, pan: float, tilt: float, zoom: float) -> None:
        """ContinuousMove with the safety Timeout; without it for devices that refuse one."""
        if identity not in self._move_timeout_refused:
            try:
                await session.continuous_move(token, pan, tilt, zoom, timeout=self._step_seconds + MOVE_TIMEOUT_MARGIN_S)
                return
            except DeviceRequestRejected as error:
                self._move_timeout_refused.add(identity)
                _LOGGER.info("device %s: refuses a ContinuousMove Timeout (%s); moving without one", identity, error)
        await session.continuous_move(token, pan, tilt, zoom)

    async def _iris_notch(self, session: CameraSession, identity: str, token: str, direction: int, speed: int) -> None:
        key = (identity, token)
        if key not in self._iris_ranges:
            settings = await session.imaging_settings(token)
            low, high = settings.iris_min, settings.iris_max
            self._iris_ranges[key] = high - low if low is not None and high is not None else None
        span = self._iris_ranges[key]
        unit = span / IRIS_NOTCHES_PER_RANGE if span else IRIS_UNIT_WITHOUT_RANGE
        value = await session.iris_step(token, direction * unit * velocity(speed))
        _LOGGER.debug("channel %s/%s: iris now %.2f", identity, token, value)

    async def close(self) -> None:
        """Stop every channel still in a step (before the sessions close); idempotent."""
        self._closed = True
        steppers = list(self._steppers.values())
        await asyncio.gather(*(stepper.close() for stepper in steppers))
        _LOGGER.info("PTZ controller closed (%d channel(s) used)", len(steppers))
