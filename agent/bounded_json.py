"""JSON from untrusted sources (MQTT commands, licence answers and tokens, control requests),
parsed only within bounds: the size is checked before anything is decoded, the nesting depth
before anything is parsed, and each number while it is parsed, so that no input can raise
anything but the caller's own refusal (no RecursionError, no ValueError from Python's
integer-digit limit, no memory blow-up). Duplicate keys are refused too: two parsers must
never read one signed payload two ways.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# A whole JSON string (escapes included), a bracket, or a quote that opens no whole string.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]|"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_depth: int = 16
    max_number_chars: int = 24  # digits, sign, point and exponent of one number


class _Refused(Exception):
    """Raised inside the parser's hooks; turned into the caller's error."""


def loads(data: bytes | str, limits: Limits, what: str, error: type[Exception] = ValueError) -> Any:
    """The JSON value in `data`, or `error("{what}: <one-line reason>")`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise error(f"{what}: {len(raw)} bytes, larger than {limits.max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: not UTF-8 (byte {exc.start})") from None
    depth = nesting_depth(raw)
    if depth > limits.max_depth:
        raise error(f"{what}: nested {depth} deep, more than {limits.max_depth}")

    def number(kind: type[int] | type[float]) -> Any:
        def parse(digits: str) -> int | float:
            if len(digits) > limits.max_number_chars:
                raise _Refused(
                    f"a number of {len(digits)} characters (at most {limits.max_number_chars})"
                )
            value = kind(digits)
            if isinstance(value, float) and not math.isfinite(value):
                raise _Refused(f"the number {digits} is out of range")
            return value

        return parse

    def constant(name: str) -> Any:
        raise _Refused(f"{name} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in pairs:
            if key in result:
                raise _Refused(f"key {key[:40]!r} given twice")
            result[key] = item
        return result

    try:
        value = json.loads(
            text,
            parse_int=number(int),
            parse_float=number(float),
            parse_constant=constant,
            object_pairs_hook=unique,
        )
        _check_strings(value)
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise error(f"{what}: not JSON ({exc.msg} at {where})") from None
    return value


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in `raw`, not counting brackets inside strings."""
    depth = deepest = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b'"':
            break  # an unterminated string: the rest is inside it (and not JSON)
    return deepest


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (`"\\ud800"`): valid JSON, but no UTF-8 encoding, so any later
    write (SQLite, a log line) would fail. The depth is already bounded."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused("a string holds a lone surrogate escape") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
