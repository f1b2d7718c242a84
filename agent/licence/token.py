"""Licence tokens: `<base64url payload>.<base64url Ed25519 signature>`, verified against the
vendor keys pinned in config (by `kid` in the payload when given, else any pinned key, so
keys can rotate). A token that fails any check is rejected with the reason and never acted on.
The payload is bounded (size, nesting, numbers) before it is parsed and read only once its
signature verified; a payload issued more than a few minutes ahead of this host's clock is
refused (it would pin the clock-behind check for good).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import bounded_json, wire_values
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
PAYLOAD_LIMITS = bounded_json.Limits(MAX_TOKEN_BYTES, max_depth=3, max_number_chars=20)
KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


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


def verify_token(
    token: Any, keys: Mapping[str, Ed25519PublicKey], site_id: str, *, now: datetime | None
) -> Licence:
    """The verified licence in `token`, or `TokenRejected` saying why. `now`: this host's
    clock, against which `issued_at` is checked; None only for a token accepted before (the
    cache), which must not be refused later because the clock went back."""
    if not isinstance(token, str) or not token:
        raise TokenRejected("no token in the answer")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected(f"token of {len(token)} bytes is larger than {MAX_TOKEN_BYTES}")
    parts = token.split(".")
    if len(parts) != 2:
        raise TokenRejected("not <payload>.<signature>")
    payload_bytes = wire_values.b64url(parts[0], "payload", TokenRejected)
    signature = wire_values.b64url(parts[1], "signature", TokenRejected)
    # The signature is checked first, over the raw bytes, by every pinned key (the payload's
    # `kid` names one, but is read only from a verified payload).
    signers = [kid for kid, key in keys.items() if _verifies(key, signature, payload_bytes)]
    if not signers:
        raise TokenRejected("bad signature: not signed by a pinned vendor key")
    payload = bounded_json.loads(payload_bytes, PAYLOAD_LIMITS, "payload", TokenRejected)
    if not isinstance(payload, dict):
        raise TokenRejected("payload is not a JSON object")
    kid = payload.get("kid")
    if kid is not None and (not isinstance(kid, str) or not KID.fullmatch(kid)):
        raise TokenRejected("kid must be 1-64 letters, digits, '.', '_', '-'")
    if kid is not None and kid not in signers:
        raise TokenRejected(f"signed with key {kid!r}, which is not pinned")
    return _licence(payload, site_id, token, now)


def _verifies(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _licence(payload: Mapping[str, Any], site_id: str, raw: str, now: datetime | None) -> Licence:
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
        issued_at=(
            wire_values.instant(payload.get("issued_at"), "issued_at", TokenRejected)
            if now is None
            else wire_values.issued_at(payload.get("issued_at"), now, TokenRejected)
        ),
        serial=serial,
        max_users=max_users,
        entitlements={f: bool(entitlements[f]) for f in FEATURES},
        raw=raw,
    )
