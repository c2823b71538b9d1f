"""SQLite persistence for the emulated cloud: an in-memory model written through to disk.

Reads are served from memory (the data set of a test is tiny); every request that changes
something runs inside :meth:`CloudStore.transaction`, which serialises requests, and at the end
writes the changed records in one SQLite transaction on the store's own thread. The thread is
owned, not borrowed from the loop's default executor: tests run the blocking SDK client in that
executor, and a store waiting behind the very calls it must answer would deadlock. If the action fails
half-way the in-memory model is reloaded from disk, so a failed request leaves no trace — the
same all-or-nothing behaviour a client expects from the real cloud.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from .records import RECORD_TYPES, Record

logger = logging.getLogger(__name__)

DATABASE_NAME = "cloud.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

RecordT = TypeVar("RecordT")
ResultT = TypeVar("ResultT")

_TYPES_BY_KIND: dict[str, type[Any]] = {cls.KIND: cls for cls in RECORD_TYPES}
_FIELDS_BY_KIND: dict[str, frozenset[str]] = {
    cls.KIND: frozenset(f.name for f in dataclasses.fields(cls)) for cls in RECORD_TYPES
}


class CloudStore:
    """All records of the emulated account, persisted under one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DATABASE_NAME
        self._connection: sqlite3.Connection | None = None
        self._tables: dict[str, dict[str, Any]] = {kind: {} for kind in _TYPES_BY_KIND}
        self._seq: dict[tuple[str, str], int] = {}
        self._next_seq = 1
        self._meta: dict[str, str] = {}
        self._dirty: dict[tuple[str, str], Any | None] = {}
        self._dirty_meta: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-store")

    @classmethod
    async def open(cls, state_dir: Path) -> CloudStore:
        """Open (creating if needed) the database under ``state_dir`` and load it."""
        store = cls(state_dir)
        try:
            await store._run(store._connect_and_load)
        except BaseException:
            store._executor.shutdown(wait=False)
            raise
        return store

    async def close(self) -> None:
        """Close the database and stop the store thread; uncommitted changes are discarded."""
        async with self._lock:
            if self._connection is not None:
                await self._run(self._connection.close)
                self._connection = None
            self._executor.shutdown(wait=True)

    # -- reads ---------------------------------------------------------------------------

    def get(self, record_type: type[RecordT], key: str) -> RecordT | None:
        """The record of ``record_type`` with primary key ``key``, or None."""
        record: RecordT | None = self._tables[record_type.KIND].get(key)  # type: ignore[attr-defined]
        return record

    def all(self, record_type: type[RecordT]) -> list[RecordT]:
        """Every record of ``record_type``, oldest first."""
        return list(self._tables[record_type.KIND].values())  # type: ignore[attr-defined]

    def meta(self, key: str) -> str | None:
        """A free-form value kept next to the records (e.g. "seeded")."""
        return self._meta.get(key)

    # -- writes (only inside a transaction) ----------------------------------------------

    def put(self, record: Record) -> None:
        """Insert or replace ``record``; call again after mutating it so the change is saved."""
        self._require_transaction()
        kind, key = record.KIND, record.key
        table = self._tables[kind]
        if key not in table:
            self._seq[(kind, key)] = self._next_seq
            self._next_seq += 1
        table[key] = record
        self._dirty[(kind, key)] = record

    def delete(self, record: Record) -> None:
        """Remove ``record`` (a no-op if it is already gone)."""
        self._require_transaction()
        kind, key = record.KIND, record.key
        self._tables[kind].pop(key, None)
        self._seq.pop((kind, key), None)
        self._dirty[(kind, key)] = None

    def set_meta(self, key: str, value: str) -> None:
        self._require_transaction()
        self._meta[key] = value
        self._dirty_meta[key] = value

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Serialise a unit of work; commit its writes at the end or roll them all back."""
        async with self._lock:
            try:
                yield
            except BaseException:
                await self._rollback()
                raise
            await self._commit()

    # -- internals -----------------------------------------------------------------------

    async def _run(self, function: Callable[..., ResultT], *args: Any) -> ResultT:
        """Run blocking SQLite work on the store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _require_transaction(self) -> None:
        if not self._lock.locked():
            raise RuntimeError("CloudStore writes must happen inside store.transaction()")

    def _connect_and_load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        self._connection = connection
        self._load()
        logger.debug("cloud store opened at %s", self.path)

    def _load(self) -> None:
        assert self._connection is not None
        self._tables = {kind: {} for kind in _TYPES_BY_KIND}
        self._seq = {}
        rows = self._connection.execute("SELECT kind, id, seq, body FROM records ORDER BY seq").fetchall()
        for kind, key, seq, body in rows:
            record_type = _TYPES_BY_KIND.get(kind)
            if record_type is None:
                logger.warning("ignoring stored record of unknown kind %s", kind)
                continue
            document = {k: v for k, v in json.loads(body).items() if k in _FIELDS_BY_KIND[kind]}
            self._tables[kind][key] = record_type(**document)
            self._seq[(kind, key)] = seq
        self._next_seq = max(self._seq.values(), default=0) + 1
        self._meta = dict(self._connection.execute("SELECT key, value FROM meta").fetchall())

    def _write(self, dirty: dict[tuple[str, str], Any | None], dirty_meta: dict[str, str]) -> None:
        assert self._connection is not None
        upserts = []
        deletes = []
        for (kind, key), record in dirty.items():
            if record is None:
                deletes.append((kind, key))
            else:
                body = json.dumps(dataclasses.asdict(record), ensure_ascii=False)
                upserts.append((kind, key, self._seq[(kind, key)], body))
        with self._connection:  # one SQLite transaction
            self._connection.execute("BEGIN")
            self._connection.executemany("DELETE FROM records WHERE kind = ? AND id = ?", deletes)
            self._connection.executemany(
                "INSERT OR REPLACE INTO records (kind, id, seq, body) VALUES (?, ?, ?, ?)", upserts
            )
            self._connection.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(dirty_meta.items())
            )

    async def _commit(self) -> None:
        if not self._dirty and not self._dirty_meta:
            return
        dirty, dirty_meta = self._dirty, self._dirty_meta
        self._dirty, self._dirty_meta = {}, {}
        try:
            await self._run(self._write, dirty, dirty_meta)
        except BaseException:
            await self._run(self._load)
            raise

    async def _rollback(self) -> None:
        # Handlers may have mutated records in place before failing, so always reload.
        self._dirty, self._dirty_meta = {}, {}
        await self._run(self._load)
