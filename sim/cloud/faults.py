"""Injected faults: make the emulated cloud slow, wrong, silent or down for chosen actions.

A fault applies to the signed calls of one action (or ``"*"`` for all), either until cleared or
for its next ``times`` calls. Kinds, combinable with a delay:

* ``delay`` — sleep that many seconds before the action runs (the answer is late too);
* ``error`` — answer with this iss error code; nothing is applied;
* ``drop`` — run the action (its writes are committed), then close the connection without an
  answer: the "did my AddUserDevice happen?" case a client must resolve without duplicating;
* ``http_status`` — answer with this HTTP status (e.g. 503) and a non-iss body; nothing applied.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gateway.iss.codes import ERROR_CODES

ANY_ACTION = "*"


@dataclass
class Fault:
    """One injected fault (see module docstring); ``times`` None means "until cleared"."""

    action: str
    delay: float = 0.0
    error: str | None = None
    drop: bool = False
    http_status: int | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if not self.action:
            raise ValueError("a fault needs an action name (or '*')")
        if not (isinstance(self.delay, (int, float)) and math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError("delay must be a finite number of seconds >= 0")
        if self.error is not None and self.error not in ERROR_CODES:
            raise ValueError(f"undocumented iss error code {self.error!r}")
        if self.http_status is not None and not 400 <= self.http_status <= 599:
            raise ValueError("http_status must be a 4xx or 5xx status")
        if sum((self.error is not None, self.drop, self.http_status is not None)) > 1:
            raise ValueError("choose at most one of error, drop, http_status")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or omitted for 'until cleared')")
        if self.delay == 0 and self.error is None and not self.drop and self.http_status is None:
            raise ValueError("a fault must delay, fail, drop or answer an HTTP status")

    @property
    def kind(self) -> str:
        """A short label for the call log."""
        if self.error is not None:
            return "error"
        if self.drop:
            return "drop"
        if self.http_status is not None:
            return "http_status"
        return "delay"

    @classmethod
    def from_wire(cls, document: dict[str, Any]) -> Fault:
        """Build from the admin endpoint's JSON (same member names); raises ValueError."""
        unknown = set(document) - {"action", "delay", "error", "drop", "http_status", "times"}
        if unknown:
            raise ValueError(f"unknown fault members: {sorted(unknown)}")
        if not isinstance(document.get("action"), str):
            raise TypeError("'action' must be a string")
        return cls(
            action=document["action"],
            delay=float(document.get("delay", 0.0)),
            error=document.get("error"),
            drop=bool(document.get("drop", False)),
            http_status=document.get("http_status"),
            times=document.get("times"),
        )

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """The active faults, first match wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[Fault]:
        return list(self._faults)

    def take(self, action: str) -> Fault | None:
        """The fault for this call of ``action``, using up one of its ``times``."""
        for fault in self._faults:
            if fault.action in (action, ANY_ACTION):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None
