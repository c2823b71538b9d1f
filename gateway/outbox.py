"""The durable outbox: every cloud write is written down before it is sent.

An entry moves ``pending`` → ``sent`` → ``done`` (or ``failed`` for a definite refusal). The
``sent`` mark is committed *before* the request leaves, so after a crash or a lost answer the
entry says "this may already have happened": the owner must look the result up before sending
again. That is what makes registration exactly-once across retries and restarts.

Entries for the same ``kind`` and ``subject`` coalesce while still ``pending``: only the latest
state of a device matters, so a long cloud outage queues one entry per device, not one per
change. The queue is therefore bounded by the site (a few entries per device); the hard limit
:data:`OPEN_ENTRY_LIMIT` only guards against a bug or a runaway site: past it, entries of kinds
that can be rebuilt from state (the reconcile loop finds the drift again) are refused, while
registrations, whose exactly-once promise depends on the entry, are always kept.

Entries are sent one at a time, oldest first, by their owner (the registrar); the
:class:`OutboxDrainer` task retries with backoff while the cloud does not answer, so nothing
else ever waits on the cloud.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from .store import StateStore

_LOGGER = logging.getLogger(__name__)

OPEN_ENTRY_LIMIT: Final = 10_000
"""Open entries allowed before rebuildable kinds are refused (see the module docstring)."""
DONE_RETENTION_SECONDS: Final = 7 * 86400
"""Finished entries are kept this long for ``ivc-gateway status`` and post-mortems."""
SUPERSEDED: Final = "superseded"


class EntryState(enum.StrEnum):
    """Where an outbox entry is in its life."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One intended cloud write."""

    id: int
    kind: str
    subject: str
    payload: dict[str, Any]
    state: EntryState
    attempts: int
    last_error: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxEntry:
        """Build from an ``outbox`` row."""
        return cls(
            id=row["id"],
            kind=row["kind"],
            subject=row["subject"],
            payload=json.loads(row["payload"]),
            state=EntryState(row["state"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
        )


class Outbox:
    """Operations on the ``outbox`` table; each is one transaction on the store thread."""

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    @staticmethod
    def put(
        connection: sqlite3.Connection,
        kind: str,
        subject: str,
        payload: dict[str, Any],
        now: float,
        *,
        rebuildable: bool = False,
    ) -> int:
        """Queue a write inside the caller's transaction; coalesce with a pending one.

        An entry already ``sent`` is never rewritten: its request may be in the cloud, and the
        new state follows as its own entry after it. A ``rebuildable`` write (one the reconcile
        loop would find missing and queue again) is refused past :data:`OPEN_ENTRY_LIMIT`;
        the return value is then 0.
        """
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        row = connection.execute(
            "SELECT id FROM outbox WHERE kind = ? AND subject = ? AND state = 'pending' ORDER BY id DESC LIMIT 1",
            (kind, subject),
        ).fetchone()
        if row is not None:
            connection.execute("UPDATE outbox SET payload = ?, updated_at = ? WHERE id = ?", (text, now, row["id"]))
            return int(row["id"])
        if rebuildable:
            depth = connection.execute("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sent')").fetchone()[0]
            if depth >= OPEN_ENTRY_LIMIT:
                _LOGGER.warning("outbox full (%d open entries): %s for %s not queued", depth, kind, subject)
                return 0
        cursor = connection.execute(
            "INSERT INTO outbox (kind, subject, payload, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (kind, subject, text, now, now),
        )
        return int(cursor.lastrowid or 0)

    async def add(self, kind: str, subject: str, payload: dict[str, Any]) -> int:
        """Queue a write in its own transaction."""
        now = self._clock()
        return await self._store.transaction(lambda c: self.put(c, kind, subject, payload, now))

    async def open_entries(self, kind: str | None = None) -> list[OutboxEntry]:
        """Entries still to be resolved (``pending`` or ``sent``), oldest first."""
        sql = "SELECT * FROM outbox WHERE state IN ('pending', 'sent')"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " AND kind = ?"
            params = (kind,)
        rows = await self._store.fetchall(sql + " ORDER BY id", params)
        return [OutboxEntry.from_row(row) for row in rows]

    async def open_entry(self, kind: str, subject: str) -> OutboxEntry | None:
        """The oldest open entry for ``kind``/``subject``."""
        row = await self._store.fetchone(
            "SELECT * FROM outbox WHERE kind = ? AND subject = ? AND state IN ('pending', 'sent') ORDER BY id LIMIT 1",
            (kind, subject),
        )
        return None if row is None else OutboxEntry.from_row(row)

    def now(self) -> float:
        """The outbox clock (what ``updated_at`` is measured in)."""
        return self._clock()

    async def open_or_touched_since(self, kind: str, subject: str, since: float) -> bool:
        """Whether a ``kind`` write for ``subject`` is open, or was resolved at or after ``since``.

        The reconcile loop asks this before queueing a repair: a write resolved after it read
        the cloud's list may already have repaired what that list shows.
        """
        row = await self._store.fetchone(
            "SELECT 1 FROM outbox WHERE kind = ? AND subject = ? "
            "AND (state IN ('pending', 'sent') OR updated_at >= ?) LIMIT 1",
            (kind, subject, since),
        )
        return row is not None

    async def mark_sent(self, entry_id: int, payload: dict[str, Any] | None = None) -> None:
        """Commit "the request may now reach the cloud" before sending it.

        ``payload`` replaces the stored one with what is actually sent (the latest state of the
        subject), so an owner resolving a lost answer looks for exactly that.
        """
        if payload is not None:
            text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
            await self._store.execute("UPDATE outbox SET payload = ? WHERE id = ?", (text, entry_id))
        await self._set_state(entry_id, EntryState.SENT, "", count_attempt=True)

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """One entry as it is now."""
        row = await self._store.fetchone("SELECT * FROM outbox WHERE id = ?", (entry_id,))
        return None if row is None else OutboxEntry.from_row(row)

    async def supersede_later(self, entry: OutboxEntry, not_after: float) -> int:
        """Close the later pending entries of ``entry``'s kind and subject last changed at or
        before ``not_after``: the write just sent carried the state they describe (a change
        after that moment keeps its entry). Returns how many were closed."""
        return await self._store.execute(
            "UPDATE outbox SET state = 'done', last_error = ?, updated_at = ? "
            "WHERE kind = ? AND subject = ? AND id > ? AND state = 'pending' AND updated_at <= ?",
            (SUPERSEDED, self._clock(), entry.kind, entry.subject, entry.id, not_after),
        )

    async def close_open(self, kinds: Collection[str], subject: str, reason: str) -> int:
        """Fail every open entry of ``kinds`` for ``subject`` (it no longer applies); return how many."""
        marks = ",".join("?" * len(kinds))
        return await self._store.execute(
            f"UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "  # noqa: S608 - placeholders only
            f"WHERE subject = ? AND kind IN ({marks}) AND state IN ('pending', 'sent')",
            (reason, self._clock(), subject, *kinds),
        )

    async def prune(self, older_than: float = DONE_RETENTION_SECONDS) -> int:
        """Delete finished entries last touched more than ``older_than`` seconds ago."""
        return await self._store.execute(
            "DELETE FROM outbox WHERE state IN ('done', 'failed') AND updated_at < ?", (self._clock() - older_than,)
        )

    async def mark_failed(self, entry_id: int, error: str) -> None:
        """The cloud refused the write definitively."""
        await self._set_state(entry_id, EntryState.FAILED, error)

    async def mark_done(self, entry_id: int) -> None:
        """The write is known to have happened."""
        await self._set_state(entry_id, EntryState.DONE, "")

    async def note_error(self, entry_id: int, error: str) -> None:
        """Record why the last attempt is unresolved; the state stays as it is."""
        await self._store.execute(
            "UPDATE outbox SET last_error = ?, updated_at = ? WHERE id = ?", (error, self._clock(), entry_id)
        )

    def finish(self, connection: sqlite3.Connection, entry_id: int) -> None:
        """Mark ``done`` inside the caller's transaction (with the write's local effect)."""
        connection.execute(
            "UPDATE outbox SET state = 'done', last_error = '', updated_at = ? WHERE id = ?", (self._clock(), entry_id)
        )

    async def depth(self) -> int:
        """How many writes wait for the cloud."""
        row = await self._store.fetchone("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sent')")
        return int(row[0]) if row else 0

    async def _set_state(self, entry_id: int, state: EntryState, error: str, *, count_attempt: bool = False) -> None:
        increment = 1 if count_attempt else 0
        await self._store.execute(
            "UPDATE outbox SET state = ?, last_error = ?, attempts = attempts + ?, updated_at = ? WHERE id = ?",
            (state.value, error, increment, self._clock(), entry_id),
        )


class RetryBackoff:
    """Exponential delays with jitter (half to all of ``base * 2**(n-1)``, capped at ``cap``)."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        """Seconds to wait after one more failure."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start over from ``base`` (the last attempt succeeded)."""
        self.failures = 0


SendOpenEntries = Callable[[], Awaitable[float | None]]
"""Sends what it can; returns None when nothing is left open, else seconds until the next try."""


class OutboxDrainer:
    """The background sender: drains the outbox whenever woken, and again after each backoff.

    Run :meth:`run` as an owned task. The owner's ``send_open_entries`` does the sending (one
    entry at a time, oldest first) and decides the backoff; the drainer only makes sure it is
    called again when that delay is over, or at once when something new was queued.
    """

    def __init__(self, send_open_entries: SendOpenEntries, *, failure_delay: float = 5.0) -> None:
        self._send_open_entries = send_open_entries
        self._failure_delay = failure_delay
        self._wake = asyncio.Event()
        self.passes = 0

    def wake(self) -> None:
        """Something was queued (or the cloud may be back): drain now."""
        self._wake.set()

    async def run(self) -> None:
        """Drain at start (entries left by the previous run), then whenever due; until cancelled."""
        delay: float | None = 0.0
        while True:
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                delay = await self._send_open_entries()
            except Exception:  # noqa: BLE001 - a bug in one pass must not stop cloud writes for good
                _LOGGER.exception("outbox drain failed")
                delay = self._failure_delay
            self.passes += 1
