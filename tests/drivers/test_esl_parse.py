"""The FreeSWITCH parsers on the captured answers, and the ESL framing and event encoding as
properties: any TCP chunking gives the same messages; plain event values survive encoding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import CommandError, ParseError
from drivers.freeswitch import parse, wire
from drivers.freeswitch.sim import xmldoc
from tests.conftest import FIXTURES

FS = FIXTURES / "freeswitch-esl"
T = FS / "transcripts"


def body(name: str) -> str:
    return next(iter(wire.Framer().feed((T / f"{name}.txt").read_bytes()))).text()


def test_status_and_version() -> None:
    status = parse.parse_status(body("api_status"))
    assert status.uptime == timedelta(seconds=59, milliseconds=211, microseconds=322)
    assert status.ready and status.max_sessions == 200 and status.sessions == 0
    with_call = parse.parse_status(body("call_status"))
    assert with_call.uptime == timedelta(minutes=1, seconds=1, milliseconds=446, microseconds=152)
    assert with_call.sessions == 2 and with_call.peak == 2
    assert parse.parse_version(body("api_version")) == "1.10.12-release"
    with pytest.raises(ParseError):
        parse.parse_status("hello")


def test_sofia_status_names_profiles_aliases_and_gateways() -> None:
    entries = parse.parse_sofia_status(body("api_sofia_status"))
    assert [(e.kind, e.name) for e in entries] == [
        ("alias", "coastal.example"),
        ("alias", "bayside.example"),
        ("profile", "external"),
        ("gateway", "coastal-trunk"),
        ("gateway", "bayside-trunk"),
        ("profile", "internal"),
    ]
    gateway = entries[4]
    assert gateway.profile == "external" and gateway.data == "sip:bayside0291@127.0.0.2"
    assert gateway.state.startswith("FAIL_WAIT")
    assert parse.parse_sofia_status(body("restart_sofia_status"))[3].state.startswith("FAIL_WAIT")


def test_registrations_are_one_row_per_device() -> None:
    rows = parse.parse_registrations(body("api_sofia_xmlstatus_profile_internal_reg"))
    assert len(rows) == 13  # fact 24: `show registrations` has 12
    patel = [r for r in rows if r.user == "1002@bayside.example"]
    assert [(r.uri, r.agent) for r in patel] == [
        ("sip:1002@127.0.8.12:5062;transport=udp", "PolycomVVX-VVX_411-UA/6.4.3.5018"),
        ("sip:1002@127.0.8.112:52814;transport=udp", "Z 5.6.1 v2.10.19.8"),
    ]
    fax = next(r for r in rows if r.user_id == "1090")
    assert fax.ping_status == "Unreachable" and fax.realm == "bayside.example"
    assert parse.ping_time_usec("0.69") == 690
    with pytest.raises(CommandError, match="Invalid Profile"):
        parse.parse_registrations(body("api_sofia_status_profile_nosuch"))
    with pytest.raises(ParseError):
        parse.parse_registrations("<html>not a profile</html>")


def test_gateway_status() -> None:
    gateway = parse.parse_gateway(body("api_sofia_xmlstatus_gateway_bayside"))
    assert (gateway.name, gateway.state, gateway.status) == ("bayside-trunk", "FAIL_WAIT", "DOWN")


def test_list_users() -> None:
    users = parse.parse_list_users(body("api_list_users"))
    assert len(users) == 14
    app = next(u for u in users if u.user_id == "1003-app")
    assert (app.callerid_number, app.domain, app.context) == (
        "1003",
        "bayside.example",
        "bayside.example",
    )
    assert parse.parse_list_users(body("api_list_users_domain_nosuch")) == ()
    with pytest.raises(ParseError, match="cut short"):
        parse.parse_list_users(body("api_list_users").replace("+OK", ""))


def test_queues_and_fifos() -> None:
    assert parse.parse_callcenter_queues(body("api_callcenter_config_queue_list")) == (
        "appointments@bayside.example",
    )
    assert parse.parse_fifo_names(body("api_fifo_list")) == (
        "bayside-hold@bayside.example",
        "manual_calls",
    )


def test_dialplan_objects_of_a_tenant() -> None:
    tree = xmldoc.parse((FS / "fs-config/var/log/freeswitch/freeswitch.xml.fsxml").read_text())
    dialplan = tree.find("section", "name", "dialplan")
    assert dialplan is not None
    context = dialplan.find("context", "name", "bayside.example")
    assert context is not None
    objects = parse.parse_context(xmldoc.toxml(context), "bayside.example")
    assert [(o.extension, o.kind) for o in objects] == [
        ("*98", "feature"),
        ("1099", "voicemail"),
        ("3000", "conference"),
        ("5000", "ivr"),
        ("6000", "ring_group"),
        ("7000", "queue"),
    ]
    assert parse.parse_context("can't find anything\n", "nosuch") == ()


@pytest.mark.parametrize(
    ("name", "is_error"),
    [
        ("api_nonexistent_command", True),
        ("api_show_nosuch", True),
        ("api_sofia_status_profile_nosuch", True),
        ("api_sofia_status_gateway_nosuch", True),
        ("api_conference_list_empty", False),  # "+OK No active conferences." is no error
        ("api_reloadxml", False),
    ],
)
def test_api_error_shapes(name: str, is_error: bool) -> None:
    """Fact 13: errors come in several shapes, and "+OK" alone proves nothing."""
    assert (parse.api_error("x", body(name)) is not None) == is_error
    assert parse.no_output(body("api_global_getvar_missing"))


def test_events_plain_and_json() -> None:
    data = (T / "events_plain_licence_lapse.txt").read_bytes()
    events = [wire.decode_event(m) for m in wire.Framer().feed(data) if m.body is not None]
    failure = next(e for e in events if e.name == "sofia::register_failure")
    assert [v for k, v in failure.headers if k == "profile-name"] == ["internal", "internal"]
    assert failure.get("user-agent") == "Bria Android release 6.24.2 stamp 119457"
    job = next(
        wire.decode_event(m)
        for m in wire.Framer().feed((T / "events_plain_background_job.txt").read_bytes())
        if m.content_type == wire.EVENT_PLAIN
    )
    assert job.body.startswith("UP 0 years") and len(job.body.encode()) == 336  # fact 32
    heartbeat = next(
        wire.decode_event(m)
        for m in wire.Framer().feed((T / "events_json_heartbeat.txt").read_bytes())
        if m.content_type == wire.EVENT_JSON
    )
    assert heartbeat.name == "HEARTBEAT" and heartbeat.get("FreeSWITCH-IPv6") == "fd00::2"
    assert parse.startup_from_heartbeat(heartbeat) is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    data = (T / "events_plain_sofia_register.txt").read_bytes()
    whole = list(wire.Framer().feed(data))
    framer, got, position = wire.Framer(), [], 0
    for cut in cuts:
        got += framer.feed(data[position : position + cut])
        position += cut
    got += framer.feed(data[position:])
    assert got == whole and framer.pending == 0


@given(st.text(max_size=80))
def test_plain_event_values_survive_encoding(value: str) -> None:
    value = value.replace("\n", " ").replace("%", "%25")
    encoded = wire.url_encode(value)
    assert "\n" not in encoded and " " not in encoded
    event = wire.decode_plain(f"Name: {encoded}\n\n")
    assert event.get("Name") == value.replace("%25", "%")
