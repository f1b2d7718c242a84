"""Inbound commands from the central server on `{prefix}/{site_id}/cmd/{name}`.

A command message is JSON `{"key_id": ..., "payload": <base64url>, "signature": <base64url>}`:
an Ed25519 signature by a central key listed in `mqtt.command_keys` over the payload bytes,
which are JSON `{"id", "command", "site_id", "issued_at", "expires_at", "nonce", "args"}`.
It runs only when the signature verifies, the command matches the topic and is known, the
site is ours, `issued_at` is not ahead of this host's clock by more than a few minutes,
`expires_at` is in the future (and at most a day away), and the nonce was never seen (nor was
the command issued before the state store was last recovered, when used nonces may have been
lost). Anything else is dropped and logged with a one-line reason; nothing runs, nothing is
replied. The message is bounded (size, nesting, numbers) before it is parsed, and the signed
payload is read only once its signature verified.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import bounded_json, wire_values
from agent.clock import SYSTEM_CLOCK, Clock
from agent.state import StateStore
from agent.state.recover import RECOVERED_AT
from agent.usage.keys import public_keys

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
ENVELOPE_LIMITS = bounded_json.Limits(MAX_MESSAGE_BYTES, max_depth=2, max_number_chars=24)
PAYLOAD_LIMITS = bounded_json.Limits(MAX_MESSAGE_BYTES, max_depth=8, max_number_chars=24)
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
COMMAND_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NONCE = re.compile(r"[!-~]{8,128}")
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
    issued_at: datetime
    expires_at: datetime


def parse_command(
    name: str,
    raw: bytes,
    *,
    site_id: str,
    keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
) -> Command:
    """The verified command, or `CommandRejected` saying why not. The envelope is parsed
    within tight bounds, and the signature is checked over the raw payload bytes before
    anything in the payload is read."""
    outer = bounded_json.loads(raw, ENVELOPE_LIMITS, "message", CommandRejected)
    if not isinstance(outer, dict):
        raise CommandRejected("message: not a JSON object")
    key_id = outer.get("key_id")
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        raise CommandRejected("key_id: missing, or not 1-64 letters, digits, '.', '_', '-'")
    key = keys.get(key_id)
    if key is None:
        raise CommandRejected(f"key_id {key_id!r} is not a central key")
    payload = wire_values.b64url(outer.get("payload"), "payload", CommandRejected)
    signature = wire_values.b64url(outer.get("signature"), "signature", CommandRejected)
    try:
        key.verify(signature, payload)
    except InvalidSignature as exc:
        raise CommandRejected("bad signature") from exc
    body = bounded_json.loads(payload, PAYLOAD_LIMITS, "signed payload", CommandRejected)
    if not isinstance(body, dict):
        raise CommandRejected("signed payload: not a JSON object")
    if body.get("command") != name:
        raise CommandRejected(
            f"payload names command {str(body.get('command'))[:40]!r}, topic {name[:40]!r}"
        )
    if name not in COMMANDS:
        raise CommandRejected(f"unknown command {name[:40]!r}")
    if body.get("site_id") != site_id:
        raise CommandRejected(f"for site {str(body.get('site_id'))[:64]!r}, not this one")
    issued = wire_values.issued_at(body.get("issued_at"), now, CommandRejected)
    expires = wire_values.instant(body.get("expires_at"), "expires_at", CommandRejected)
    if expires <= now:
        raise CommandRejected(f"expired at {expires.isoformat()}")
    if expires - now > MAX_LIFETIME or expires - issued > MAX_LIFETIME:
        raise CommandRejected("expires_at is more than a day after issued_at or now")
    command_id, nonce, args = body.get("id"), body.get("nonce"), body.get("args", {})
    if not isinstance(command_id, str) or not COMMAND_ID.fullmatch(command_id):
        raise CommandRejected("id must be 1-64 letters, digits, - and _")
    if not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
        raise CommandRejected("nonce must be 8-128 printable ASCII characters")
    if not isinstance(args, dict):
        raise CommandRejected("args must be an object")
    return Command(command_id, name, args, nonce, issued, expires)


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
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._site_id = site_id
        self._keys = public_keys(keys)
        self._handlers = handlers
        self._reply = reply
        self._clock = clock
        self.rejected = 0

    async def receive(self, topic: str, raw: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        now = self._clock.now()
        try:
            command = parse_command(name, raw, site_id=self._site_id, keys=self._keys, now=now)
            await self._check_unseen(command, now)
            if name not in self._handlers:
                raise CommandRejected(f"{name!r} is not available on this agent")
        except CommandRejected as exc:
            self.rejected += 1
            log.warning("command refused", topic=topic[-80:], reason=str(exc))
            return
        except Exception:  # a bug in checking hostile input refuses it; it never ends telemetry
            self.rejected += 1
            log.exception("command refused: unexpected error while checking it", topic=topic[-80:])
            return
        log.info("command accepted", command=name, id=command.id)
        try:
            result = await self._handlers[name](command.args)
        except Exception as exc:  # any failure is the command's answer, never the daemon's end
            body: dict[str, Any] = {"ok": False, "error": str(exc)}
        else:
            body = {"ok": True, "result": result}
        await self._reply(command.id, {"command": name, "command_id": command.id, **body})

    async def _check_unseen(self, command: Command, now: datetime) -> None:
        recovered = await self._store.get_meta(RECOVERED_AT)
        if recovered and command.issued_at < datetime.fromisoformat(recovered):
            raise CommandRejected(
                "issued before the state store was recovered (used nonces may be lost)"
            )
        if not await self._store.call(_claim_nonce, command.nonce, command.expires_at, now):
            raise CommandRejected("replayed: nonce already used")


def _claim_nonce(conn: sqlite3.Connection, nonce: str, expires: datetime, now: datetime) -> bool:
    """Remember `nonce` until it expires; False when it was already used."""
    with conn:
        conn.execute("DELETE FROM command_nonces WHERE expires_at < ?", (now.isoformat(),))
        cursor = conn.execute(
            "INSERT OR IGNORE INTO command_nonces (nonce, expires_at) VALUES (?, ?)",
            (nonce, expires.astimezone(UTC).isoformat()),
        )
        return cursor.rowcount == 1
