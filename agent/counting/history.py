"""Counting history in the state store: every count, daily peaks, each seat's first and last
sighting, when each endpoint last had a device registered, and the usage report chain.
Functions take the sqlite connection: call them through `StateStore.call`."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from agent.counting.model import CountReport
from agent.counting.rules import History

OBSERVING_SINCE = "counting.observing_since"


def load_history(conn: sqlite3.Connection, now: datetime) -> History:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (OBSERVING_SINCE,)).fetchone()
    if row is None:
        with conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)", (OBSERVING_SINCE, now.isoformat())
            )
        since = now
    else:
        since = datetime.fromisoformat(row[0])
    seen = {
        endpoint: datetime.fromisoformat(ts)
        for endpoint, ts in conn.execute("SELECT endpoint, last_registered FROM registrations_seen")
    }
    return History(observing_since=since, last_registered=seen)


def record_count(
    conn: sqlite3.Connection,
    report: CountReport,
    now: datetime,
    report_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store one count (`report_json`: its `to_json()`, when the caller made it already);
    return what changed since the previous one (for prorating). One statement per table,
    whatever the number of seats."""
    ts, day = now.isoformat(), now.date().isoformat()
    current = {seat.extension for seat in report.seats}
    registered = {device.endpoint for seat in report.seats for device in seat.devices}
    with conn:
        conn.executemany(
            "INSERT INTO registrations_seen (endpoint, last_registered) VALUES (?, ?) "
            "ON CONFLICT (endpoint) DO UPDATE SET last_registered = excluded.last_registered",
            ((endpoint, ts) for endpoint in sorted(registered)),
        )
        conn.execute(
            "INSERT INTO counts (ts, billable, report_json) VALUES (?, ?, ?)",
            (ts, report.billable, _compact(report_json or report.to_json())),
        )
        conn.execute(
            "INSERT INTO daily_peaks (day, peak) VALUES (?, ?) "
            "ON CONFLICT (day) DO UPDATE SET peak = MAX(peak, excluded.peak)",
            (day, report.billable),
        )
        known = {
            ext: removed for ext, removed in conn.execute("SELECT extension, removed_at FROM seats")
        }
        added = sorted(ext for ext in current if ext not in known or known[ext] is not None)
        removed = sorted(ext for ext, gone in known.items() if gone is None and ext not in current)
        conn.executemany(
            "INSERT INTO seats (extension, first_seen, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (extension) DO UPDATE SET last_seen = excluded.last_seen, "
            "removed_at = NULL, first_seen = CASE WHEN seats.removed_at IS NULL "
            "THEN seats.first_seen ELSE excluded.first_seen END",
            ((ext, ts, ts) for ext in sorted(current)),
        )
        conn.executemany(
            "UPDATE seats SET removed_at = ? WHERE extension = ?", ((ts, ext) for ext in removed)
        )
        peak = conn.execute("SELECT peak FROM daily_peaks WHERE day = ?", (day,)).fetchone()[0]
        first_seen = dict(
            conn.execute("SELECT extension, first_seen FROM seats WHERE removed_at IS NULL")
        )
    return {"added": added, "removed": removed, "daily_peak": peak, "first_seen": first_seen}


def _compact(value: Any) -> str:
    """JSON for a stored report: sorted keys, no spaces (a 10,000-seat report is 4 MB)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def last_usage(conn: sqlite3.Connection) -> tuple[int, dict[str, Any] | None]:
    row = conn.execute(
        "SELECT seq, envelope FROM usage_reports ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return (0, None) if row is None else (int(row[0]), json.loads(row[1]))


def append_usage(
    conn: sqlite3.Connection, seq: int, ts: str, envelope: dict[str, Any], sha: str
) -> None:
    with conn:
        add_usage(conn, seq, ts, envelope, sha)


def add_usage(
    conn: sqlite3.Connection, seq: int, ts: str, envelope: dict[str, Any], sha: str
) -> None:
    """`append_usage` inside the caller's transaction (with the report's outbox message)."""
    conn.execute(
        "INSERT INTO usage_reports (seq, ts, envelope, sha256) VALUES (?, ?, ?, ?)",
        (seq, ts, json.dumps(envelope, sort_keys=True), sha),
    )


def usage_reports(conn: sqlite3.Connection, limit: int = 1000) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT envelope FROM (SELECT seq, envelope FROM usage_reports ORDER BY seq DESC LIMIT ?) "
        "ORDER BY seq",
        (limit,),
    ).fetchall()
    return [json.loads(r[0]) for r in rows]
