"""The message envelope every topic shares, and the severity order the outbox drops by.

Every payload is a JSON object with `schema` (`pbx-agent/{topic}/{version}`), `id` (unique; a
resend keeps it), `site_id` and `ts` (UTC ISO 8601); the rest is the topic's own. The JSON
Schemas are `agent/schemas/{topic}.schema.json`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1
TOPICS = ("status", "event", "usage", "backup", "licence", "heartbeat", "reply")

# Drop order when the outbox is full: lowest rank first (then oldest).
SEVERITY_RANK = {"debug": 0, "info": 1, "warning": 2, "critical": 3, "record": 4}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(topic: str, site_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new message for `topic` (its base name: `reply/{id}` is "reply")."""
    base = topic.split("/", 1)[0]
    if base not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    return {
        "schema": f"pbx-agent/{base}/{SCHEMA_VERSION}",
        "id": uuid.uuid4().hex,
        "site_id": site_id,
        "ts": now_iso(),
        **body,
    }


def usage_message(usage: dict[str, Any]) -> dict[str, Any]:
    """The `usage` message of a signed usage report: the envelope fields from its payload."""
    payload = usage["payload"]
    return {
        "schema": payload["schema"],
        "id": payload["id"],
        "site_id": payload["site_id"],
        "ts": payload["ts"],
        **usage,
    }


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
