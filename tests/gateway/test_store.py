"""State store: WAL, numbered migrations, one writer thread, consistent after SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gateway.store import MIGRATIONS, StateStore, StoreError


async def test_open_migrates_and_uses_wal(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "state") as store:
        assert await store.schema_version() == len(MIGRATIONS)
        mode = await store.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
        tables = {row[0] for row in await store.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"devices", "channels", "outbox", "meta"} <= tables


async def test_reopen_keeps_data_and_applies_only_new_migrations(tmp_path: Path) -> None:
    async with StateStore(tmp_path) as store:
        await store.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
    extra = (*MIGRATIONS, "ALTER TABLE meta ADD COLUMN note TEXT NOT NULL DEFAULT '';")
    async with StateStore(tmp_path, migrations=extra) as store:
        assert await store.schema_version() == len(extra)
        row = await store.fetchone("SELECT value, note FROM meta WHERE key = 'k'")
        assert row is not None and tuple(row) == ("v", "")


async def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    async with StateStore(tmp_path):
        pass
    broken = (*MIGRATIONS, "CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;")
    with pytest.raises(StoreError, match="cannot migrate"):
        async with StateStore(tmp_path, migrations=broken):
            pass
    async with StateStore(tmp_path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.fetchone("SELECT name FROM sqlite_master WHERE name = 'half'") is None


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    async with StateStore(tmp_path, migrations=(*MIGRATIONS, "CREATE TABLE later (x);")):
        pass
    with pytest.raises(StoreError, match="newer"):
        async with StateStore(tmp_path):
            pass


async def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    def two_writes_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
        connection.execute("INSERT INTO meta (key, value) VALUES ('a', '2')")  # primary key clash

    async with StateStore(tmp_path) as store:
        with pytest.raises(sqlite3.IntegrityError):
            await store.transaction(two_writes_then_fail)
        assert await store.fetchall("SELECT * FROM meta") == []


async def test_all_statements_run_on_one_thread(tmp_path: Path) -> None:
    seen: set[int] = set()

    def record(connection: sqlite3.Connection) -> None:
        seen.add(threading.get_ident())

    async with StateStore(tmp_path) as store:
        for _ in range(20):
            await store.run(record)
        with pytest.raises(StoreError, match="store thread"):
            _ = store.connection
    assert len(seen) == 1 and threading.get_ident() not in seen


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.fetchall("SELECT 1")


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.store import StateStore

    async def main():
        async with StateStore(Path(sys.argv[1])) as store:
            n = 0
            while True:
                def pair(c, n=n):
                    now = float(n)
                    c.execute("INSERT INTO outbox (kind, subject, payload, created_at, updated_at) VALUES ('a', ?, '{}', ?, ?)", (str(n), now, now))
                    c.execute("INSERT INTO outbox (kind, subject, payload, created_at, updated_at) VALUES ('b', ?, '{}', ?, ?)", (str(n), now, now))
                await store.transaction(pair)
                n += 1
                if n == 50:
                    print("writing", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_write_leaves_a_consistent_database(tmp_path: Path, round_: int) -> None:
    """Each transaction writes a pair of rows; after SIGKILL every pair is whole and the file is sound."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    connection = sqlite3.connect(tmp_path / "gateway.sqlite3")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(connection.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
        assert counts["a"] == counts["b"] >= 50
        unpaired = connection.execute(
            "SELECT subject FROM outbox GROUP BY subject HAVING COUNT(*) != 2"
        ).fetchall()
        assert unpaired == []
    finally:
        connection.close()
