"""Everything one running emulator shares between its API, its admin endpoints and its Python API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .faults import FaultBook
from .ratelimit import RequestRateLimiter
from .reports import ChannelSource
from .store import CloudStore

REDACTED = "***"
SENSITIVE_PARAMETERS = frozenset({"Password"})


@dataclass(frozen=True, slots=True)
class ForwardedCall:
    """A device command the cloud would relay to a gateway (ControlDevicePTZ, PlayRecord, ...)."""

    action: str
    params: dict[str, Any]
    region: str | None
    secret_id: str
    request_id: str
    store: CloudStore


# Answers the call with the action's output fields, or raises gateway.iss.errors.IssError.
ActionForwarder = Callable[[ForwardedCall], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call to ``POST /`` as the call log shows it (``code`` is "OK" on success)."""

    action: str
    code: str
    at: float
    request_id: str
    secret_id: str | None = None
    fault: str | None = None
    params: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "code": self.code,
            "at": self.at,
            "request_id": self.request_id,
            "secret_id": self.secret_id,
            "fault": self.fault,
            "params": dict(self.params) if self.params is not None else None,
        }


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of request parameters safe to keep in the call log (passwords masked)."""
    return {name: REDACTED if name in SENSITIVE_PARAMETERS else value for name, value in params.items()}


class CallLog:
    """Every API call in arrival order, for tests that count calls ("zero writes when idle")."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []

    def append(self, record: CallRecord) -> None:
        self._records.append(record)

    def records(self, action: str | None = None) -> list[CallRecord]:
        return [record for record in self._records if action is None or record.action == action]

    def clear(self) -> None:
        self._records.clear()


@dataclass
class EmulatorState:
    """Shared state hung off the aiohttp app under :data:`EMULATOR_STATE`."""

    state_dir: Path
    keys: dict[str, str]
    clock: Callable[[], float]
    limiter: RequestRateLimiter
    seed: bool = True
    faults: FaultBook = field(default_factory=FaultBook)
    calls: CallLog = field(default_factory=CallLog)
    forwarder: ActionForwarder | None = None
    channel_source: ChannelSource | None = None
    endpoint: str = ""
    _store: CloudStore | None = None

    @property
    def store(self) -> CloudStore:
        if self._store is None:
            raise RuntimeError("the emulator is not running")
        return self._store

    def attach_store(self, store: CloudStore | None) -> None:
        """Set (or, with None, clear) the open store for the app's lifetime."""
        self._store = store


EMULATOR_STATE = web.AppKey("emulator_state", EmulatorState)
