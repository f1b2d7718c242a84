"""Decoding values that arrive from the network in signed messages (licence tokens, central
commands): each failure raises the caller's rejection error (`error`) saying what is wrong."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any

# How far ahead of this host's clock a signed `issued_at` may be (clocks are never exactly
# together); anything later was not issued yet, whatever its signature says.
CLOCK_SKEW = timedelta(minutes=5)
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url(text: Any, what: str, error: type[Exception] = ValueError) -> bytes:
    """Unpadded base64url, as in compact signed tokens (padding tolerated). Strict: the
    decoder alone would skip characters outside the alphabet."""
    if not isinstance(text, str):
        raise error(f"{what} is not a string")
    if not _B64URL.fullmatch(text):
        raise error(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not base64url") from exc


def instant(value: Any, what: str, error: type[Exception] = ValueError) -> datetime:
    """An ISO 8601 time with a zone (a trailing Z accepted)."""
    if value is None:
        raise error(f"{what} is missing")
    if not isinstance(value, str):
        raise error(f"{what} is not an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise error(f"{what} {value[:40]!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise error(f"{what} has no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise error(f"{what} {value[:40]!r} is out of range") from None


def issued_at(value: Any, now: datetime, error: type[Exception] = ValueError) -> datetime:
    """A signed `issued_at`, refused when it is beyond `CLOCK_SKEW` ahead of `now`."""
    moment = instant(value, "issued_at", error)
    if moment - now > CLOCK_SKEW:
        raise error(
            f"issued_at {moment.isoformat()} is in the future (this host's clock says "
            f"{now.astimezone(UTC).isoformat(timespec='seconds')})"
        )
    return moment
