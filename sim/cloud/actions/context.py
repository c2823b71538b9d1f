"""What an action handler gets besides its parameters, and the handler signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..schema import Params
from ..store import CloudStore

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActionContext:
    """One verified request: the store, the request time (emulator clock), region and caller."""

    store: CloudStore
    now: float
    region: str | None
    secret_id: str
    action: str


Handler = Callable[[ActionContext, Params], Result | None | Awaitable[Result | None]]
