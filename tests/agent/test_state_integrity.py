"""State integrity: a missing or empty state.db where the agent ran before, or a damaged one, is
refused with the recovery command, never silently replaced; `recover` keeps the old file and
saves every row it can still read."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from agent.errors import StateError
from agent.state import StateStore
from agent.state.recover import RECOVERED_AT, describe, recover

PAGE = 4096


async def make_store(path: Path, polls: int = 0) -> None:
    store = await StateStore.open(path)
    await store.set_meta("licence_max_serial", "41")
    for n in range(polls):
        await store.record_poll(
            ts=f"2026-11-25T00:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
            ok=True,
            duration_ms=n,
            facts={"filler": "x" * 1500},
            endpoints=[],
            error=None,
        )
    await store.close()


def garble(db: Path, count: int = 20) -> None:
    """Overwrite `count` pages from the middle of `db` on with random bytes."""
    pages = db.stat().st_size // PAGE
    assert pages >= 8
    first = pages // 2
    with db.open("r+b") as fh:
        fh.seek(first * PAGE)
        fh.write(os.urandom(min(count, pages - first - 1) * PAGE))


async def test_first_start_creates_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = await StateStore.open(state / "state.db", prior_state=[state / "agent-ed25519.pem"])
    await store.close()
    assert (state / "state.db").stat().st_size > 0


@pytest.mark.parametrize("empty", [True, False], ids=["empty", "missing"])
async def test_missing_or_empty_store_beside_an_earlier_run_is_refused(
    tmp_path: Path, empty: bool
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key = state / "agent-ed25519.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    archives = state / "backups"
    archives.mkdir()
    (archives / "20261125T023000000000Z.tar.zst.age").write_bytes(b"age")
    db = state / "state.db"
    if empty:
        db.touch()
    with pytest.raises(StateError) as refused:
        await StateStore.open(db, prior_state=[key, archives], recovery="RECOVER-CMD")
    message = str(refused.value)
    assert ("empty (0 bytes)" if empty else "is missing") in message
    assert str(key) in message and str(archives) in message
    assert "usage report chain" in message and message.endswith("RECOVER-CMD")
    assert db.exists() == empty and (not empty or db.stat().st_size == 0), "left as it was"


async def test_a_write_ahead_log_alone_shows_an_earlier_run(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    wal = db.with_name("state.db-wal")
    wal.write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 28)
    with pytest.raises(StateError, match=r"state\.db-wal"):
        await StateStore.open(db)


async def test_garbage_pages_mid_file_are_found_at_start(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    await make_store(db, polls=3000)
    garble(db)
    with pytest.raises(StateError) as refused:
        await StateStore.open(db, recovery="RECOVER-CMD")
    assert "is damaged (" in str(refused.value) and str(refused.value).endswith("RECOVER-CMD")


async def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(3 * PAGE))
    with pytest.raises(StateError, match=r"is damaged .*not a database"):
        await StateStore.open(db)


async def test_recover_keeps_the_old_file_and_saves_what_it_can(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    await make_store(db, polls=3000)
    garble(db)
    damaged = db.read_bytes()

    result = recover(db)
    assert result.kept is not None and result.kept.read_bytes() == damaged
    assert result.salvaged["meta"] >= 1, "the meta table lies in the file's first pages"
    assert "pbx_polls" in result.lost, "the garbled pages held poll rows"
    report = "\n".join(describe(result, db))
    assert "LOST pbx_polls" in report and str(result.kept) in report

    store = await StateStore.open(db, prior_state=[result.kept])
    try:
        assert await store.get_meta("licence_max_serial") == "41"
        assert await store.get_meta(RECOVERED_AT)
    finally:
        await store.close()


async def test_recover_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.touch()
    result = recover(db)
    assert result.lost == {"*": "the old file was empty"}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    finally:
        conn.close()
