"""Telling the platform which devices and channels are online: relay ``DeviceState`` events.

The platform learns a gateway device's state only from its gateway (docs/relay-protocol.md):
it marks every device online when the gateway connects and offline when the link drops, and
in between believes the ``DeviceState`` events it receives.

Only the latest state of a device matters, so nothing is queued per change: a device is marked
*dirty* and its current state is read when its event is sent; the backlog is at most one entry
per device however long the link is down. The events are not written to the outbox: after
every (re)connection the whole site's state is sent again (the platform has just marked
everything online), which also covers any event lost with the link that dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

_LOGGER = logging.getLogger(__name__)

DEVICE_STATE_EVENT: Final = "DeviceState"

StateOf = Callable[[str], Awaitable[dict[str, Any] | None]]
"""The event body for a device identity (``DeviceId``, ``Online``, ``Channels``), or None when
there is nothing to say yet (not registered, state not settled)."""


class EventLink(Protocol):
    """The part of :class:`~gateway.relay.RelayLink` the publisher uses."""

    connected: asyncio.Event

    async def send_event(self, event: str, body: dict[str, Any]) -> bool:
        """Send one event; False when the link is down."""


class DeviceStatePublisher:
    """Sends dirty devices' states whenever the link is up; run :meth:`run` as an owned task."""

    def __init__(
        self,
        link: EventLink,
        state_of: StateOf,
        identities: Callable[[], Awaitable[list[str]]],
        *,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """``identities`` lists every device (for a full resend); ``on_sent(bytes)`` counts traffic."""
        self._link = link
        self._state_of = state_of
        self._identities = identities
        self._on_sent = on_sent
        self._dirty: set[str] = set()
        self._resend_all = False
        self._wake = asyncio.Event()
        self.events_sent = 0

    @property
    def backlog(self) -> int:
        """Devices whose state still has to be sent."""
        return len(self._dirty)

    def mark(self, identity: str) -> None:
        """The device's state changed: send it."""
        self._dirty.add(identity)
        self._wake.set()

    def mark_all(self) -> None:
        """Send every device's state (after the link (re)connected)."""
        self._resend_all = True
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: wait to be woken, then send what is dirty while the link is up."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._link.connected.is_set():
                continue  # the relay's connect listener wakes us with mark_all()
            if self._resend_all:
                self._resend_all = False
                self._dirty.update(await self._identities())
            await self._send_dirty()

    async def _send_dirty(self) -> None:
        for identity in sorted(self._dirty):
            # Taken off first: a change while the event is being sent marks it dirty again.
            self._dirty.discard(identity)
            body = await self._state_of(identity)
            if body is None:
                continue
            if not await self._link.send_event(DEVICE_STATE_EVENT, body):
                self._dirty.add(identity)
                _LOGGER.info("relay down: %d device states wait for the reconnection", len(self._dirty))
                return
            self.events_sent += 1
            if self._on_sent is not None:
                self._on_sent(len(json.dumps(body)))
            _LOGGER.debug("DeviceState sent", extra={"device": identity, "online": body.get("Online")})
