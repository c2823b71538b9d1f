"""The durable outbox: every cloud write is written down before it is sent.

An entry moves ``pending`` → ``sent`` → ``done`` (or ``failed`` for a definite refusal). The
``sent`` mark is committed *before* the request leaves, so after a crash or a lost answer the
entry says "this may already have happened": the owner must look the result up before sending
again. That is what makes registration exactly-once across retries and restarts.

Entries for the same ``kind`` and ``subject`` coalesce while still ``pending``: only the latest
state of a device matters, so a long cloud outage queues one entry per device, not one per
change.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .store import StateStore


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
    def put(connection: sqlite3.Connection, kind: str, subject: str, payload: dict[str, Any], now: float) -> int:
        """Queue a write inside the caller's transaction; coalesce with a pending one.

        An entry already ``sent`` is never rewritten: its request may be in the cloud, and the
        new state follows as its own entry after it.
        """
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        row = connection.execute(
            "SELECT id FROM outbox WHERE kind = ? AND subject = ? AND state = 'pending' ORDER BY id DESC LIMIT 1",
            (kind, subject),
        ).fetchone()
        if row is not None:
            connection.execute("UPDATE outbox SET payload = ?, updated_at = ? WHERE id = ?", (text, now, row["id"]))
            return int(row["id"])
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

    async def mark_sent(self, entry_id: int) -> None:
        """Commit "the request may now reach the cloud" before sending it."""
        await self._set_state(entry_id, EntryState.SENT, "", count_attempt=True)

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
