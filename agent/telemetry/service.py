"""Telemetry in the daemon: the one place the rest of the agent sends messages through.

Every health event is kept in the local event log (`pbx-agent events`) whether or not MQTT is
configured; with `[mqtt] enabled`, every message also goes into the durable outbox and the
publisher sends it.

A service records what it tells of and queues the message in one transaction (`commit`, or
`send`/`event` with `write=`): a crash can lose neither one without the other, and a restart
sends whatever was committed and not yet acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from agent.config.schema import AgentConfig
from agent.state import StateStore
from agent.telemetry import outbox as outbox_rows
from agent.telemetry.commands import CommandReceiver, Handler
from agent.telemetry.messages import envelope
from agent.telemetry.outbox import Outbox, Write
from agent.telemetry.publisher import Publisher

log = structlog.get_logger(__name__)

EVENTS_KEPT = 10_000
SEVERITIES = ("info", "warning", "critical")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to queue with a record (`Telemetry.commit`)."""

    topic: str
    message: dict[str, Any]
    severity: str = "record"


def nothing(_conn: sqlite3.Connection) -> None:
    """A write that records nothing (a message that is its own record)."""


class Telemetry:
    def __init__(self, store: StateStore, cfg: AgentConfig) -> None:
        self._store = store
        self._cfg = cfg
        self.site_id = cfg.site_id
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        self.commands: CommandReceiver | None = None

    async def start(
        self, heartbeat: Callable[[], dict[str, Any]], handlers: Mapping[str, Handler]
    ) -> None:
        mqtt = self._cfg.mqtt
        if not mqtt.enabled:
            return
        self.outbox = Outbox(
            self._store,
            max_messages=mqtt.outbox.max_messages,
            max_bytes=mqtt.outbox.max_bytes,
            dropped_notice=self._dropped_notice,
        )
        await self.outbox.open()
        if mqtt.command_keys:
            self.commands = CommandReceiver(
                self._store, self.site_id, mqtt.command_keys, handlers, self.reply
            )
        self.publisher = Publisher(
            mqtt,
            self.site_id,
            self.outbox,
            heartbeat=heartbeat,
            on_command=self.commands.receive if self.commands else None,
        )

    async def run(self) -> None:
        if self.publisher is not None:
            await self.publisher.run()

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
        if self.outbox is not None:
            await self.outbox.close()

    # -- sending ---------------------------------------------------------------------------

    async def commit(self, write: Write[T], *outgoing: Outgoing) -> T:
        """`write` (a record's SQL, which must not commit) and `outgoing`, in one transaction:
        events go to the local event log, and with MQTT on every message to the outbox.
        `write`'s result."""
        for item in outgoing:
            if item.topic == "event":
                _log_event(item.message)

        def record(conn: sqlite3.Connection) -> T:
            result = write(conn)
            for item in outgoing:
                if item.topic == "event":
                    _keep_event(conn, item.message)
            return result

        if self.outbox is None:
            return await self._store.call(_in_transaction, record)
        rows = [outbox_rows.row(o.topic, o.message, severity=o.severity) for o in outgoing]
        return await self.outbox.commit(record, rows)

    def message(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new message for `topic` (not yet queued)."""
        return envelope(topic, self.site_id, body)

    async def send(
        self,
        topic: str,
        body: dict[str, Any],
        *,
        severity: str = "record",
        write: Write[Any] = nothing,
    ) -> dict[str, Any]:
        """A new message on `topic`, queued durably when MQTT is on (with `write`'s record,
        in one transaction); the message."""
        message = self.message(topic, body)
        await self.commit(write, Outgoing(topic, message, severity))
        return message

    async def event(
        self,
        kind: str,
        check: str,
        severity: str,
        summary: str,
        *,
        write: Write[Any] = nothing,
        **fields: Any,
    ) -> dict[str, Any]:
        """A health event (`problem`, `resolved` or `notice`; `fields`: `event_message`'s):
        logged, kept, sent, in one transaction with `write`."""
        message = self.event_message(kind, check, severity, summary, **fields)
        await self.commit(write, Outgoing("event", message, severity))
        return message

    def event_message(
        self,
        kind: str,
        check: str,
        severity: str,
        summary: str,
        *,
        subject: str | None = None,
        problem_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A health event's message (not yet kept or queued: see `commit`)."""
        body: dict[str, Any] = {
            "kind": kind,
            "check": check,
            "severity": severity,
            "summary": summary,
        }
        if subject is not None:
            body["subject"] = subject
        if problem_id is not None:
            body["problem_id"] = problem_id
        if details:
            body["details"] = dict(details)
        return self.message("event", body)

    async def reply(self, command_id: str, body: dict[str, Any]) -> None:
        await self.send(f"reply/{command_id}", body)

    def _dropped_notice(self, count: int) -> dict[str, Any]:
        return envelope(
            "event",
            self.site_id,
            {
                "kind": "notice",
                "check": "outbox_dropped",
                "severity": "warning",
                "summary": f"{count} queued messages were dropped while the outbox was full",
                "details": {"dropped": count},
            },
        )

    # -- reading ---------------------------------------------------------------------------

    async def events(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return await self._store.call(_events, after, limit)

    def status(self) -> dict[str, Any]:
        mqtt = self._cfg.mqtt
        if not mqtt.enabled or self.publisher is None or self.outbox is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "broker": f"{mqtt.host}:{mqtt.effective_port}",
            "connected": self.publisher.connected,
            "last_error": self.publisher.last_error,
            "outbox_depth": self.outbox.depth,
            "outbox_bytes": self.outbox.bytes,
            "commands_refused": self.commands.rejected if self.commands else 0,
        }


def _log_event(message: dict[str, Any]) -> None:
    kind, severity = message["kind"], message["severity"]
    logger = log.warning if kind == "problem" and severity != "info" else log.info
    logger(
        "health " + kind,
        check=message["check"],
        subject=message.get("subject"),
        summary=message["summary"],
    )


def _in_transaction(conn: sqlite3.Connection, write: Write[T]) -> T:
    with conn:
        outbox_rows.begin(conn)
        return outbox_rows.run_write(conn, write)


def _keep_event(conn: sqlite3.Connection, message: dict[str, Any]) -> None:
    """The event in the local log (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO events (id, ts, severity, body) VALUES (?, ?, ?, ?)",
        (message["id"], message["ts"], message["severity"], json.dumps(message)),
    )
    conn.execute(
        "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?", (EVENTS_KEPT,)
    )


def _events(conn: sqlite3.Connection, after: int, limit: int) -> list[dict[str, Any]]:
    if after <= 0:  # the newest `limit`, oldest first
        rows = conn.execute(
            "SELECT seq, body FROM (SELECT seq, body FROM events ORDER BY seq DESC LIMIT ?) "
            "ORDER BY seq",
            (limit,),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
    return [{"seq": seq, **json.loads(body)} for seq, body in rows]
