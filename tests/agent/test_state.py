"""The state store: one SQLite file, WAL, versioned schema, every query off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from agent.errors import StateError
from agent.state import StateStore
from agent.state.migrations import MIGRATIONS


async def test_creates_migrates_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    store = await StateStore.open(path)
    assert await store.schema_version() == len(MIGRATIONS)
    await store.record_poll(
        ts="2026-11-25T00:00:00+00:00",
        ok=True,
        duration_ms=4,
        facts={"v": 1},
        endpoints=[],
        error=None,
    )
    await store.set_meta("k", "v1")
    await store.set_meta("k", "v2")
    await store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o750

    store = await StateStore.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        last = await store.last_poll()
        assert last is not None and last.ok and last.facts == {"v": 1}
        assert await store.get_meta("k") == "v2"
        mode = await store.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        await store.close()


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StateError, match="newer than this agent knows"):
        await StateStore.open(path)


async def test_queries_run_off_the_loop_and_serialised(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    loop_thread = threading.get_ident()
    seen: set[int] = set()

    def work(conn: sqlite3.Connection, i: int) -> int:
        seen.add(threading.get_ident())
        with conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"k{i}", str(i)))
        return i

    try:
        results = await asyncio.gather(*(store.call(work, i) for i in range(50)))
        assert results == list(range(50))
        assert loop_thread not in seen and len(seen) == 1
    finally:
        await store.close()


async def test_sqlite_errors_become_state_errors(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    try:
        with pytest.raises(StateError):
            await store.call(lambda c: c.execute("SELECT * FROM no_such_table"))
    finally:
        await store.close()
