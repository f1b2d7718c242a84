"""The bounded JSON reader every untrusted input goes through: whatever the bytes, the result is
the parsed value or the caller's refusal with a one-line reason, never another exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bounded_json import Limits, loads, nesting_depth

LIMITS = Limits(max_bytes=4096, max_depth=6, max_number_chars=20)


class Refused(Exception):
    pass


def refusal(data: bytes | str) -> str:
    with pytest.raises(Refused) as caught:
        loads(data, LIMITS, "input", Refused)
    reason = str(caught.value)
    assert "\n" not in reason and reason.startswith("input: ")
    return reason


def test_reads_ordinary_json() -> None:
    text = '{"a": [1, -2.5, "x [ { \\" y", true, null], "b": {"c": {}}}'
    assert loads(text, LIMITS, "input", Refused) == json.loads(text)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 4000, "nested 4000 deep"),
        (b'{"a":' * 7 + b"1" + b"}" * 7, "nested 7 deep"),
        (b'{"key_id": ' + b"9" * 4000 + b"}", "a number of 4000 characters"),
        (b"[1e99999]", "out of range"),
        (b"[-Infinity]", "-Infinity is not JSON"),
        (b"NaN", "NaN is not JSON"),
        (b'{"a": 1, "a": 2}', "key 'a' given twice"),
        (b'["\\ud800"]', "lone surrogate"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"a": "\udcff"}', "not UTF-8"),
        (b" " * 5000, "larger than 4096"),
        (b"", "not JSON"),
        (b"{'a': 1}", "not JSON"),
        (b'{"a": 1} {"b": 2}', "not JSON"),
    ],
)
def test_refuses_hostile_input_with_one_line(data: bytes | str, reason: str) -> None:
    assert reason in refusal(data)


def test_brackets_inside_strings_do_not_count() -> None:
    assert nesting_depth(b'["[[[[[[[[[[", {"k": "}}}{{{"}]') == 2
    assert loads('["[[[[[[[[[[[[["]', LIMITS, "input", Refused) == ["[[[[[[[[[[[[["]


def test_unterminated_strings_are_scanned_once() -> None:
    # Escaped quotes that never close a string: a scanner that retries from every quote is
    # quadratic here (about 10^10 steps; the test's timeout would end it).
    assert nesting_depth(b'"\\"' * 40_000 + b"[[") == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_value_or_the_refusal(data: bytes) -> None:
    with contextlib.suppress(Refused):
        loads(data, LIMITS, "input", Refused)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_valid_json_is_read_exactly_or_refused_for_a_named_bound(value: object) -> None:
    text = json.dumps(value)
    try:
        assert loads(text, LIMITS, "input", Refused) == json.loads(text)
    except Refused as exc:
        assert any(word in str(exc) for word in ("deep", "number", "larger", "surrogate"))
