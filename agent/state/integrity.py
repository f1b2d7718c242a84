"""Is the state store whole? Checked every time it is opened: a missing or empty `state.db`
where the agent has run before (its signing key, backup archives, or a write-ahead log are
there), or a file that fails SQLite's `quick_check`, is refused with what to do. Starting afresh
silently would restart the usage report chain, forget used command nonces and the licence
serial floor, and lose the backup catalog."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from agent.errors import StateError

RECOVERY = "pbx-agent state recover"
JOURNALS = ("-wal", "-journal")  # SQLite's write-ahead log and rollback journal


def is_empty(path: Path) -> bool:
    """True when `path` is missing or holds no byte."""
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def earlier_run(path: Path, prior_state: Iterable[Path]) -> list[Path]:
    """What shows that an agent kept its state in `path` before: a non-empty journal beside
    it, or any of `prior_state` that exists (a file, or a folder that holds something)."""
    found = [Path(f"{path}{suffix}") for suffix in JOURNALS]
    found = [p for p in found if not is_empty(p)]
    for item in prior_state:
        if item.is_file() or (item.is_dir() and any(item.iterdir())):
            found.append(item)
    return found


def check_present(path: Path, prior_state: Iterable[Path], recovery: str = RECOVERY) -> None:
    """Refuse a missing or empty store when the agent has run here before."""
    if not is_empty(path):
        return
    evidence = earlier_run(path, prior_state)
    if evidence:
        state = "missing" if not path.exists() else "empty (0 bytes)"
        raise StateError(
            f"{path} is {state}, but the agent has run here before "
            f"({', '.join(str(p) for p in evidence)} exist). It will not start afresh silently: "
            "that would restart the usage report chain and forget used command nonces, the "
            "licence serial floor and the backup catalog. Put the file back from a system "
            f"backup if there is one; otherwise start a new state store with: {recovery}"
        )


def damaged(path: Path, detail: str, recovery: str = RECOVERY) -> StateError:
    return StateError(
        f"{path} is damaged ({detail}); the agent will not start with it. Save what can still "
        f"be read into a new state store (the damaged file is kept beside it) with: {recovery}"
    )


def quick_check(conn: sqlite3.Connection, path: Path, recovery: str = RECOVERY) -> None:
    """SQLite's `quick_check` (page structure, record formats; linear in the file's size)."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if rows != ["ok"]:
        raise damaged(path, "quick_check: " + "; ".join(rows)[:300], recovery)
