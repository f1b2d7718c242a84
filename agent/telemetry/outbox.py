"""The durable outbox: a message is committed to SQLite before it may be published and is
deleted only after the broker acknowledged it, so a broker outage, a restart or a SIGKILL
loses nothing (a message sent but not yet deleted is sent again with the same `id`).

Writes are group-committed: every `put` and `ack` waiting when the writer runs goes into one
transaction (one fsync under `synchronous=FULL`), so a flood costs a few commits, not one
each. A `put` returns only once its row is committed.

`commit(write, ...)` puts messages together with the record they tell of: `write` (the
record's SQL, which must not commit) runs in the same transaction as their outbox rows, under
a savepoint of its own, so the record and its messages are stored together or not at all
(a failing `write` fails only its own `commit`).

Bounded by count and bytes: over a bound, rows are dropped lowest severity first, oldest
first; the number dropped is kept (in `meta`, across restarts) and sent as one `dropped`
event once there is room again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from agent.errors import StateError, TelemetryError
from agent.state import StateStore
from agent.telemetry.messages import SEVERITY_RANK, encode

log = structlog.get_logger(__name__)

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], T]  # SQL run inside the caller's transaction

DROPPED_KEY = "outbox_dropped"
ROOM_AGAIN = 0.9  # report drops once below this share of both bounds


@dataclass(frozen=True, slots=True)
class Queued:
    """One stored message, as the publisher sends it."""

    seq: int
    id: str
    topic: str
    qos: int
    body: bytes


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    topic: str
    qos: int
    rank: int
    body: bytes


@dataclass(slots=True)
class _Put:
    """Rows to insert, the record's `write` to run with them, and who waits for the outcome
    (the rows' seqs and the write's result, or the write's exception)."""

    rows: list[_Row]
    write: Write[Any] | None
    future: asyncio.Future[tuple[list[int], Any]]
    seqs: list[int] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Bounds:
    depth: int  # before this commit
    size: int
    max_messages: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class _Committed:
    rows: int
    size: int
    removed: int
    removed_bytes: int
    dropped: int
    dropped_bytes: int
    dropped_total: int


class Outbox:
    """`await put(...)` stores; the publisher reads `batch(after=seq)` and calls `ack(seq)`."""

    def __init__(
        self,
        store: StateStore,
        *,
        max_messages: int,
        max_bytes: int,
        dropped_notice: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self._store = store
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._dropped_notice = dropped_notice
        self._puts: list[_Put] = []
        self._acks: dict[int, int] = {}  # seq -> body size
        self._writer: asyncio.Task[None] | None = None
        self.depth = 0
        self.bytes = 0
        self.dropped_unreported = 0
        self.changed = asyncio.Event()  # set after every commit that added rows

    async def open(self) -> None:
        self.depth, self.bytes, self.dropped_unreported = await self._store.call(_totals)

    async def put(
        self, topic: str, message: dict[str, Any], *, qos: int = 1, severity: str = "info"
    ) -> int:
        """Store `message` for `topic` (relative to the site's prefix); its seq once committed."""
        seqs, _ = await self._submit([row(topic, message, qos=qos, severity=severity)], None)
        return seqs[0]

    async def commit(self, write: Write[T], rows: Sequence[_Row]) -> T:
        """Run `write` and store `rows` (see `row`) in one transaction; `write`'s result."""
        _, result = await self._submit(list(rows), write)
        return result  # type: ignore[no-any-return]  # what `write` returned

    async def _submit(self, rows: list[_Row], write: Write[Any] | None) -> tuple[list[int], Any]:
        future: asyncio.Future[tuple[list[int], Any]] = asyncio.get_running_loop().create_future()
        self._puts.append(_Put(rows, write, future))
        self._kick()
        return await future

    def ack(self, item: Queued) -> None:
        """The broker acknowledged `item`: delete it (in the next group commit)."""
        self._acks[item.seq] = len(item.body)
        self._kick()

    async def flush(self) -> None:
        """Wait until every put and ack so far is committed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def batch(self, after: int, limit: int) -> list[Queued]:
        return await self._store.call(_batch, after, limit)

    async def close(self) -> None:
        await self.flush()

    def _kick(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    async def _write_loop(self) -> None:
        while self._puts or self._acks:
            puts, self._puts = self._puts, []
            acks, self._acks = self._acks, {}
            notice = self._notice_due(sum(len(p.rows) for p in puts))
            if notice is not None:
                nobody = asyncio.get_running_loop().create_future()
                nobody.set_result(([], None))  # no one waits for the notice
                puts.append(_Put([notice], None, nobody))
            try:
                done = await self._store.call(
                    _commit,
                    puts,
                    acks,
                    _Bounds(self.depth, self.bytes, self.max_messages, self.max_bytes),
                    self.dropped_unreported if notice is not None else 0,
                )
            except StateError as exc:
                log.error("outbox write failed", error=str(exc))
                for put in puts:
                    if not put.future.done():
                        put.future.set_exception(TelemetryError(f"outbox write failed: {exc}"))
                continue
            self.depth += done.rows - done.removed - done.dropped
            self.bytes += done.size - done.removed_bytes - done.dropped_bytes
            self.dropped_unreported = done.dropped_total
            if done.dropped:
                log.warning(
                    "outbox full: messages dropped",
                    dropped=done.dropped,
                    depth=self.depth,
                    max_messages=self.max_messages,
                )
            for put in puts:
                if put.future.done():
                    continue
                if put.error is not None:
                    put.future.set_exception(put.error)
                else:
                    put.future.set_result((put.seqs, put.result))
            if done.rows:
                self.changed.set()

    def _notice_due(self, incoming: int) -> _Row | None:
        """The `dropped` event, when drops are unreported and there is room again."""
        if not self.dropped_unreported or self._dropped_notice is None:
            return None
        if self.depth + incoming >= ROOM_AGAIN * self.max_messages:
            return None
        if self.bytes >= ROOM_AGAIN * self.max_bytes:
            return None
        message = self._dropped_notice(self.dropped_unreported)
        return row("event", message, severity="record")


def row(topic: str, message: dict[str, Any], *, qos: int = 1, severity: str = "info") -> _Row:
    """A message as the outbox stores it."""
    return _Row(str(message["id"]), topic, qos, SEVERITY_RANK[severity], encode(message))


def _totals(conn: sqlite3.Connection) -> tuple[int, int, int]:
    depth, size = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM outbox"
    ).fetchone()
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (DROPPED_KEY,)).fetchone()
    return int(depth), int(size), int(row[0]) if row else 0


def _commit(
    conn: sqlite3.Connection,
    puts: list[_Put],
    acks: dict[int, int],
    bounds: _Bounds,
    reported: int,
) -> _Committed:
    removed = removed_bytes = added = added_bytes = 0
    with conn:
        begin(conn)
        for seq, size in acks.items():
            if conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount:
                removed += 1
                removed_bytes += size
        for put in puts:
            if _run(conn, put):
                added += len(put.rows)
                added_bytes += sum(len(r.body) for r in put.rows)
        depth = bounds.depth + added - removed
        size = bounds.size + added_bytes - removed_bytes
        dropped = dropped_bytes = 0
        if depth > bounds.max_messages or size > bounds.max_bytes:
            dropped, dropped_bytes = _evict(
                conn, depth - bounds.max_messages, size - bounds.max_bytes
            )
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (DROPPED_KEY,)).fetchone()
        total = (int(row[0]) if row else 0) - reported + dropped
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (DROPPED_KEY, str(total)),
        )
    return _Committed(added, added_bytes, removed, removed_bytes, dropped, dropped_bytes, total)


def begin(conn: sqlite3.Connection) -> None:
    """Open the transaction now (a savepoint as its first statement would commit it when
    released)."""
    if not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")


def run_write(conn: sqlite3.Connection, write: Write[T]) -> T:
    """`write` inside the open transaction; refuse one that committed on its own (its record
    would then be stored without its messages)."""
    result = write(conn)
    if not conn.in_transaction:
        raise StateError(f"{getattr(write, '__qualname__', write)} committed on its own")
    return result


def _run(conn: sqlite3.Connection, put: _Put) -> bool:
    """One put: its write and rows under a savepoint; on failure only they are undone. (A
    plain put, with no write, needs none: a flood of them stays a few statements each.)"""
    if put.write is None:
        put.seqs = _insert(conn, put.rows)
        return True
    conn.execute("SAVEPOINT outbox_put")
    try:
        put.result = run_write(conn, put.write)
        put.seqs = _insert(conn, put.rows)
    except Exception as exc:
        if not conn.in_transaction:  # the write committed: the whole group fails, loudly
            raise
        conn.execute("ROLLBACK TO outbox_put")
        conn.execute("RELEASE outbox_put")
        put.error = StateError(str(exc)) if isinstance(exc, sqlite3.Error) else exc
        return False
    conn.execute("RELEASE outbox_put")
    return True


def _insert(conn: sqlite3.Connection, rows: list[_Row]) -> list[int]:
    return [
        int(
            conn.execute(
                "INSERT INTO outbox (id, topic, qos, severity, body) VALUES (?, ?, ?, ?, ?)",
                (r.id, r.topic, r.qos, r.rank, r.body),
            ).lastrowid
            or 0
        )
        for r in rows
    ]


def _evict(conn: sqlite3.Connection, excess_rows: int, excess_bytes: int) -> tuple[int, int]:
    """Delete lowest-severity, oldest rows until `excess_rows` rows and `excess_bytes` bytes
    are gone; (count, bytes) deleted."""
    victims: list[int] = []
    freed = 0
    for seq, length in conn.execute("SELECT seq, length(body) FROM outbox ORDER BY severity, seq"):
        if len(victims) >= excess_rows and freed >= excess_bytes:
            break
        victims.append(int(seq))
        freed += int(length)
    conn.executemany("DELETE FROM outbox WHERE seq = ?", [(v,) for v in victims])
    return len(victims), freed


def _batch(conn: sqlite3.Connection, after: int, limit: int) -> list[Queued]:
    cursor = conn.execute(
        "SELECT seq, id, topic, qos, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    )
    return [Queued(int(s), str(i), str(t), int(q), bytes(b)) for s, i, t, q, b in cursor]
