"""Client-side rate limiting per action, so the gateway never earns ``RequestLimitExceeded``.

The spec counts limits per action + region + sub-account: 20 requests/s for every action. The
cloud's ListGatewayDevices is treated more conservatively (5/s) because reconcile pages through
it. Calls of one action are spaced evenly (a token bucket that holds one token): the cloud may
count any one-second window, and a bucket that saved up a burst would exceed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

DEFAULT_RATE = 20.0
SAFETY = 0.95  # stay a little under the limit: the cloud's window and our clock differ slightly
ACTION_RATES: Mapping[str, float] = {"ListGatewayDevices": 5.0}


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    updated: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ActionRateLimiter:
    """Token buckets keyed by action; :meth:`acquire` waits until the action may be called."""

    def __init__(
        self,
        rates: Mapping[str, float] = ACTION_RATES,
        default_rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = dict(rates)
        self._default = default_rate
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def rate(self, action: str) -> float:
        """Requests per second this client sends of ``action`` (the limit, less a margin)."""
        return self._rates.get(action, self._default) * SAFETY

    async def acquire(self, action: str) -> None:
        """Take one token for ``action``, sleeping as long as the bucket needs to refill."""
        bucket = self._buckets.get(action)
        if bucket is None:
            rate = self.rate(action)
            bucket = self._buckets[action] = _Bucket(rate, 1.0, self._clock())
        async with bucket.lock:
            while True:
                now = self._clock()
                bucket.tokens = min(1.0, bucket.tokens + (now - bucket.updated) * bucket.rate)
                bucket.updated = now
                if bucket.tokens >= 1.0:
                    bucket.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - bucket.tokens) / bucket.rate)
