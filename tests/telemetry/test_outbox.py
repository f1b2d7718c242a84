"""The durable outbox on its own: order, persistence across a reopen, bounds and the drop
policy (lowest severity, oldest first), and the `dropped` event once there is room."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent.errors import TelemetryError
from agent.state import StateStore
from agent.telemetry.messages import envelope
from agent.telemetry.outbox import Outbox
from agent.telemetry.outbox import row as outbox_row


def event(n: int, severity: str = "info") -> dict[str, Any]:
    return envelope("event", "test-site", {"n": n, "severity": severity})


def notice(count: int) -> dict[str, Any]:
    return envelope("event", "test-site", {"dropped": count})


async def drain(outbox: Outbox) -> list[dict[str, Any]]:
    items = await outbox.batch(0, 100_000)
    for item in items:
        outbox.ack(item)
    await outbox.flush()
    return [json.loads(i.body) for i in items]


async def test_messages_survive_a_reopen_in_order_and_leave_only_when_acked(
    tmp_path: Path,
) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=1000, max_bytes=1 << 20)
    await outbox.open()
    sent = [event(n) for n in range(50)]
    await asyncio.gather(*(outbox.put("event", m) for m in sent))
    first = await outbox.batch(0, 10)
    for item in first:
        outbox.ack(item)
    await outbox.flush()
    await store.close()

    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=1000, max_bytes=1 << 20)
    await outbox.open()
    assert outbox.depth == 40
    left = await drain(outbox)
    assert [m["id"] for m in left] == [m["id"] for m in sent[10:]]
    assert outbox.depth == 0 and outbox.bytes == 0
    await store.close()


async def test_full_outbox_drops_lowest_severity_oldest_first_then_reports(
    tmp_path: Path,
) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=100, max_bytes=1 << 20, dropped_notice=notice)
    await outbox.open()
    critical = [event(n, "critical") for n in range(30)]
    infos = [event(100 + n, "info") for n in range(80)]
    for message in critical:
        await outbox.put("event", message, severity="critical")
    for message in infos:
        await outbox.put("event", message, severity="info")
    assert outbox.depth == 100
    assert outbox.dropped_unreported == 10
    kept = await drain(outbox)
    ids = [m["id"] for m in kept]
    assert ids == [m["id"] for m in critical] + [m["id"] for m in infos[10:]]
    # Room again: the next write carries one `dropped` event with the count.
    await outbox.put("event", event(999))
    rest = await drain(outbox)
    assert [m.get("dropped") for m in rest] == [None, 10]
    assert outbox.dropped_unreported == 0
    await store.close()


async def test_byte_bound_holds(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=100_000, max_bytes=1 << 20)
    await outbox.open()
    big = "x" * 10_000
    for n in range(150):
        await outbox.put("event", envelope("event", "test-site", {"n": n, "pad": big}))
    assert outbox.bytes <= 1 << 20
    assert outbox.depth < 150 and outbox.dropped_unreported == 150 - outbox.depth
    await store.close()


async def test_a_record_and_its_message_commit_together_or_not_at_all(tmp_path: Path) -> None:
    """Issue 14, defect 6: the record's SQL and its outbox row are one transaction; a write
    that fails takes only its own message with it (the others of the group commit stay), and
    a write that commits on its own is refused."""
    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=1000, max_bytes=1 << 20)
    await outbox.open()

    def record(name: str) -> Any:
        def write(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (name,))
            return name

        return write

    def failing(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('half', 'x')")
        raise ValueError("the record cannot be stored")

    def committing(conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('early', 'x')")

    good, bad = event(1), event(2)
    results = await asyncio.gather(  # one group commit
        outbox.commit(record("kept"), [outbox_row("event", good)]),
        outbox.commit(failing, [outbox_row("event", bad)]),
        return_exceptions=True,
    )
    assert results[0] == "kept"
    assert isinstance(results[1], ValueError)
    keys = await store.meta_with_prefix("")
    assert "kept" in keys and "half" not in keys
    assert [m["id"] for m in await drain(outbox)] == [good["id"]]
    with pytest.raises(TelemetryError, match="committed on its own"):
        await outbox.commit(committing, [outbox_row("event", event(3))])
    await store.close()
