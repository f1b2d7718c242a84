"""Acceptance: every exchange captured from a real FreeSWITCH 1.10.12 (150 of them), replayed in
capture order against the simulator serving the fixture office, gets the captured answer,
varying values masked (see esl_replay.MASKED_PATTERNS and MASKED_EVENT_HEADERS).

The phones and trunk providers of the capture are outside FreeSWITCH: where the capture saw
them act (a REGISTER, a device that stops answering OPTIONS, a provider that does not
answer), the harness plays them through the simulator's state, in the order the captured
events show; what FreeSWITCH answered and fired in return is the simulator's own.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.freeswitch import wire
from drivers.freeswitch.sim.events import SimEvent
from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.sim.state import SimState
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES
from tests.sim.esl_replay import Exchange, Session, exchanges, masked, split

FS = FIXTURES / "freeswitch-esl"
EXCHANGES = exchanges(FS)
BY_NAME = {e.name: e for e in EXCHANGES}
PASSWORD = b"Fake-Esl-Pass-2024"
BROKEN_FILE = "dialplan/zz-broken.xml"
# Its content was not captured; this one puts the stray </context> where FreeSWITCH reported
# it (line 479 of the pre-processed document, just after the last dialplan context).
BROKEN_XML = '<context name="zz-broken">\n  <extension name="broken">\n</context>\n'
LOCKDOWN = "directory/lockdown/remote-access-off.xml"


@dataclass
class Action:
    """Something a phone or a provider did, as the captured events show it."""

    kind: str
    fields: dict[str, str]
    offset: int = 0  # byte offset of its event in its events file


def _events(data: bytes) -> list[tuple[int, wire.Event]]:
    """(byte offset, event) of each event in a captured events file."""
    found, offset = [], 0
    while offset < len(data):
        end = data.find(b"\n\n", offset)
        if end < 0:
            break
        message = next(iter(wire.Framer().feed(data[offset:])))
        size = end + 2 - offset + len(message.body or b"")
        if message.content_type in (wire.EVENT_PLAIN, wire.EVENT_JSON):
            found.append((offset, wire.decode_event(message)))
        offset += size
    return found


def actions(files: list[bytes], *, play_expires: bool = True) -> list[Action]:
    """The outside world's acts behind the captured events, in FreeSWITCH's order."""
    by_sequence: dict[int, tuple[int, wire.Event]] = {}
    for data in files:
        for offset, event in _events(data):
            sequence = int(event.get("Event-Sequence") or 0)
            by_sequence.setdefault(sequence, (offset, event))
    result = []
    for _, (offset, e) in sorted(by_sequence.items()):
        name = e.name
        get: Callable[[str], str] = lambda key, e=e: e.get(key) or ""  # noqa: E731
        if name in ("sofia::register", "sofia::unregister"):
            contact = get("contact")
            uri = contact[contact.find("<") + 1 : contact.rfind(">")]
            result.append(
                Action(
                    "register",
                    {
                        "user": get("from-user"),
                        "domain": get("from-host"),
                        "uri": uri,
                        "call_id": get("call-id"),
                        "agent": get("user-agent"),
                        "expires": "0" if name == "sofia::unregister" else get("expires"),
                        "ip": get("network-ip"),
                        "port": get("network-port"),
                    },
                    offset,
                )
            )
        elif name == "sofia::register_failure":
            fields = {k: get(k) for k in ("to-user", "to-host", "network-ip", "network-port")}
            fields["agent"] = get("user-agent")
            result.append(Action("refused", fields, offset))
        elif name == "sofia::expire" and play_expires:
            result.append(Action("expire", {"call_id": get("call-id")}, offset))
        elif name == "sofia::gateway_state":
            fields = {"name": get("Gateway"), "state": get("State")}
            fields |= {"status": get("Status"), "phrase": get("Phrase")}
            result.append(Action("gateway", fields, offset))
        elif name == "sofia::sip_user_state":
            fields = {k: get(k) for k in ("call-id", "Ping-Status", "Status", "Phrase")}
            result.append(Action("ping", fields, offset))
        elif name == "HEARTBEAT":
            result.append(Action("tick", {}, offset))
    return result


def play(state: SimState, action: Action) -> None:
    f = action.fields
    if action.kind == "register":
        state.register(
            user=f["user"],
            domain=f["domain"],
            uri=f["uri"],
            call_id=f["call_id"],
            agent=f["agent"],
            expires=int(f["expires"]),
            ip=f["ip"],
            port=f["port"],
        )
    elif action.kind == "refused":  # the device's REGISTER, from its own contact
        row = next(
            (
                r
                for r in state.registrations.values()
                if r.user == f["to-user"] and r.ip == f["network-ip"]
            ),
            None,
        )
        uri = row.uri if row else f"sip:{f['to-user']}@{f['network-ip']}:{f['network-port']}"
        state.register(
            user=f["to-user"],
            domain=f["to-host"],
            uri=uri,
            call_id=row.call_id if row else "refused",
            agent=f["agent"],
            expires=row.expires if row else 60,
            ip=f["network-ip"],
            port=f["network-port"],
        )
    elif action.kind == "expire":
        state.expire(action.fields["call_id"])
    elif action.kind == "gateway":
        state.gateway_state(f["name"], f["state"], int(f["status"] or 0), f["phrase"])
    elif action.kind == "ping":
        state.ping_status(
            f["call-id"], f["Ping-Status"] == "REACHABLE", int(f["Status"] or 0), f["Phrase"]
        )
    elif action.kind == "tick":
        state.scheduler_tick()


@dataclass
class Replayer:
    """A simulator on its own event loop thread, and the sessions of the capture."""

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    sessions: dict[str, Session] = field(default_factory=dict)
    results: dict[str, list[wire.Message]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        office = load_office(FIXTURES / "offices" / "bayside-coastal.toml")
        self.simulator = Simulator(office, scheduler=False)
        self.call(self.simulator.start())

    @property
    def state(self) -> SimState:
        return self.simulator.state

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def in_loop(self, function: Callable[[], None]) -> None:
        async def run() -> None:
            function()
            await asyncio.sleep(0)  # let the events reach the sessions' queues

        self.call(run())

    def session(self, label: str, source: str | None = None, login: bool = True) -> Session:
        """The capture's socket `label`; a new one is logged in unless its capture starts
        with the banner (the capture recorded no banner or auth for the others)."""
        if label not in self.sessions:
            session = Session(self.simulator.port, source)
            if login:
                assert session.read(1)[0].content_type == wire.AUTH_REQUEST
                session.send(b"auth " + PASSWORD + b"\n\n")
                assert session.read(1)[0].reply_text == "+OK accepted"
            self.sessions[label] = session
        return self.sessions[label]

    def exchange(self, exchange: Exchange) -> list[wire.Message]:
        """Send one captured request and read as many messages as were captured."""
        session = self.session(exchange.session, login=exchange.request is not None)
        expected = split(exchange.expected)
        if exchange.request is not None:
            session.send(exchange.request)
        if exchange.complete_by == "eof":
            got = session.read_until_eof()
            del self.sessions[exchange.session]
            return got
        return session.read(len(expected))

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.call(self.simulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def commands(exchange: Exchange) -> list[str]:
    """The request's commands, one per api/response expected (pipelined requests)."""
    text = (exchange.request or b"").decode().replace("\r\n", "\n")
    return [c for c in text.split("\n\n") if c]


def masked_all(exchange: Exchange, messages: list[wire.Message]) -> list[Any]:
    sent = iter(commands(exchange))
    return [
        masked(m, next(sent, "") if m.content_type == wire.API_RESPONSE else "") for m in messages
    ]


def describe_difference(
    exchange: Exchange, expected: list[wire.Message], got: list[wire.Message]
) -> str:
    want, have = masked_all(exchange, expected), masked_all(exchange, got)
    head = f"{len(expected)} messages captured, {len(got)} received"
    for index, (a, b) in enumerate(zip(want, have, strict=False)):
        if a != b:
            diff = difflib.unified_diff(
                [f"{k}: {v}" for k, v in a[0]] + (a[1] or "").split("\n"),
                [f"{k}: {v}" for k, v in b[0]] + (b[1] or "").split("\n"),
                "captured",
                "simulator",
                lineterm="",
            )
            return f"{head}; message {index + 1} differs:\n" + "\n".join(list(diff)[:60])
    return head


def compare(exchange: Exchange, got: list[wire.Message]) -> None:
    expected = split(exchange.expected)
    if masked_all(exchange, got) != masked_all(exchange, expected):
        pytest.fail(describe_difference(exchange, expected, got))


# -- groups of exchanges that happened at the same time on several sockets ----------------


def heartbeat_group(r: Replayer) -> None:
    names = ["events_plain_heartbeat", "events_json_heartbeat", "events_xml_heartbeat"]
    for name in names:
        e = BY_NAME[name]
        r.session(e.session).send(e.request or b"")
        r.sessions[e.session].read(1)
    r.in_loop(r.state.scheduler_tick)
    r.in_loop(r.state.scheduler_tick)
    for name in names:
        e = BY_NAME[name]
        r.results[name] = [*split(e.expected)[:1], *r.sessions[e.session].read(2)]


def registration_group(r: Replayer) -> None:
    names = [
        "events_plain_sofia_register",
        "events_json_sofia_register",
        "events_plain_sofia_health",
    ]
    replies = {}
    for name in names:
        e = BY_NAME[name]
        r.session(e.session).send(e.request or b"")
        replies[name] = r.sessions[e.session].read(1)
    for action in actions([BY_NAME[n].expected for n in names]):
        r.in_loop(lambda a=action: play(r.state, a))
    for name in names:
        e = BY_NAME[name]
        count = len(split(e.expected)) - 1
        r.results[name] = replies[name] + r.sessions[e.session].read(count, timeout=10)


def lapse_group(r: Replayer) -> None:
    window = BY_NAME["events_plain_licence_lapse"]
    r.session(window.session).send(window.request or b"")
    reply = r.sessions[window.session].read(1)
    pending = actions([window.expected], play_expires=False)  # expires come from the flushes
    apis = [e for e in EXCHANGES if e.session == "lapse"]
    marks: list[dict[str, Any]] = window.entry["marks"]  # type: ignore[assignment]
    for mark in marks:
        while pending and pending[0].offset < mark["bytes_so_far"]:
            action = pending.pop(0)
            r.in_loop(lambda a=action: play(r.state, a))
        what = str(mark["what"])
        if what == "lockdown file written":
            source = FS / "fs-config" / "licence-lapse" / "remote-access-off.xml"
            (r.state.conf_dir / LOCKDOWN).write_bytes(source.read_bytes())
        elif what == "lockdown file removed":
            (r.state.conf_dir / LOCKDOWN).unlink()
        elif what.startswith("api "):
            exchange = apis.pop(0)
            r.results[exchange.name] = r.exchange(exchange)
    for action in pending:
        r.in_loop(lambda a=action: play(r.state, a))
    count = len(split(window.expected)) - 1
    r.results[window.name] = reply + r.sessions[window.session].read(count, timeout=10)


def shutdown_group(r: Replayer) -> None:
    def heartbeat_during_teardown(event: SimEvent) -> None:
        # The capture's 20-s heartbeat (and the 60-s check_ip task) ran while sofia's
        # profiles were stopping: between the two UNPUBLISH events.
        if event.name == "UNPUBLISH" and event.get("profile_name") == "external":
            r.state.scheduler_tick(check_ip=True)

    r.state.fired_hooks.append(heartbeat_during_teardown)
    names = ["events_plain_all_shutdown", "events_json_shutdown", "events_none_shutdown"]
    for name in names:
        e = BY_NAME[name]
        r.session(e.session).send(e.request or b"")
        r.sessions[e.session].read(1)
    killer = BY_NAME["api_fsctl_shutdown"]
    r.results[killer.name] = r.exchange(killer)
    for name in names:
        e = BY_NAME[name]
        first = split(e.expected)[:1]
        r.results[name] = first + r.sessions.pop(e.session).read_until_eof()
    r.state.fired_hooks.remove(heartbeat_during_teardown)


def restart(r: Replayer) -> None:
    """FreeSWITCH came back (fact 26: rows kept). One phone's REGISTER reached sofia while
    the core was shutting down: its row has the new Call-ID, the core table the old one."""
    r.call(r.simulator.restart())
    row = r.state.find_registration("1-9780@127.0.8.14")
    assert row is not None
    row.call_id = "1-12313@127.0.8.14"


def phones_restarted(r: Replayer) -> None:
    """75 s after the restart every phone had re-registered with a new Call-ID (fact 45):
    new Call-IDs from the capture, each user's last registration last."""
    final = split(BY_NAME["final_sofia_xmlstatus_profile_internal_reg"].expected)[0].text()
    from drivers.freeswitch.parse import parse_registrations

    rows = parse_registrations(final)
    core = BY_NAME["final_show_registrations_as_json"].expected.decode()
    tokens = [t for t in core.split('"token":"')[1:]]
    order = [t.split('"', 1)[0] for t in tokens]
    rows = sorted(rows, key=lambda row: order.index(row.call_id) if row.call_id in order else -1)
    for row in rows:
        old = next(x for x in r.state.registrations.values() if x.uri == row.uri)
        r.in_loop(
            lambda row=row, old=old: r.state.register(
                user=row.user_id,
                domain=row.realm,
                uri=row.uri,
                call_id=row.call_id,
                agent=row.agent,
                expires=old.expires,
                ip=row.network_ip,
                port=row.network_port,
            )
        )


GROUPS: dict[str, Callable[[Replayer], None]] = {
    "events_plain_heartbeat": heartbeat_group,
    "events_plain_sofia_register": registration_group,
    "lapse_01_reg_offsite_before": lapse_group,
    "events_plain_all_shutdown": shutdown_group,
}
SETUP: dict[str, Callable[[Replayer], None]] = {
    "api_reloadxml_broken_file": lambda r: (r.state.conf_dir / BROKEN_FILE).write_text(BROKEN_XML),
    "api_reloadxml_fixed": lambda r: (r.state.conf_dir / BROKEN_FILE).unlink(),
    "restart_connect_banner": restart,
    "final_sofia_status": phones_restarted,
}


@pytest.fixture(scope="module")
def replayer() -> Iterator[Replayer]:
    r = Replayer()
    yield r
    r.close()


@pytest.mark.parametrize("exchange", EXCHANGES, ids=[e.name for e in EXCHANGES])
def test_replay(replayer: Replayer, exchange: Exchange) -> None:
    if exchange.name in SETUP:
        SETUP[exchange.name](replayer)
    if exchange.name in GROUPS:
        GROUPS[exchange.name](replayer)
    if exchange.name not in replayer.results:
        if exchange.name == "acl_denied_connect":  # a source address outside esl_local
            replayer.session(exchange.session, source="127.0.9.99", login=False)
        replayer.results[exchange.name] = replayer.exchange(exchange)
    compare(exchange, replayer.results[exchange.name])


def test_every_exchange_is_replayed() -> None:
    assert len(EXCHANGES) == 150
