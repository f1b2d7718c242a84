"""Answers parsed as they stream: whatever the TCP chunking, with an unsolicited event in the
middle of a list, the items built on arrival are those of the whole recorded answer; the
GetConfig reader gives the same sections whatever pieces it is fed (issue 19)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.asterisk import ami_stream, simulator, wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.answers import Messages
from drivers.asterisk.parse.config import (
    PJSIP_FILTER,
    PJSIP_TYPES,
    PjsipReader,
    parse_aors,
    parse_endpoints,
)
from drivers.asterisk.parse.getconfig import ConfigReader, parse_get_config
from drivers.asterisk.parse.lists import ContactList
from drivers.asterisk.parse.live import LIST_FIELDS, LiveEndpoints, parse_live_endpoints
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.sim.base import Session
from drivers.asterisk.sim.dispatch import dispatch
from drivers.asterisk.sim.office import load_office
from tests.conftest import FIXTURES, TRANSCRIPTS

assert simulator  # importing it registers the handlers `dispatch` routes to
CAPTURE2 = FIXTURES / "asterisk-ami-freepbx" / "transcripts"
RECORDED_ID = "nw-agent-0013"  # the ActionID in pjsip_show_endpoints.txt
UNSOLICITED = (
    b"Event: ContactStatus\r\nPrivilege: system,all\r\nSystemName: nw-pbx01\r\n"
    b"URI: sip:101@127.0.0.11:5060\r\nContactStatus: NonQualified\r\nAOR: 101\r\n"
    b"EndpointName: 101\r\nRoundtripUsec: 0\r\n\r\n"
)


def messages(data: bytes) -> list[wire.Message]:
    return [wire.decode(block) for block in data.split(b"\r\n\r\n") if block.strip()]


@contextlib.asynccontextmanager
async def replaying_pbx(answer: bytes, chunk: int) -> AsyncIterator[int]:
    """Answers the action after the login with `answer` (its ActionID swapped for the
    request's), an unsolicited event pushed in the middle of it, in `chunk`-byte writes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
        login_id = wire.get(login, "ActionID") or ""
        writer.write(wire.encode([("Response", "Success"), ("ActionID", login_id)]))
        request = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
        mine = answer.replace(RECORDED_ID.encode(), (wire.get(request, "ActionID") or "").encode())
        middle = mine.index(b"\r\n\r\n", len(mine) // 2) + 4  # between two events
        stream = mine[:middle] + UNSOLICITED + mine[middle:]
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(stream), chunk):
                writer.write(stream[start : start + chunk])
                await writer.drain()
            await reader.read()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1400, 1 << 20])
async def test_a_list_read_as_it_streams_is_the_recorded_list(chunk: int) -> None:
    recorded = (TRANSCRIPTS / "pjsip_show_endpoints.txt").read_bytes()
    expected = parse_live_endpoints(messages(recorded))
    assert len(expected) == 16
    seen: list[wire.Message] = []
    async with replaying_pbx(recorded, chunk) as port:
        client = AmiClient(AmiSettings("127.0.0.1", port, "agent", "x"), on_event=seen.append)
        await client.connect()
        try:
            live = LiveEndpoints()
            await client.list_action("PJSIPShowEndpoints", keep=LIST_FIELDS, each=live.add)
        finally:
            await client.close()
    assert live.result() == expected
    assert [wire.get(m, "Event") for m in seen] == ["ContactStatus"], "delivered, once"


# -- the GetConfig reader --------------------------------------------------------------------

GETCONFIGS = [
    TRANSCRIPTS / "get_config_pjsip.txt",
    TRANSCRIPTS / "get_config_pjsip_templates_include.txt",
    TRANSCRIPTS / "get_config_manager.txt",
    CAPTURE2 / "fp_get_config_pjsip.txt",
    CAPTURE2 / "fp_get_config_extensions.txt",
    CAPTURE2 / "iax2_get_config_iax.txt",
]


def pieces(text: str, cuts: list[int]) -> list[str]:
    """`text` (complete lines) cut at line boundaries, as the AMI reader hands it over."""
    ends = [m.end() for m in re.finditer("\r\n", text)]
    chosen = sorted({ends[c % len(ends)] for c in cuts} | {len(text)})
    result, start = [], 0
    for end in chosen:
        result.append(text[start:end])
        start = end
    return [p for p in result if p]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(GETCONFIGS), st.lists(st.integers(min_value=0), max_size=40))
def test_getconfig_sections_do_not_depend_on_the_pieces(path: object, cuts: list[int]) -> None:
    data = path.read_bytes()  # type: ignore[attr-defined]
    message = data.split(b"\r\n\r\n")[0] + b"\r\n"
    whole = parse_get_config(wire.decode(message[:-2]))
    reader = ConfigReader()
    for piece in pieces(message.decode(), cuts):
        reader.feed(piece)
    reader.end_message()
    assert [(s.name, s.options) for s in reader.sections] == [(s.name, s.options) for s in whole]
    assert whole, "the transcript has sections"


@pytest.mark.parametrize("office", ["northwind.toml", "northwind-freepbx.toml"])
def test_one_getconfig_reads_the_four_pjsip_types_without_auths(office: str) -> None:
    """What the inventory asks (`PJSIP_FILTER`, a regular expression as `does_category_match`
    reads one) is, in the file's order, every section the four `Filter: type=...` answers
    give (fact 20's filter works across the include files), and no auth section (their
    passwords are never sent)."""
    ctx = load_office(FIXTURES / "offices" / office).context()
    assert ctx.scratch is not None
    session = Session(username="agent", read=frozenset({"config"}), write=frozenset({"config"}))

    def names(answer_filter: str | None) -> list[tuple[str, str | None]]:
        request = [("Action", "GetConfig"), ("Filename", "pjsip.conf")]
        if answer_filter:
            request.append(("Filter", answer_filter))
        sections = parse_get_config(dispatch(ctx, session, request).messages[0])
        return [(s.name, s.get("type")) for s in sections]

    wanted = ("endpoint", "aor", "identify", "registration")
    try:
        combined = names(PJSIP_FILTER)
        assert combined == [(n, t) for n, t in names(None) if t in wanted]
        for kind in wanted:
            assert [x for x in combined if x[1] == kind] == names(f"type={kind}")
        assert {t for _, t in combined} == set(wanted), "all four kinds are in these offices"
    finally:
        shutil.rmtree(ctx.scratch)


@pytest.mark.parametrize("office", ["northwind.toml", "northwind-freepbx.toml"])
def test_the_streamed_pjsip_reader_gives_what_the_whole_answer_gives(office: str) -> None:
    """`PjsipReader` (sections turned into endpoints and AORs as they stream; the AORs one
    template writes read once for all of them) against the sections of the whole answer."""
    ctx = load_office(FIXTURES / "offices" / office).context()
    assert ctx.scratch is not None
    session = Session(username="agent", read=frozenset({"config"}), write=frozenset({"config"}))
    request = [("Action", "GetConfig"), ("Filename", "pjsip.conf"), ("Filter", PJSIP_FILTER)]
    try:
        answer = dispatch(ctx, session, request).messages[0]
    finally:
        shutil.rmtree(ctx.scratch)
    sections = parse_get_config(answer)
    of = {kind: [s for s in sections if s.get("type") == kind] for kind in PJSIP_TYPES}
    reader = PjsipReader()
    reader.feed_pairs(answer)
    reader.end_message()
    aors = reader.aors()
    assert aors == parse_aors(of["aor"])
    assert len({(a.max_contacts, a.static_contacts, a.mailboxes) for a in aors}) < len(aors)
    expected = parse_endpoints(of["endpoint"], of["identify"], of["registration"])
    assert reader.endpoints() == expected


# -- reading ahead of the parser ---------------------------------------------------------------


class FakeTransport:
    """What the protocol asks of its transport when it reads ahead: pausing and resuming."""

    def __init__(self) -> None:
        self.reading = True
        self.pauses = self.resumes = 0

    def pause_reading(self) -> None:
        self.reading, self.pauses = False, self.pauses + 1

    def resume_reading(self) -> None:
        self.reading, self.resumes = True, self.resumes + 1

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class QuietClient:
    """What a `StreamProtocol` needs of its client, for a protocol fed by hand."""

    settings = AmiSettings("pbx", 5038, "agent", "x")
    where = "pbx:5038"

    def dispatch(self, message: wire.Message) -> None:
        pass

    def too_large(self, action: str) -> str:
        return f"{action}: too large"

    def _lost(self, protocol: object) -> None:
        pass


def greeted_protocol() -> tuple[ami_stream.StreamProtocol, FakeTransport]:
    """A protocol on a transport fed by hand (`read_in`), past the AMI greeting."""
    protocol = ami_stream.StreamProtocol(QuietClient())  # type: ignore[arg-type]
    transport = FakeTransport()
    protocol.connection_made(transport)
    read_in(protocol, b"Asterisk Call Manager/11.0.0\r\n")
    return protocol, transport


def read_in(protocol: ami_stream.StreamProtocol, data: bytes) -> None:
    """`data` arriving as the transport reads it: into `get_buffer`, a buffer at a time."""
    while data:
        buffer = protocol.get_buffer(-1)
        size = min(len(buffer), len(data))
        buffer[:size] = data[:size]
        protocol.buffer_updated(size)
        data = data[size:]


def big_list(action_id: str, count: int) -> bytes:
    rows = [b"Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n" % action_id.encode()]
    rows += [
        b"Event: ContactList\r\nActionID: %s\r\nObjectName: %d\r\nUri: sip:%d@10.0.0.1\r\n"
        b"UserAgent: Yealink SIP-T54W 96.86.0.70\r\nViaAddr: 10.0.0.1\r\nViaPort: 5060\r\n"
        b"Status: Reachable\r\nRoundtripUsec: 1234\r\nPadding: %s\r\n\r\n"
        % (action_id.encode(), n, n, b"X" * 300)
        for n in range(count)
    ]
    rows.append(
        b"Event: ContactListComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n"
        % action_id.encode()
    )
    return b"".join(rows)


async def test_reading_runs_ahead_of_the_parser_up_to_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst the parser cannot keep up with is read into memory (the PBX is not held up)
    until READ_AHEAD bytes wait; then reading pauses, and resumes as the parser catches up.
    The answer is whole either way. (A bound of 6 MiB here: the same code, a smaller test.)"""
    monkeypatch.setattr(ami_stream, "READ_AHEAD", 6 * 1024 * 1024)

    protocol, transport = greeted_protocol()
    contacts = ContactList()
    future = protocol.request(
        {"Action": "PJSIPShowContacts"}, Messages(("ObjectName", "Uri"), contacts.add), 30
    )
    action_id = next(iter(protocol.pending))
    burst = big_list(action_id, 40_000)
    assert len(burst) > 2 * ami_stream.READ_AHEAD
    read_in(protocol, burst[: ami_stream.READ_AHEAD + ami_stream.READ_SIZE])
    assert not transport.reading and transport.pauses == 1, "paused at the bound"
    assert not contacts.items, "read, not parsed yet: the parser runs between reads"
    deadline = asyncio.get_running_loop().time() + 30
    while not transport.reading:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0)
    assert contacts.items, "parsed as the loop turns"
    read_in(protocol, burst[ami_stream.READ_AHEAD + ami_stream.READ_SIZE :])
    await asyncio.wait_for(future, 30)
    assert [c.aor for c in contacts.items] == [str(n) for n in range(40_000)]


async def test_what_came_before_the_pbx_closed_is_read_to_its_end() -> None:
    """A PBX that sends a long answer and closes at once: the answer read before the close
    is parsed whole (not cut short as 'connection lost')."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
        writer.write(
            wire.encode([("Response", "Success"), ("ActionID", wire.get(login, "ActionID") or "")])
        )
        request = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
        writer.write(big_list(wire.get(request, "ActionID") or "", 5_000))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient(AmiSettings("127.0.0.1", port, "agent", "x"))
    try:
        await client.connect()
        contacts = ContactList()
        await client.list_action("PJSIPShowContacts", keep=("ObjectName", "Uri"), each=contacts.add)
        assert len(contacts.items) == 5_000
    finally:
        await client.close()
        server.close()


@pytest.mark.parametrize("spelling", ["EventList", "eventlist", "EVENTLIST"])
@pytest.mark.parametrize("pieces", [1, 2])
async def test_a_list_ends_at_its_eventlist_event_however_it_is_spelled(
    spelling: str, pieces: int
) -> None:
    """Events read in runs stop short of the one with the EventList header (Asterisk reads
    header names without case): the list ends there, whole, whether that event came with the
    others or alone."""
    protocol, _ = greeted_protocol()
    contacts = ContactList()
    future = protocol.request(
        {"Action": "PJSIPShowContacts"}, Messages(("ObjectName", "Uri"), contacts.add), 30
    )
    action_id = next(iter(protocol.pending))
    burst = big_list(action_id, 3).replace(b"EventList: Complete", f"{spelling}: Complete".encode())
    cut = burst.index(b"Event: ContactListComplete") if pieces == 2 else len(burst)
    read_in(protocol, burst[:cut])
    read_in(protocol, burst[cut:])
    await asyncio.wait_for(future, 5)
    assert [c.aor for c in contacts.items] == ["0", "1", "2"]
