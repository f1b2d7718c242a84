"""Schema migrations of the state store. Migration N takes `PRAGMA user_version` from N-1 to N;
append new ones, never edit a released one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: PBX poll history and a small key/value table.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE pbx_polls (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ok INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        facts_json TEXT,
        endpoints_json TEXT,
        error TEXT
    );
    CREATE INDEX pbx_polls_ts ON pbx_polls (ts);
    """,
)
