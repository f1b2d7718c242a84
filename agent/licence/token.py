"""Licence tokens: `<base64url payload>.<base64url Ed25519 signature>`, verified against the
vendor keys pinned in config (by `kid` in the payload when given, else any pinned key, so
keys can rotate). A token that fails any check is rejected with the reason and never acted on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import wire_values
from agent.errors import LicenceError

FEATURES = (
    "softphone_app",
    "remote_portal",
    "offsite_devices",
    "integrations",
    "add_extensions",
    "software_updates",
    "config_archive",
)
STATUSES = ("active", "lapsed", "suspended")
MAX_TOKEN_BYTES = 16 * 1024


class TokenRejected(LicenceError):
    """A token that must not be acted on; the message says why."""


@dataclass(frozen=True, slots=True)
class Licence:
    """A verified token's payload."""

    site_id: str
    subscription_id: str
    status: str
    expires_at: datetime
    issued_at: datetime
    serial: int
    max_users: int
    entitlements: Mapping[str, bool]
    raw: str  # the token as received, for the cache

    def to_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "subscription_id": self.subscription_id,
            "status": self.status,
            "expires_at": self.expires_at.isoformat(),
            "issued_at": self.issued_at.isoformat(),
            "serial": self.serial,
            "max_users": self.max_users,
            "entitlements": dict(self.entitlements),
        }


def verify_token(token: Any, keys: Mapping[str, Ed25519PublicKey], site_id: str) -> Licence:
    """The verified licence in `token`, or `TokenRejected` saying why."""
    if not isinstance(token, str) or not token:
        raise TokenRejected("no token in the answer")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected(f"token of {len(token)} bytes is larger than {MAX_TOKEN_BYTES}")
    parts = token.split(".")
    if len(parts) != 2:
        raise TokenRejected("not <payload>.<signature>")
    payload_bytes = wire_values.b64url(parts[0], "payload", TokenRejected)
    signature = wire_values.b64url(parts[1], "signature", TokenRejected)
    try:
        payload = json.loads(payload_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenRejected("payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise TokenRejected("payload is not a JSON object")
    kid = payload.get("kid")
    candidates = [keys[kid]] if isinstance(kid, str) and kid in keys else list(keys.values())
    if isinstance(kid, str) and kid not in keys:
        raise TokenRejected(f"signed with key {kid[:40]!r}, which is not pinned")
    for key in candidates:
        try:
            key.verify(signature, payload_bytes)
            break
        except InvalidSignature:
            continue
    else:
        raise TokenRejected("bad signature: not signed by a pinned vendor key")
    return _licence(payload, site_id, token)


def _licence(payload: Mapping[str, Any], site_id: str, raw: str) -> Licence:
    if payload.get("site_id") != site_id:
        raise TokenRejected(f"token is for site {str(payload.get('site_id'))[:64]!r}, not this one")
    status = payload.get("status")
    if status not in STATUSES:
        raise TokenRejected(f"status {str(status)[:20]!r} is not one of {', '.join(STATUSES)}")
    serial, max_users = payload.get("serial"), payload.get("max_users")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise TokenRejected("serial must be a non-negative integer")
    if not isinstance(max_users, int) or isinstance(max_users, bool) or max_users < 0:
        raise TokenRejected("max_users must be a non-negative integer")
    entitlements = payload.get("entitlements")
    if not isinstance(entitlements, dict) or not all(
        isinstance(entitlements.get(f), bool) for f in FEATURES
    ):
        raise TokenRejected(f"entitlements must give true/false for each of {', '.join(FEATURES)}")
    subscription = payload.get("subscription_id")
    if not isinstance(subscription, str) or not subscription:
        raise TokenRejected("subscription_id is missing")
    return Licence(
        site_id=site_id,
        subscription_id=subscription,
        status=str(status),
        expires_at=wire_values.instant(payload.get("expires_at"), "expires_at", TokenRejected),
        issued_at=wire_values.instant(payload.get("issued_at"), "issued_at", TokenRejected),
        serial=serial,
        max_users=max_users,
        entitlements={f: bool(entitlements[f]) for f in FEATURES},
        raw=raw,
    )
