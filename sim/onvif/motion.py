"""Motor physics for PTZ heads and focus lenses, driven by an injectable monotonic clock.

A real head keeps moving between requests, so position is not stored but computed on demand:
each axis remembers where it was at its last command (the anchor), its velocity and an optional
deadline, and derives the present position from the clock. Tests advance a fake clock instead of
sleeping. One velocity unit moves one unit of the generic space per second, so a pan sweep from -1
to 1 at full speed takes two seconds.

Absolute and relative moves (and presets) jump to their target at once: the simulator does not
model travel time for them, and the Speed arguments are validated but otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MonotonicClock = Callable[[], float]


def _clamp(value: float, minimum: float, maximum: float) -> float:
    return min(max(value, minimum), maximum)


class LinearAxis:
    """One motor axis moving at constant velocity until stopped, a deadline, or its end stop."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        clock: MonotonicClock,
        position: float = 0.0,
    ) -> None:
        if minimum >= maximum:
            raise ValueError("axis minimum must be below its maximum")
        self.minimum = minimum
        self.maximum = maximum
        self._clock = clock
        self._anchor_position = _clamp(position, minimum, maximum)
        self._anchor_time = clock()
        self._velocity = 0.0
        self._deadline: float | None = None

    def _position_at(self, now: float) -> float:
        end = now if self._deadline is None else min(now, self._deadline)
        elapsed = max(0.0, end - self._anchor_time)
        return _clamp(self._anchor_position + self._velocity * elapsed, self.minimum, self.maximum)

    def _rebase(self) -> float:
        """Fold the motion so far into the anchor, so a new command starts from here."""
        now = self._clock()
        self._anchor_position = self._position_at(now)
        self._anchor_time = now
        return now

    def position(self) -> float:
        """Where the axis is now."""
        return self._position_at(self._clock())

    @property
    def velocity(self) -> float:
        """The commanded velocity (units per second), zero when stopped."""
        return self._velocity

    def is_moving(self) -> bool:
        """Moving means commanded, before the deadline and not pushing against an end stop."""
        if self._velocity == 0.0:
            return False
        now = self._clock()
        if self._deadline is not None and now >= self._deadline:
            return False
        position = self._position_at(now)
        pinned_high = position >= self.maximum and self._velocity > 0
        pinned_low = position <= self.minimum and self._velocity < 0
        return not (pinned_high or pinned_low)

    def move_continuously(self, velocity: float, duration_s: float | None = None) -> None:
        """Start moving at ``velocity``; stop by itself after ``duration_s`` when given."""
        now = self._rebase()
        self._velocity = velocity
        self._deadline = None if duration_s is None else now + duration_s

    def stop(self) -> None:
        """Freeze at the present computed position."""
        self._rebase()
        self._velocity = 0.0
        self._deadline = None

    def jump_to(self, position: float) -> None:
        """Stand still at ``position`` (clamped to the limits) from now on."""
        self._anchor_time = self._clock()
        self._anchor_position = _clamp(position, self.minimum, self.maximum)
        self._velocity = 0.0
        self._deadline = None


@dataclass(frozen=True)
class PtzPosition:
    """Pan and tilt in [-1, 1], zoom in [0, 1] (ONVIF generic position spaces)."""

    pan: float
    tilt: float
    zoom: float


PAN_TILT_RANGE = (-1.0, 1.0)
ZOOM_RANGE = (0.0, 1.0)


class PtzMechanism:
    """The pan, tilt and zoom motors of one channel's head."""

    def __init__(self, clock: MonotonicClock, home: PtzPosition = PtzPosition(0.0, 0.0, 0.0)) -> None:
        self.pan = LinearAxis(*PAN_TILT_RANGE, clock, home.pan)
        self.tilt = LinearAxis(*PAN_TILT_RANGE, clock, home.tilt)
        self.zoom = LinearAxis(*ZOOM_RANGE, clock, home.zoom)
        self.home = home

    def position(self) -> PtzPosition:
        """The present position of all three axes."""
        return PtzPosition(self.pan.position(), self.tilt.position(), self.zoom.position())

    def continuous_move(
        self,
        pan_tilt: tuple[float, float] | None,
        zoom: float | None,
        timeout_s: float | None,
    ) -> None:
        """Drive the axes at the given velocities; an omitted component stops its axes."""
        pan_velocity, tilt_velocity = pan_tilt if pan_tilt is not None else (0.0, 0.0)
        self.pan.move_continuously(pan_velocity, timeout_s)
        self.tilt.move_continuously(tilt_velocity, timeout_s)
        self.zoom.move_continuously(zoom if zoom is not None else 0.0, timeout_s)

    def stop(self, pan_tilt: bool, zoom: bool) -> None:
        """Freeze the selected axes where they are."""
        if pan_tilt:
            self.pan.stop()
            self.tilt.stop()
        if zoom:
            self.zoom.stop()

    def move_to(self, pan: float | None, tilt: float | None, zoom: float | None) -> None:
        """Jump the given axes to absolute positions; all motion stops (as with a preset recall)."""
        current = self.position()
        self.pan.jump_to(current.pan if pan is None else pan)
        self.tilt.jump_to(current.tilt if tilt is None else tilt)
        self.zoom.jump_to(current.zoom if zoom is None else zoom)

    def move_by(self, pan: float, tilt: float, zoom: float) -> None:
        """Jump by a translation, clamped at the end stops."""
        current = self.position()
        self.move_to(current.pan + pan, current.tilt + tilt, current.zoom + zoom)

    def pan_tilt_moving(self) -> bool:
        """MoveStatus of the pan/tilt pair."""
        return self.pan.is_moving() or self.tilt.is_moving()

    def zoom_moving(self) -> bool:
        """MoveStatus of the zoom axis."""
        return self.zoom.is_moving()
