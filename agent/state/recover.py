"""`pbx-agent state recover`: the documented way out when the state store is missing, empty or
damaged. The old file (with its journals) is moved aside, never deleted; a new store is
created and every row that can still be read from the old one is copied in, table by table;
what could not be read is reported. The new store remembers when it was recovered, so that
signed commands issued before then are refused (their used nonces may be lost).

Run it with the daemon stopped."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import StateError
from agent.state import integrity
from agent.state.migrations import MIGRATIONS
from agent.state.store import connect

RECOVERED_AT = "state_recovered_at"  # meta key: when the store was last recovered
COMPANIONS = (*integrity.JOURNALS, "-shm")


@dataclass
class Recovery:
    """What `recover` did."""

    kept: Path | None  # the old file, moved aside (None when there was none)
    salvaged: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    lost: dict[str, str] = field(default_factory=dict)  # table (or "*") -> why not (all) copied


def recover(path: Path, *, now: datetime | None = None) -> Recovery:
    """Move the store at `path` aside and start a new one with what can be read of it."""
    now = now or datetime.now(UTC)
    kept = _move_aside(path, now)
    new = connect(path)
    try:
        result = Recovery(kept)
        if kept is not None and not integrity.is_empty(kept):
            _salvage(kept, new, result)
        elif kept is not None:
            result.lost["*"] = "the old file was empty"
        with new:
            new.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (RECOVERED_AT, now.isoformat()),
            )
        integrity.quick_check(new, path)
    finally:
        new.close()
    return result


def _move_aside(path: Path, now: datetime) -> Path | None:
    """Rename the store and its journals to `NAME.damaged-STAMP[-wal|-shm|-journal]`, so the
    old file still opens with its own write-ahead log."""
    kept = path.with_name(f"{path.name}.damaged-{now:%Y%m%dT%H%M%SZ}")
    moved = None
    for suffix in ("", *COMPANIONS):
        source = Path(f"{path}{suffix}")
        if source.exists():
            try:
                source.rename(f"{kept}{suffix}")
            except OSError as exc:
                raise StateError(f"cannot move {source} aside: {exc.strerror}") from exc
            if not suffix:
                moved = kept
    return moved


def diagnose(path: Path) -> str | None:
    """Why the store at `path` needs recovering, or None when it is whole (read only)."""
    if integrity.is_empty(path):
        return "missing or empty"
    try:
        conn = _read_only(path)
        try:
            integrity.quick_check(conn, path)
        finally:
            conn.close()
    except (StateError, sqlite3.Error) as exc:
        return str(exc)
    return None


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes `path` (no checkpoint of its journal on close)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA user_version").fetchone()
    return conn


def _salvage(kept: Path, new: sqlite3.Connection, result: Recovery) -> None:
    try:
        old = _read_only(kept)
    except sqlite3.Error as exc:
        result.lost["*"] = str(exc)
        return
    try:
        try:
            version = int(old.execute("PRAGMA user_version").fetchone()[0])
            old_tables = {
                str(r[0])
                for r in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.Error as exc:
            result.lost["*"] = f"unreadable: {exc}"
            return
        if version > len(MIGRATIONS):
            raise StateError(
                f"{kept} has schema version {version}, newer than this agent knows; "
                "recover it with the pbx-agent version that wrote it"
            )
        tables = [
            str(r[0])
            for r in new.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            if table in old_tables:
                _copy_table(old, new, table, result)
    finally:
        old.close()


def _copy_table(old: sqlite3.Connection, new: sqlite3.Connection, table: str, r: Recovery) -> None:
    """Copy the rows of `table` that can be read, in order, until the first unreadable page."""
    try:
        columns = [str(c[1]) for c in new.execute(f'PRAGMA table_info("{table}")')]
        present = {str(c[1]) for c in old.execute(f'PRAGMA table_info("{table}")')}
    except sqlite3.Error as exc:
        r.lost[table] = str(exc)
        return
    shared = ", ".join(f'"{c}"' for c in columns if c in present)
    marks = ", ".join("?" for c in columns if c in present)
    copied = 0
    with new:
        try:
            rows = old.execute(f'SELECT {shared} FROM "{table}"')  # names from our own schema
            for row in rows:
                new.execute(f'INSERT OR REPLACE INTO "{table}" ({shared}) VALUES ({marks})', row)
                copied += 1
        except sqlite3.Error as exc:
            r.lost[table] = f"{exc} (after {copied} rows)"
    if copied:
        r.salvaged[table] = copied


def describe(result: Recovery, path: Path) -> list[str]:
    """The report, a line each, for the CLI."""
    lines = [f"new state store: {path}"]
    if result.kept is not None:
        lines.append(f"old file kept as: {result.kept}")
    for table, rows in sorted(result.salvaged.items()):
        lines.append(f"  salvaged {rows} rows of {table}")
    for table, why in sorted(result.lost.items()):
        what = "nothing could be read" if table == "*" else f"{table}: not all rows read"
        lines.append(f"  LOST {what}: {why}")
    lines.append(
        "signed commands issued before now are refused (used nonces may be lost); a lost "
        "usage chain starts again at its first report"
    )
    return lines
