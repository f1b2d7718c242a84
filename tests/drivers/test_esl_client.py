"""The ESL client against the captured facts and against hostile peers: framing by
Content-Length only (bodies starting with blank lines, split anywhere), events between a call
and its reply, auth refusals, a peer that never answers, garbage, and the secret never in a
log. Peers are the simulator, or a scripted TCP server replaying transcript bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from drivers.errors import DriverAuthError, DriverConnectionError, DriverTimeout
from drivers.freeswitch import wire
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES

T = FIXTURES / "freeswitch-esl" / "transcripts"
PASSWORD = "Fake-Esl-Pass-2024"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def transcript(name: str) -> bytes:
    return (T / f"{name}.txt").read_bytes()


def settings(port: int, **kw: float) -> EslSettings:
    values: dict[str, float] = {
        "connect_timeout": 2.0,
        "action_timeout": 1.0,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
        **kw,
    }
    return EslSettings("127.0.0.1", port, PASSWORD, **values)  # type: ignore[arg-type]


class Scripted:
    """A TCP peer running `handler` for each connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


async def logged_in(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The banner, then accept the auth and the event subscription."""
    writer.write(transcript("connect_banner"))
    await reader.readuntil(b"\n\n")
    writer.write(transcript("auth_ok"))
    await reader.readuntil(b"\n\n")
    writer.write(transcript("cmd_event_plain_heartbeat"))
    await writer.drain()


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(load_office(FIXTURES / "offices" / "bayside-coastal.toml"), scheduler=False)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_bodies_are_read_by_length_whatever_the_chunking(simulator: Simulator) -> None:
    simulator.faults.chunk_size = 7  # every message split in tiny pieces (fact 5)
    client = EslClient(settings(simulator.port))
    await client.connect()
    try:
        assert await client.api("show channels") == "\n0 total.\n"  # fact 2
        assert await client.api("hostname") == "vm"
        reg = await client.api("sofia status profile internal reg")
        assert reg.startswith("\nRegistrations:\n") and reg.count("Call-ID:") == 13
        pipelined = await client.api_many(["hostname", "uptime", "version short"])
        assert pipelined[0] == "vm" and pipelined[2] == "1.10.12-release\n"
    finally:
        await client.close()


async def test_events_between_a_call_and_its_reply(simulator: Simulator) -> None:
    seen: list[wire.Event] = []
    client = EslClient(settings(simulator.port), on_event=seen.append)
    await client.connect()
    try:
        simulator.state.scheduler_tick()  # a HEARTBEAT, before the next reply
        assert await client.api("hostname") == "vm"
        assert [e.name for e in seen] == ["HEARTBEAT"]
        assert client.last_heartbeat is not None
        assert client.last_heartbeat.get("Event-Info") == "System Ready"  # URL-decoded
    finally:
        await client.close()


async def test_a_wrong_password_is_an_auth_error_never_logged(simulator: Simulator) -> None:
    client = EslClient(EslSettings("127.0.0.1", simulator.port, "wrong-Pa55word"))
    with capture_logs() as logs, pytest.raises(DriverAuthError, match=r"event_socket\.conf\.xml"):
        await client.connect()
    assert "wrong-Pa55word" not in repr(logs)


async def test_the_acl_refusal_says_what_to_fix() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(transcript("acl_denied_connect"))  # fact 10: no banner at all
        await writer.drain()

    async with Scripted(refuse) as peer:
        client = EslClient(settings(peer.port))
        with pytest.raises(DriverConnectionError, match="apply-inbound-acl"):
            await client.connect()


async def test_a_peer_that_sends_no_banner_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with Scripted(silent) as peer:
        client = EslClient(settings(peer.port, connect_timeout=0.5))
        started = asyncio.get_running_loop().time()
        with pytest.raises(DriverTimeout):
            await client.connect()
        assert asyncio.get_running_loop().time() - started < 3


async def test_a_stalled_call_times_out_and_the_link_is_reopened() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await logged_in(reader, writer)
        await reader.readuntil(b"\n\n")  # an api that never gets an answer
        await asyncio.sleep(10)

    async with Scripted(stall) as peer:
        client = EslClient(settings(peer.port, action_timeout=0.3))
        await client.connect()
        try:
            with pytest.raises(DriverTimeout, match="api status"):
                await client.api("status")
            deadline = asyncio.get_running_loop().time() + 5
            while peer.connections < 2:  # a fresh connection, not a reply matched to the wrong call
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"Content-Type: api/response\nContent-Length: x\n\n", "not a number"),
        (b"Content-Type: api/response\nContent-Length: 999999999999\n\n", "limit"),
        (b"Content-Type: api/response\n" + b"X" * 70000, "header block"),
    ],
)
async def test_malformed_framing_drops_the_connection_with_a_reason(
    payload: bytes, error: str
) -> None:
    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await logged_in(reader, writer)
        await reader.readuntil(b"\n\n")
        writer.write(payload)
        await writer.drain()
        await asyncio.sleep(5)

    async with Scripted(hostile) as peer:
        client = EslClient(settings(peer.port))
        await client.connect()
        try:
            with pytest.raises(DriverConnectionError, match=error):
                await client.api("status")
        finally:
            await client.close()


async def test_bytes_that_are_not_utf8_do_not_break_anything() -> None:
    async def latin1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await logged_in(reader, writer)
        await reader.readuntil(b"\n\n")
        writer.write(b"Content-Type: api/response\nContent-Length: 4\n\n\xffvm\xfe")
        await reader.readuntil(b"\n\n")
        writer.write(transcript("api_hostname"))
        await writer.drain()
        await asyncio.sleep(5)

    async with Scripted(latin1) as peer:
        client = EslClient(settings(peer.port))
        await client.connect()
        try:
            assert "vm" in await client.api("hostname")
            assert await client.api("hostname") == "vm"
        finally:
            await client.close()


async def test_silence_longer_than_the_heartbeat_timeout_reopens_the_link() -> None:
    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await logged_in(reader, writer)
        await asyncio.sleep(10)  # connected, but not even a HEARTBEAT

    async with Scripted(quiet) as peer:
        client = EslClient(settings(peer.port, heartbeat_timeout=0.3))
        await client.connect()
        try:
            deadline = asyncio.get_running_loop().time() + 5
            while peer.connections < 2:
                assert asyncio.get_running_loop().time() < deadline, "the silent link was kept"
                await asyncio.sleep(0.05)
        finally:
            await client.close()


async def test_a_shutdown_fails_pending_calls_with_its_notice(simulator: Simulator) -> None:
    client = EslClient(settings(simulator.port, action_timeout=5.0))
    await client.connect()
    try:
        await simulator.shutdown()
        with pytest.raises(DriverConnectionError, match="The system is being shut down"):
            await client.api("status")
        assert client.shutting_down, "the SHUTDOWN event was seen"
    finally:
        await client.close()


async def test_presence_answers_only_present_or_absent(simulator: Simulator) -> None:
    client = EslClient(settings(simulator.port))
    await client.connect()
    try:
        with capture_logs() as logs:
            found = await client.presence(
                [
                    "user_data 1001@bayside.example param password",
                    "user_data 1099@bayside.example param password",
                ]
            )
        assert found == [True, False]
        assert "fake-1001-Rcpt" not in repr(logs)
    finally:
        await client.close()


async def test_a_command_is_one_line(simulator: Simulator) -> None:
    client = EslClient(settings(simulator.port))
    await client.connect()
    try:
        with pytest.raises(ValueError, match="line break"):
            await client.api("status\n\nauth x")
    finally:
        await client.close()


def test_fixture_transcripts_are_present() -> None:
    assert Path(T / "connect_banner.txt").read_bytes() == b"Content-Type: auth/request\n\n"
