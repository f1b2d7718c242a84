"""Inbound commands from the central server on `{prefix}/{site_id}/cmd/{name}`.

A command message is JSON `{"key_id": ..., "payload": <base64url>, "signature": <base64url>}`:
an Ed25519 signature by a central key listed in `mqtt.command_keys` over the payload bytes,
which are JSON `{"id", "command", "site_id", "issued_at", "expires_at", "nonce", "args"}`.
It runs only when the signature verifies, the command matches the topic and is known, the
site is ours, `expires_at` is in the future (and at most a day away), and the nonce was never
seen. Anything else is dropped and logged with the reason; nothing runs, nothing is replied.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import wire_values
from agent.state import StateStore
from agent.usage.keys import public_keys

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
MAX_LIFETIME = timedelta(days=1)
COMMANDS = ("backup-now", "count-now", "licence-refresh", "diag")

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class CommandRejected(Exception):
    """Why an inbound command was not run (logged, never replied)."""


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    name: str
    args: Mapping[str, Any]
    nonce: str
    expires_at: datetime


def parse_command(
    name: str,
    raw: bytes,
    *,
    site_id: str,
    keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
) -> Command:
    """The verified command, or `CommandRejected` saying why not."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise CommandRejected(f"{len(raw)} bytes: larger than {MAX_MESSAGE_BYTES}")
    try:
        outer = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandRejected("not JSON") from exc
    if not isinstance(outer, dict):
        raise CommandRejected("not a JSON object")
    key = keys.get(str(outer.get("key_id")))
    if key is None:
        raise CommandRejected(f"key_id {str(outer.get('key_id'))[:40]!r} is not a central key")
    payload = wire_values.b64url(outer.get("payload"), "payload", CommandRejected)
    try:
        signature = wire_values.b64url(outer.get("signature"), "signature", CommandRejected)
        key.verify(signature, payload)
    except InvalidSignature as exc:
        raise CommandRejected("bad signature") from exc
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandRejected("signed payload is not JSON") from exc
    if not isinstance(body, dict):
        raise CommandRejected("signed payload is not a JSON object")
    if body.get("command") != name:
        raise CommandRejected(f"payload names command {body.get('command')!r}, topic {name!r}")
    if name not in COMMANDS:
        raise CommandRejected(f"unknown command {name!r}")
    if body.get("site_id") != site_id:
        raise CommandRejected(f"for site {body.get('site_id')!r}, not this one")
    expires = wire_values.instant(body.get("expires_at"), "expires_at", CommandRejected)
    if expires <= now:
        raise CommandRejected(f"expired at {expires.isoformat()}")
    if expires - now > MAX_LIFETIME:
        raise CommandRejected("expires_at is more than a day away")
    command_id, nonce, args = body.get("id"), body.get("nonce"), body.get("args", {})
    if not isinstance(command_id, str) or not 1 <= len(command_id) <= 64:
        raise CommandRejected("id must be a string of 1-64 characters")
    if not command_id.replace("-", "").replace("_", "").isalnum():
        raise CommandRejected("id may hold letters, digits, - and _ only")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise CommandRejected("nonce must be a string of 8-128 characters")
    if not isinstance(args, dict):
        raise CommandRejected("args must be an object")
    return Command(command_id, name, args, nonce, expires)


class CommandReceiver:
    """Verifies, de-duplicates (nonces in SQLite) and runs inbound commands; replies via
    `reply(command_id, body)`."""

    def __init__(
        self,
        store: StateStore,
        site_id: str,
        keys: Mapping[str, str],
        handlers: Mapping[str, Handler],
        reply: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._store = store
        self._site_id = site_id
        self._keys = public_keys(keys)
        self._handlers = handlers
        self._reply = reply
        self.rejected = 0

    async def receive(self, topic: str, raw: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        now = datetime.now(UTC)
        try:
            command = parse_command(name, raw, site_id=self._site_id, keys=self._keys, now=now)
            if not await self._store.call(_claim_nonce, command.nonce, command.expires_at, now):
                raise CommandRejected("replayed: nonce already used")
            if name not in self._handlers:
                raise CommandRejected(f"{name!r} is not available on this agent")
        except CommandRejected as exc:
            self.rejected += 1
            log.warning("command refused", topic=topic[-80:], reason=str(exc))
            return
        log.info("command accepted", command=name, id=command.id)
        try:
            result = await self._handlers[name](command.args)
        except Exception as exc:  # any failure is the command's answer, never the daemon's end
            body: dict[str, Any] = {"ok": False, "error": str(exc)}
        else:
            body = {"ok": True, "result": result}
        await self._reply(command.id, {"command": name, "command_id": command.id, **body})


def _claim_nonce(conn: sqlite3.Connection, nonce: str, expires: datetime, now: datetime) -> bool:
    """Remember `nonce` until it expires; False when it was already used."""
    with conn:
        conn.execute("DELETE FROM command_nonces WHERE expires_at < ?", (now.isoformat(),))
        cursor = conn.execute(
            "INSERT OR IGNORE INTO command_nonces (nonce, expires_at) VALUES (?, ?)",
            (nonce, expires.astimezone(UTC).isoformat()),
        )
        return cursor.rowcount == 1
