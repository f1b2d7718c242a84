"""Usage reports as a hash chain of signed envelopes.

An envelope is ``{"payload": {...}, "key_id": ..., "signature": <b64>}``. The signature covers
the payload's canonical JSON (sorted keys, no spaces); each payload carries `prev_sha256`, the
SHA-256 of the previous envelope's canonical JSON, so removing, reordering or changing any
report breaks every later link.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import AgentError
from agent.usage.keys import key_id

USAGE_SCHEMA = "pbx-agent/usage/1"
GENESIS = "0" * 64


class ChainError(AgentError):
    """A usage chain failed verification; the message says which report and why."""


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(envelope: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(envelope)).hexdigest()


def sign(payload: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signature = key.sign(canonical(payload))
    return {
        "payload": dict(payload),
        "key_id": key_id(key),
        "signature": base64.b64encode(signature).decode(),
    }


def verify(envelopes: Iterable[Mapping[str, Any]], public: Ed25519PublicKey) -> int:
    """Check every signature and link; return how many reports were verified."""
    previous = None
    count = 0
    for index, envelope in enumerate(envelopes, start=1):
        try:
            payload = envelope["payload"]
            signature = base64.b64decode(envelope["signature"], validate=True)
            public.verify(signature, canonical(payload))
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"report {index}: malformed envelope ({exc})") from exc
        except InvalidSignature as exc:
            raise ChainError(f"report {index}: bad signature (changed after signing?)") from exc
        expected_prev = GENESIS if previous is None else digest(previous)
        if previous is None and payload.get("prev_sha256") != GENESIS:
            # A chain may start anywhere: accept a first report that points to an earlier one.
            expected_prev = payload.get("prev_sha256")
        if payload.get("prev_sha256") != expected_prev:
            raise ChainError(f"report {index}: prev_sha256 does not match report {index - 1}")
        previous = envelope
        count += 1
    if count == 0:
        raise ChainError("no usage report to verify")
    return count
