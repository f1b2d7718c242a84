"""Parsers fed the recorded transcripts directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.asterisk import wire
from drivers.asterisk.parse import parse_endpoint_list, parse_facts
from drivers.asterisk.parse.config import (
    _callerid_by_expression,
    _quoted_callerid,
    parse_callerid,
)
from drivers.errors import ParseError
from tests.conftest import TRANSCRIPTS


def messages(name: str) -> list[wire.Message]:
    data = (TRANSCRIPTS / f"{name}.txt").read_bytes()
    return [wire.decode(block) for block in data.split(b"\r\n\r\n") if block.strip()]


def test_facts_from_core_settings_and_status() -> None:
    now = datetime(2026, 11, 24, 15, 40, 36, tzinfo=UTC)
    facts = parse_facts(messages("core_settings")[0], messages("core_status")[0], now=now)
    assert facts.vendor == "asterisk" and facts.version == "22.10.1"
    assert facts.system_name == "nw-pbx01" and facts.api_version == "11.0.0"
    assert facts.startup_time == datetime(2026, 11, 24, 15, 39, 36, tzinfo=UTC)
    assert facts.reload_time == facts.startup_time
    assert facts.uptime_seconds == 60


def test_facts_take_the_pbx_timezone_into_account() -> None:
    cet = timezone(timedelta(hours=1))
    facts = parse_facts(
        messages("core_settings")[0], messages("boot_core_status")[0], pbx_timezone=cet
    )
    assert facts.startup_time == datetime(2026, 11, 24, 14, 43, 21, tzinfo=UTC)


def test_facts_reject_malformed_input() -> None:
    settings, status = messages("core_settings")[0], messages("core_status")[0]
    with pytest.raises(ParseError, match="AsteriskVersion"):
        parse_facts([(k, v) for k, v in settings if k != "AsteriskVersion"], status)
    with pytest.raises(ParseError, match="date/time"):
        parse_facts(settings, [(k, "garbage" if k == "CoreStartupTime" else v) for k, v in status])


def test_endpoint_list_from_transcript() -> None:
    endpoints = parse_endpoint_list(messages("pjsip_show_endpoints"))
    assert len(endpoints) == 16
    by_name = {e.name: e for e in endpoints}
    assert by_name["101"].contacts == ("sip:101@127.0.0.11:5060", "sip:101@127.0.0.12:52144")
    assert by_name["103"].contacts == () and by_name["103"].device_state == "Unavailable"
    assert by_name["trunk-provider"].contacts == ("sip:127.0.0.2:5060",)
    assert by_name["108"].device_state == "Unavailable"
    assert [e.name for e in endpoints] == sorted(by_name)


def test_endpoint_list_rejects_bad_counts() -> None:
    events = messages("pjsip_show_endpoints")
    events[1] = [(k, "many" if k == "ActiveChannels" else v) for k, v in events[1]]
    with pytest.raises(ParseError, match="ActiveChannels"):
        parse_endpoint_list(events)


@given(st.permutations(messages("pjsip_show_endpoints")))
def test_endpoint_list_does_not_depend_on_order(shuffled: list[wire.Message]) -> None:
    assert parse_endpoint_list(shuffled) == parse_endpoint_list(messages("pjsip_show_endpoints"))


CALLERID_TEXT = st.text(alphabet='" <>\tBob1', max_size=14)


@given(CALLERID_TEXT | CALLERID_TEXT.map(lambda t: f'"{t}" <{t}>'))
def test_the_usual_caller_id_form_reads_as_the_full_expression_reads_it(value: str) -> None:
    """`"Name" <number>` is read without the regular expression (one per endpoint of a large
    office): whatever it reads that way, the expression reads the same."""
    quick = _quoted_callerid(value) if value else None
    assert quick is None or quick == _callerid_by_expression(value)


def test_caller_ids_as_offices_write_them() -> None:
    assert parse_callerid('"Bob Martinez" <102>') == ("Bob Martinez", "102")
    assert parse_callerid('"Bob Martinez"<102>') == ("Bob Martinez", "102")
    assert parse_callerid('"" <102>') == (None, "102")
    assert parse_callerid("Bob <102>") == ("Bob", "102")
    assert parse_callerid('  "Bob"   <102>  ') == ("Bob", "102")
    assert parse_callerid("102") == (None, "102")
    assert parse_callerid("<unknown>") == (None, None)
