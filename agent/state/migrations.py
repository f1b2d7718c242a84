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
    # 2: user counting: every count, daily peaks, seat history, registration history, and
    # the hash-chained usage reports.
    """
    CREATE TABLE counts (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        billable INTEGER NOT NULL,
        report_json TEXT NOT NULL
    );
    CREATE TABLE daily_peaks (day TEXT PRIMARY KEY, peak INTEGER NOT NULL);
    CREATE TABLE seats (
        extension TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        removed_at TEXT
    );
    CREATE TABLE registrations_seen (endpoint TEXT PRIMARY KEY, last_registered TEXT NOT NULL);
    CREATE TABLE usage_reports (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        envelope TEXT NOT NULL,
        sha256 TEXT NOT NULL
    );
    """,
    # 3: the backup catalog. A row is written only after its file is renamed into place and
    # fsynced, so no row ever points at a partial file; failures are rows without a file.
    """
    CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        file TEXT,
        size INTEGER,
        sha256 TEXT,
        files INTEGER,
        content_sha256 TEXT,
        changed INTEGER,
        error TEXT,
        reason TEXT NOT NULL,
        offsite TEXT
    );
    CREATE INDEX backups_started ON backups (started_at);
    """,
    # 4: telemetry. The outbox holds every message until the broker acknowledged it (seq is
    # the send order); events is the local history `pbx-agent events` shows; health_checks
    # keeps each check's state across restarts (a problem is raised once, not once per
    # start); command_nonces remembers accepted commands until they expire (no replay).
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        topic TEXT NOT NULL,
        qos INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX outbox_drop_order ON outbox (severity, seq);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        ts TEXT NOT NULL,
        severity TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE health_checks (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        problem_id TEXT
    );
    CREATE TABLE command_nonces (nonce TEXT PRIMARY KEY, expires_at TEXT NOT NULL);
    """,
    # 5: the enforcement journal: every line the agent adds to a PBX config file while a
    # feature is off (the prior value is "absent": the agent only adds its own marked lines),
    # with its state: applying -> applied -> undoing -> undone | conflict.
    """
    CREATE TABLE enforcement_journal (
        seq INTEGER PRIMARY KEY,
        feature TEXT NOT NULL,
        file TEXT NOT NULL,
        section TEXT NOT NULL,
        section_type TEXT NOT NULL,
        option TEXT NOT NULL,
        value TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX enforcement_journal_feature ON enforcement_journal (feature, state);
    """,
    # 6 (issue 20): off-site copies as the archive host holds them, apart from the local
    # catalog: one row per file of this site's there (`uploading` -> `present`, `orphan` for
    # files the catalog did not upload, `deleting` until the host confirms a removal), and a
    # log of every upload and removal. Copies recorded as "ok" before are adopted.
    """
    CREATE TABLE offsite_copies (
        name TEXT PRIMARY KEY,
        backup_id TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        state TEXT NOT NULL,
        fsynced INTEGER,
        uploaded_at TEXT,
        delete_reason TEXT,
        delete_error TEXT,
        delete_attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE offsite_log (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        action TEXT NOT NULL,
        name TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    INSERT INTO offsite_copies (name, backup_id, taken_at, size, sha256, state, uploaded_at)
        SELECT file, id, started_at, size, sha256, 'present', finished_at FROM backups
        WHERE status = 'ok' AND offsite = 'ok' AND file IS NOT NULL;
    """,
    # 7 (issue 12): the enforcement journal of vendor-neutral switches (config blocks, runtime
    # state, cuts), each with the exact prior value read from the PBX before the change:
    # applying -> applied -> undoing -> undone | conflict; cuts are `done`. The rows of
    # `enforcement_journal` (marked lines of the first enforcement) are no longer written.
    """
    CREATE TABLE enforcement_switches (
        seq INTEGER PRIMARY KEY,
        feature TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        place TEXT NOT NULL,
        value TEXT NOT NULL,
        prior TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX enforcement_switches_feature ON enforcement_switches (feature, state);
    """,
    # 8 (issue 14): whether a backup's result was queued as its `backup` message. A run's row
    # is written unreported, and marked in the transaction that queues the message (after the
    # off-site copy), so a crash in between is sent at the next start. Rows already there
    # count as reported.
    """
    ALTER TABLE backups ADD COLUMN reported INTEGER NOT NULL DEFAULT 1;
    """,
)
