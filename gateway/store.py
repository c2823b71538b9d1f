"""The gateway's one SQLite database: inventory, outbox, recording index, presets, snapshots.

One connection, owned by one thread, is the only writer: every statement runs on that thread
(``asyncio`` callers await it), so the event loop never blocks on disk and writes never race.
WAL mode lets readers in other processes (``ivc-gateway status``) look without blocking it, and
``synchronous=FULL`` makes a committed transaction survive power loss, which the outbox's
"intent written before the call" promise depends on.

Schema changes are numbered migrations applied in one transaction each, with the number kept in
``PRAGMA user_version``: a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

DATABASE_NAME: Final = "gateway.sqlite3"

MIGRATIONS: Final[Sequence[str]] = (
    # 1: inventory (devices and channels by stable identity) and the cloud-write outbox.
    """
    CREATE TABLE devices (
        identity        TEXT PRIMARY KEY,
        cloud_device_id TEXT UNIQUE,
        kind            TEXT NOT NULL CHECK (kind IN ('ipc', 'nvr')),
        name            TEXT NOT NULL,
        host            TEXT NOT NULL,
        port            INTEGER NOT NULL,
        username        TEXT NOT NULL DEFAULT '',
        manufacturer    TEXT NOT NULL DEFAULT '',
        model           TEXT NOT NULL DEFAULT '',
        firmware        TEXT NOT NULL DEFAULT '',
        serial          TEXT NOT NULL DEFAULT '',
        mac             TEXT NOT NULL DEFAULT '',
        capabilities    TEXT NOT NULL DEFAULT '{}',
        state           TEXT NOT NULL DEFAULT 'new',
        fault           TEXT NOT NULL DEFAULT '',
        enabled         INTEGER NOT NULL DEFAULT 1,
        first_seen      REAL NOT NULL,
        last_seen       REAL NOT NULL
    );
    CREATE TABLE channels (
        device_identity  TEXT NOT NULL REFERENCES devices(identity) ON DELETE CASCADE,
        source_token     TEXT NOT NULL,
        position         INTEGER NOT NULL,
        cloud_channel_id TEXT UNIQUE,
        name             TEXT NOT NULL,
        main_uri         TEXT NOT NULL DEFAULT '',
        sub_uri          TEXT NOT NULL DEFAULT '',
        main_profile     TEXT NOT NULL DEFAULT '',
        sub_profile      TEXT NOT NULL DEFAULT '',
        ptz              INTEGER NOT NULL DEFAULT 0,
        imaging          INTEGER NOT NULL DEFAULT 0,
        state            TEXT NOT NULL DEFAULT 'unknown',
        PRIMARY KEY (device_identity, source_token)
    );
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        subject     TEXT NOT NULL,
        payload     TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX outbox_open ON outbox (state, id) WHERE state IN ('pending', 'sent');
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the recording index (gateway/recordings.py): closed segments and recording gaps.
    # Paths are relative to the recordings directory; times are POSIX seconds (UTC).
    """
    CREATE TABLE segments (
        id         INTEGER PRIMARY KEY,
        channel    TEXT NOT NULL,
        start      REAL NOT NULL,
        end        REAL NOT NULL CHECK (end >= start),
        path       TEXT NOT NULL UNIQUE,
        bytes      INTEGER NOT NULL CHECK (bytes >= 0),
        codec      TEXT NOT NULL,
        has_audio  INTEGER NOT NULL DEFAULT 0,
        dropped    INTEGER NOT NULL DEFAULT 0,
        state      TEXT NOT NULL DEFAULT 'complete' CHECK (state IN ('complete', 'recovered')),
        protected  INTEGER NOT NULL DEFAULT 0,
        pins       INTEGER NOT NULL DEFAULT 0 CHECK (pins >= 0),
        indexed_at REAL NOT NULL
    );
    CREATE INDEX segments_by_start ON segments (channel, start);
    CREATE INDEX segments_by_end ON segments (channel, end);
    CREATE TABLE gaps (
        id      INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        start   REAL NOT NULL,
        end     REAL NOT NULL CHECK (end >= start),
        reason  TEXT NOT NULL
    );
    CREATE INDEX gaps_by_start ON gaps (channel, start);
    """,
    # 3: device control (gateway/presets.py, gateway/snapshots.py): the cloud's preset indexes
    # 1-10 mapped to ONVIF preset tokens per channel, and the index of stored snapshots.
    # Snapshot paths are <state_dir>/snapshots/<channel>/<file_name>, ``channel`` being the
    # channel's local id; a row outlives its file (``deleted_at``) so expired images are listed
    # with empty URLs, as the spec's GBDeviceSnapInfo describes.
    """
    CREATE TABLE presets (
        device_identity TEXT NOT NULL,
        source_token    TEXT NOT NULL,
        preset_index    INTEGER NOT NULL CHECK (preset_index BETWEEN 1 AND 10),
        preset_token    TEXT NOT NULL,
        name            TEXT NOT NULL,
        updated_at      REAL NOT NULL,
        PRIMARY KEY (device_identity, source_token, preset_index),
        FOREIGN KEY (device_identity, source_token)
            REFERENCES channels (device_identity, source_token) ON DELETE CASCADE
    );
    CREATE TABLE snapshots (
        id          INTEGER PRIMARY KEY,
        channel     TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        file_name   TEXT NOT NULL,
        bytes       INTEGER NOT NULL CHECK (bytes >= 0),
        source      TEXT NOT NULL CHECK (source IN ('onvif', 'rtsp')),
        created_at  REAL NOT NULL,
        received_at REAL NOT NULL,
        expires_at  REAL NOT NULL,
        deleted_at  REAL,
        UNIQUE (channel, file_name)
    );
    CREATE INDEX snapshots_by_time ON snapshots (channel, created_at);
    CREATE INDEX snapshots_live_by_expiry ON snapshots (expires_at) WHERE deleted_at IS NULL;
    """,
    # 4: recording uploads (gateway/upload.py): one row per segment an upload plan made due.
    # ``segment_path`` (relative to the recordings directory, like segments.path) is the key, so
    # a segment is sent at most once even if the index row is rebuilt; 'uploaded' and 'missing'
    # (the file was gone when its turn came) are final.
    """
    CREATE TABLE uploads (
        segment_path TEXT PRIMARY KEY,
        segment_id   INTEGER NOT NULL,
        channel      TEXT NOT NULL,
        plan_id      TEXT NOT NULL,
        state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'uploaded', 'missing')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT NOT NULL DEFAULT '',
        next_attempt REAL NOT NULL DEFAULT 0,
        queued_at    REAL NOT NULL,
        uploaded_at  REAL
    );
    CREATE INDEX uploads_pending ON uploads (next_attempt) WHERE state = 'pending';
    """,
)


class StoreError(Exception):
    """The database cannot be opened or migrated (corrupt file, newer schema, full disk)."""


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def migrate(connection: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the schema to the newest version; return the version reached."""
    current = connection.execute("PRAGMA user_version").fetchone()[0]
    if current > len(migrations):
        raise StoreError(f"database schema version {current} is newer than this gateway ({len(migrations)})")
    for version in range(current + 1, len(migrations) + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migrations[version - 1]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        _LOGGER.info("database migrated to schema version %d", version)
    return len(migrations)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit behind our back)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


class StateStore:
    """Async façade over the single-writer SQLite connection.

    Use as ``async with StateStore(state_dir) as store``; every call runs on the store's own
    thread in submission order.
    """

    def __init__(self, state_dir: Path, migrations: Sequence[str] = MIGRATIONS) -> None:
        self.path = Path(state_dir) / DATABASE_NAME
        self._migrations = migrations
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._thread_ident: int | None = None

    async def __aenter__(self) -> StateStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the directory and database if needed and migrate it."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-store")
        try:
            await self._submit(self._open_on_thread)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    def _open_on_thread(self) -> None:
        self._thread_ident = threading.get_ident()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = _connect(self.path)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot open {self.path}: {err}") from err
        try:
            migrate(connection, self._migrations)
        except BaseException as err:
            connection.close()
            if isinstance(err, sqlite3.DatabaseError):
                raise StoreError(f"cannot migrate {self.path}: {err}") from err
            raise
        self._connection = connection

    async def close(self) -> None:
        """Checkpoint and close; idempotent."""
        if self._executor is None:
            return
        try:
            await self._submit(self._close_on_thread)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_on_thread(self) -> None:
        if self._connection is not None:
            self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.close()
            self._connection = None

    async def _submit(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError("the state store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, for code already running on the store thread (inside :meth:`run`)."""
        if self._connection is None or threading.get_ident() != self._thread_ident:
            raise StoreError("the connection is only usable on the store thread")
        return self._connection

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the store thread (no transaction is opened for it)."""
        return await self._submit(lambda: fn(self.connection))

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in one ``BEGIN IMMEDIATE`` transaction: all of it or nothing."""

        def body() -> T:
            connection = self.connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = fn(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await self._submit(body)

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in autocommit; return the number of rows changed."""
        return await self._submit(lambda: self.connection.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a query and return every row."""
        return await self._submit(lambda: self.connection.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        """Run a query and return its first row, if any."""
        return await self._submit(lambda: self.connection.execute(sql, params).fetchone())

    async def schema_version(self) -> int:
        """The migrated schema version."""
        row = await self.fetchone("PRAGMA user_version")
        assert row is not None
        return int(row[0])
