"""Per action + SecretId request rate limit (the cloud's default is 20 requests/second).

A sliding one-second window on the emulator clock: a frozen test clock makes the limit exact
and the test deterministic; advancing it by a second frees the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

DEFAULT_PER_SECOND = 20
WINDOW_SECONDS = 1.0


class RequestRateLimiter:
    """Admits at most ``per_second`` calls of one action by one SecretId in any one-second window."""

    def __init__(
        self,
        clock: Callable[[], float],
        per_second: int = DEFAULT_PER_SECOND,
        per_action: Mapping[str, int] | None = None,
    ) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self.per_second = per_second
        self.per_action = dict(per_action or {})
        self.configure(per_second, self.per_action)

    def configure(self, per_second: int, per_action: Mapping[str, int] | None = None) -> None:
        """Change the limits; ``per_action`` overrides the default for the named actions."""
        limits = [per_second, *(per_action or {}).values()]
        if any(not isinstance(limit, int) or limit < 1 for limit in limits):
            raise ValueError("rate limits must be integers >= 1")
        self.per_second = per_second
        self.per_action = dict(per_action or {})
        self._windows.clear()

    def limit_for(self, action: str) -> int:
        return self.per_action.get(action, self.per_second)

    def admit(self, action: str, secret_id: str) -> bool:
        """Count this call if the window has room; False means "answer RequestLimitExceeded"."""
        now = self._clock()
        window = self._windows.setdefault((action, secret_id), deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.limit_for(action):
            return False
        window.append(now)
        return True
