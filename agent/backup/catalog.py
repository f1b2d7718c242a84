"""The backup catalog in SQLite: the local backups (`backups`), the copies the archive host
holds of this site (`offsite_copies`), and the log of every upload and removal there
(`offsite_log`). Plain functions taking the connection, run through `StateStore.call`.

A local backup's `status`: `ok` (its file verified when written), `failed` (no file),
`orphan` (a file found in the store that no row listed: a crash or a read-only disk after its
rename), `missing` (listed, but its file was gone at start), `deleting` (retention removes it:
marked before the file goes, so a crash in between leaves no good row without its file)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any

COLUMNS = (
    "id",
    "started_at",
    "finished_at",
    "status",
    "file",
    "size",
    "sha256",
    "files",
    "content_sha256",
    "changed",
    "error",
    "reason",
    "offsite",
)
LOG_KEPT = 10_000  # offsite_log rows kept


# -- local backups ---------------------------------------------------------------------------


def insert(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
    """A run's row, not yet reported (its `backup` message is queued by `mark_reported`'s
    transaction)."""
    with conn:
        conn.execute(
            f"INSERT INTO backups ({', '.join(COLUMNS)}, reported) "
            f"VALUES ({', '.join('?' * len(COLUMNS))}, 0)",
            [row.get(c) for c in COLUMNS],
        )


def mark_reported(conn: sqlite3.Connection, backup_id: str) -> None:
    """Inside the transaction that queues the run's `backup` message."""
    conn.execute("UPDATE backups SET reported = 1 WHERE id = ?", (backup_id,))


def unreported(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Runs whose message a crash kept from being queued."""
    cursor = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM backups WHERE reported = 0 ORDER BY started_at"
    )
    return [dict(zip(COLUMNS, r, strict=True)) for r in cursor.fetchall()]


def set_status(conn: sqlite3.Connection, backup_id: str, status: str, error: str | None) -> None:
    with conn:
        conn.execute(
            "UPDATE backups SET status = ?, error = ? WHERE id = ?", (status, error, backup_id)
        )


def add_orphan(conn: sqlite3.Connection, backup_id: str, file: str, size: int, at: str) -> None:
    """A file of the store no row listed (a row of that id without a file takes it)."""
    reason = "found in the store at start, not in the catalog"
    with conn:
        updated = conn.execute(
            "UPDATE backups SET status = 'orphan', file = ?, size = ?, sha256 = NULL, error = ? "
            "WHERE id = ? AND file IS NULL",
            (file, size, reason, backup_id),
        ).rowcount
        if not updated:
            conn.execute(
                "INSERT OR IGNORE INTO backups (id, started_at, finished_at, status, file, size, "
                "error, reason) VALUES (?, ?, ?, 'orphan', ?, ?, ?, 'orphan')",
                (backup_id, at, at, file, size, reason),
            )


def set_offsite(conn: sqlite3.Connection, statuses: Mapping[str, str | None]) -> None:
    """Each local backup's off-site state, as the last sync found it."""
    with conn:
        conn.executemany(
            "UPDATE backups SET offsite = ? WHERE id = ? AND offsite IS NOT ?",
            [(status, backup_id, status) for backup_id, status in statuses.items()],
        )


def delete(conn: sqlite3.Connection, backup_id: str) -> None:
    with conn:
        conn.execute("DELETE FROM backups WHERE id = ?", (backup_id,))


def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM backups ORDER BY started_at")
    return [dict(zip(COLUMNS, r, strict=True)) for r in cursor.fetchall()]


def last_good(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT finished_at FROM backups WHERE status = 'ok' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def last_content(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT content_sha256 FROM backups WHERE status = 'ok' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


# -- copies on the archive host ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Copy:
    """One file of this site's on the archive host, as the catalog knows it.

    state: `uploading` (sent, not yet confirmed under its final name), `present` (uploaded by
    this agent: size and the SHA-256 read back at upload recorded), `orphan` (found there,
    not uploaded by this catalog: no hash), `deleting` (removal decided, not yet confirmed).
    """

    name: str
    backup_id: str
    taken_at: str
    size: int | None
    sha256: str | None
    state: str
    fsynced: int | None = None
    uploaded_at: str | None = None
    delete_reason: str | None = None
    delete_error: str | None = None
    delete_attempts: int = 0

    @property
    def taken(self) -> datetime:
        return datetime.fromisoformat(self.taken_at)


COPY_COLUMNS = tuple(f.name for f in fields(Copy))


def copies(conn: sqlite3.Connection) -> list[Copy]:
    cursor = conn.execute(
        f"SELECT {', '.join(COPY_COLUMNS)} FROM offsite_copies ORDER BY taken_at, name"
    )
    return [Copy(*r) for r in cursor.fetchall()]


def put_copies(conn: sqlite3.Connection, records: Iterable[Copy]) -> None:
    with conn:
        conn.executemany(
            f"INSERT OR REPLACE INTO offsite_copies ({', '.join(COPY_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COPY_COLUMNS))})",
            [astuple(c) for c in records],
        )


def forget_copy(conn: sqlite3.Connection, name: str, ts: str, action: str, detail: str) -> None:
    """The file is gone from the archive host: drop its row and log why, in one transaction."""
    with conn:
        conn.execute("DELETE FROM offsite_copies WHERE name = ?", (name,))
        _log(conn, ts, action, name, detail)


def log(conn: sqlite3.Connection, ts: str, action: str, name: str, detail: str) -> None:
    with conn:
        _log(conn, ts, action, name, detail)


def _log(conn: sqlite3.Connection, ts: str, action: str, name: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO offsite_log (ts, action, name, detail) VALUES (?, ?, ?, ?)",
        (ts, action, name, detail),
    )
    conn.execute(
        "DELETE FROM offsite_log WHERE seq <= (SELECT MAX(seq) FROM offsite_log) - ?", (LOG_KEPT,)
    )


def offsite_log(conn: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """The newest `limit` uploads and removals on the archive host, oldest first."""
    cursor = conn.execute(
        "SELECT seq, ts, action, name, detail FROM "
        "(SELECT * FROM offsite_log ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        (limit,),
    )
    keys = ("seq", "ts", "action", "name", "detail")
    return [dict(zip(keys, r, strict=True)) for r in cursor.fetchall()]
