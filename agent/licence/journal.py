"""The enforcement journal in SQLite: one row per change the agent makes on the PBX to switch a
feature off, with the exact prior value read from the PBX before the change.

    applying  journalled; the PBX change may or may not have happened (a crash in between)
    applied   made and proven on the live objects
    undoing   renewal began putting the prior value back (a crash: it may already be back)
    undone    the prior value is back
    conflict  changed on the PBX by someone else since: left as it is
    done      a one-shot cut (nothing to undo), kept for the record

Rows are written before the PBX is touched and updated after, so a crash anywhere converges
on restart: applying again is a no-op for a change already there (drivers apply idempotently),
undoing an `undoing` row whose change is gone just finishes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.models import Switch, SwitchKind

ACTIVE = ("applying", "applied", "undoing")
COLUMNS = ("feature", "kind", "target", "place", "value", "prior")


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    switch: Switch
    prior: str
    state: str
    reason: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "feature": self.switch.feature,
            "kind": self.switch.kind.value,
            "target": self.switch.target,
            "place": self.switch.place,
            "value": self.switch.value,
            "prior": self.prior,
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
        "FROM enforcement_switches"
    )
    rows = (
        conn.execute(query + " WHERE feature = ? ORDER BY seq", (feature,))
        if feature
        else conn.execute(query + " ORDER BY seq")
    )
    return [
        Entry(
            seq=int(r[0]),
            switch=Switch(feature=r[1], kind=SwitchKind(r[2]), target=r[3], place=r[4], value=r[5]),
            prior=r[6],
            state=r[7],
            reason=r[8],
            created_at=r[9],
            updated_at=r[10],
        )
        for r in rows
    ]


def begin(conn: sqlite3.Connection, switches: Sequence[Switch], priors: Sequence[str]) -> list[int]:
    """Journal changes about to be made (state `applying`), with their prior values."""
    now = _now()
    seqs = []
    with conn:
        for switch, prior in zip(switches, priors, strict=True):
            cursor = conn.execute(
                f"INSERT INTO enforcement_switches ({', '.join(COLUMNS)}, state, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'applying', ?, ?)",
                (
                    switch.feature,
                    switch.kind.value,
                    switch.target,
                    switch.place,
                    switch.value,
                    prior,
                    now,
                    now,
                ),
            )
            seqs.append(int(cursor.lastrowid or 0))
    return seqs


def set_state(
    conn: sqlite3.Connection, seqs: Sequence[int], state: str, reason: str | None = None
) -> None:
    with conn:
        mark(conn, seqs, state, reason)


def mark(
    conn: sqlite3.Connection, seqs: Sequence[int], state: str, reason: str | None = None
) -> None:
    """`set_state` inside the caller's transaction (with the message that tells of it)."""
    now = _now()
    conn.executemany(
        "UPDATE enforcement_switches SET state = ?, reason = ?, updated_at = ? WHERE seq = ?",
        [(state, reason, now, seq) for seq in seqs],
    )


def forget(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """Drop `applying` rows of changes that were not made (refused, put back)."""
    with conn:
        conn.executemany(
            "DELETE FROM enforcement_switches WHERE seq = ? AND state = 'applying'",
            [(seq,) for seq in seqs],
        )
