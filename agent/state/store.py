"""The state store: one SQLite file (WAL) in the state directory, used from one worker thread
so that no query ever runs on the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import StateError
from agent.state import integrity
from agent.state.migrations import MIGRATIONS

T = TypeVar("T")

POLL_HISTORY = 1000  # poll rows kept; older ones are pruned on insert


@dataclass(frozen=True, slots=True)
class PollRecord:
    ts: str
    ok: bool
    duration_ms: int
    facts: dict[str, Any] | None
    endpoints: list[dict[str, Any]]
    error: str | None


class StateStore:
    """Owns the connection; `call(fn, ...)` runs `fn(conn, ...)` in the store's own thread."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn = conn

    @classmethod
    async def open(
        cls, path: Path, *, prior_state: Iterable[Path] = (), recovery: str = integrity.RECOVERY
    ) -> StateStore:
        """Open (or create) the store at `path`. `prior_state`: files or folders whose presence
        shows the agent ran here before, so a missing or empty file is refused, not recreated;
        `recovery`: the command named in that refusal."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, connect, path, tuple(prior_state), recovery)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()

        def run() -> T:
            try:
                return fn(self._conn, *args)
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: {exc}") from exc

        return await loop.run_in_executor(self._executor, run)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def schema_version(self) -> int:
        return await self.call(lambda c: int(c.execute("PRAGMA user_version").fetchone()[0]))

    async def get_meta(self, key: str) -> str | None:
        def get(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self.call(get)

    async def set_meta(self, key: str, value: str) -> None:
        await self.set_meta_many({key: value})

    async def set_meta_many(self, values: Mapping[str, str]) -> None:
        """Set several keys in one transaction."""

        def put(conn: sqlite3.Connection) -> None:
            with conn:
                put_meta(conn, values)

        await self.call(put)

    async def meta_with_prefix(self, prefix: str) -> dict[str, str]:
        """Every meta key starting with `prefix`, with its value."""

        def get(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            )
            return {str(k): str(v) for k, v in rows}

        return await self.call(get)

    async def record_poll(
        self,
        *,
        ts: str,
        ok: bool,
        duration_ms: int,
        facts: dict[str, Any] | None,
        endpoints: list[dict[str, Any]],
        error: str | None,
    ) -> None:
        row = (ts, int(ok), duration_ms, _dumps(facts), json.dumps(endpoints), error)

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "INSERT INTO pbx_polls (ts, ok, duration_ms, facts_json, endpoints_json, error)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                conn.execute(
                    "DELETE FROM pbx_polls WHERE id <= (SELECT MAX(id) FROM pbx_polls) - ?",
                    (POLL_HISTORY,),
                )

        await self.call(insert)

    async def last_poll(self) -> PollRecord | None:
        def get(conn: sqlite3.Connection) -> PollRecord | None:
            row = conn.execute(
                "SELECT ts, ok, duration_ms, facts_json, endpoints_json, error "
                "FROM pbx_polls ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return PollRecord(
                ts=row[0],
                ok=bool(row[1]),
                duration_ms=row[2],
                facts=json.loads(row[3]) if row[3] else None,
                endpoints=json.loads(row[4]) if row[4] else [],
                error=row[5],
            )

        return await self.call(get)


def put_meta(conn: sqlite3.Connection, values: Mapping[str, str]) -> None:
    """Set meta keys inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def connect(
    path: Path, prior_state: Iterable[Path] = (), recovery: str = integrity.RECOVERY
) -> sqlite3.Connection:
    """Create the directory (0750) and file (0600), set pragmas, check the file's integrity,
    migrate to the newest schema. A missing or empty file where the agent ran before, or a
    damaged one, is refused (see `agent.state.integrity`)."""
    integrity.check_present(path, prior_state, recovery)
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        _check_writable(path)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
    except PermissionError as exc:
        raise StateError(_not_writable(path, exc.filename or path.parent)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"{path}: cannot open the state store: {exc}") from exc
    try:
        conn.isolation_level = "DEFERRED"
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        integrity.quick_check(conn, path, recovery)
        migrate(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" in str(exc) or "readonly" in str(exc):
            raise StateError(_not_writable(path, path.parent)) from exc
        raise StateError(f"{path}: cannot prepare the state store: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
        conn.close()
        raise integrity.damaged(path, str(exc), recovery) from exc
    except StateError:
        conn.close()
        raise
    return conn


def _check_writable(path: Path) -> None:
    """SQLite needs to write the file and to create its journal files beside it."""
    for target in (path.parent, path):
        wanted = os.W_OK | os.X_OK if target.is_dir() else os.W_OK
        if target.exists() and not os.access(target, wanted):
            raise StateError(_not_writable(path, target))


def _not_writable(path: Path, where: str | Path) -> str:
    user = _user()
    return (
        f"{where} is not writable by user {user}, and the agent keeps its state store "
        f"({path.name}) there. Fix: chown -R {user} {path.parent} (as root), or set state.dir "
        "in the config to a folder this user can write"
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the missing migrations, each in its own transaction; return the new version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    newest = len(MIGRATIONS)
    if version > newest:
        raise StateError(
            f"{path}: the state store has schema version {version}, newer than this agent "
            f"knows ({newest}); a newer pbx-agent wrote it: upgrade, or restore a backup"
        )
    for number in range(version + 1, newest + 1):
        script = MIGRATIONS[number - 1]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StateError(f"{path}: migration {number} failed: {exc}") from exc
    return newest


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
