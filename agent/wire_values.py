"""Decoding values that arrive from the network in signed messages (licence tokens, central
commands): each failure raises the caller's rejection error (`error`) saying what is wrong."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any


def b64url(text: Any, what: str, error: type[Exception] = ValueError) -> bytes:
    """Unpadded base64url, as in compact signed tokens."""
    if not isinstance(text, str):
        raise error(f"{what} is not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not base64url") from exc


def instant(value: Any, what: str, error: type[Exception] = ValueError) -> datetime:
    """An ISO 8601 time with a zone (a trailing Z accepted)."""
    if not isinstance(value, str):
        raise error(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise error(f"{what} {value[:40]!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise error(f"{what} has no time zone")
    return moment
