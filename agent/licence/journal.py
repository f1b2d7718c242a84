"""The enforcement journal in SQLite: one row per agent line on the PBX, with its state.

    applying  written to the journal, the PBX change may or may not have happened (crash)
    applied   the line is on the PBX
    undoing   renewal began removing it (crash in between: it may already be gone)
    undone    removed by the agent
    conflict  not found as the agent wrote it when undoing: someone changed it; left alone

Rows are written before the PBX is touched and updated after, so a crash anywhere converges
on restart: applying again is a no-op for lines already present, and undoing an `undoing` row
whose line is gone just finishes it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.models import AgentLine

ACTIVE = ("applying", "applied", "undoing")
COLUMNS = ("feature", "file", "section", "section_type", "option", "value")


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    line: AgentLine
    state: str
    reason: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "feature": self.line.feature,
            "file": self.line.file,
            "section": self.line.section,
            "section_type": self.line.section_type,
            "option": self.line.option,
            "prior": None,
            "value": self.line.value,
            "state": self.state,
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


def entries(conn: sqlite3.Connection, feature: str | None = None) -> list[Entry]:
    query = (
        f"SELECT seq, {', '.join(COLUMNS)}, state, reason, created_at, updated_at "
        "FROM enforcement_journal"
    )
    rows = (
        conn.execute(query + " WHERE feature = ? ORDER BY seq", (feature,))
        if feature
        else conn.execute(query + " ORDER BY seq")
    )
    return [
        Entry(
            int(r[0]),
            AgentLine(
                file=r[2], section=r[3], section_type=r[4], option=r[5], value=r[6], feature=r[1]
            ),
            r[7],
            r[8],
            r[9],
            r[10],
        )
        for r in rows
    ]


def begin_apply(conn: sqlite3.Connection, lines: list[AgentLine]) -> None:
    """Journal lines about to be added (state `applying`)."""
    now = _now()
    with conn:
        conn.executemany(
            f"INSERT INTO enforcement_journal ({', '.join(COLUMNS)}, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'applying', ?, ?)",
            [
                (ln.feature, ln.file, ln.section, ln.section_type, ln.option, ln.value, now, now)
                for ln in lines
            ],
        )


def set_state(
    conn: sqlite3.Connection, seqs: list[int], state: str, reason: str | None = None
) -> None:
    with conn:
        mark(conn, seqs, state, reason)


def mark(conn: sqlite3.Connection, seqs: list[int], state: str, reason: str | None = None) -> None:
    """`set_state` inside the caller's transaction (with the message that tells of it)."""
    now = _now()
    conn.executemany(
        "UPDATE enforcement_journal SET state = ?, reason = ?, updated_at = ? WHERE seq = ?",
        [(state, reason, now, seq) for seq in seqs],
    )


def forget(conn: sqlite3.Connection, seqs: list[int]) -> None:
    """Drop `applying` rows of a change that was refused before anything was written."""
    with conn:
        conn.executemany(
            "DELETE FROM enforcement_journal WHERE seq = ? AND state = 'applying'",
            [(seq,) for seq in seqs],
        )
