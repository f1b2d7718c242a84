"""Answers of any size (issue 19): read as they stream, over real TCP in small chunks, with a
safety limit that names itself; a long answer that keeps coming is not taken for a stalled
PBX, a silent one is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from drivers.asterisk import wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.parse.config import PJSIP_FILTER
from drivers.asterisk.settings import MIB, AmiSettings
from drivers.asterisk.sim.base import Session
from drivers.asterisk.sim.dispatch import dispatch
from drivers.asterisk.simulator import Simulator
from drivers.errors import AnswerTooLarge, DriverTimeout
from tests.agent.counting_office import count_now
from tests.conftest import AGENT_SECRET

BIG_EXTENSIONS = 2000
NOTES = 20  # set_var lines of ~500 characters on each endpoint: ~21 MB of GetConfig


def big_extension(number: int) -> str:
    notes = "".join(
        f"set_var = NOTE_{n}={number}-{n}-{'x' * 480}\n" for n in range(NOTES)
    )  # one value per endpoint: nothing for the reader to share
    return (
        f'[{number}](tpl-endpoint-phone)\ncallerid = "Big {number}" <{number}>\n'
        f"auth = {number}\naors = {number}\n{notes}"
        f"[{number}](tpl-auth)\nusername = {number}\npassword = pw-{number}\n"
        f"[{number}](tpl-aor-phone)\n"
    )


@pytest.fixture
async def big_office(ami_simulator: Simulator) -> AsyncIterator[Simulator]:
    """The fixture office plus 2,000 extensions whose endpoints make pjsip.conf's GetConfig
    answer more than 20 MB, loaded by res_pjsip."""
    pjsip = ami_simulator.ctx.config.root / "pjsip.conf"
    extra = "".join(big_extension(50000 + n) for n in range(BIG_EXTENSIONS))
    pjsip.write_text(pjsip.read_text() + extra)
    ami_simulator.ctx.reloaded("res_pjsip.so")
    yield ami_simulator


def answer_size(simulator: Simulator) -> int:
    """Bytes of the inventory's GetConfig answer, as the simulator writes it."""
    session = Session(username="agent", read=frozenset({"config"}), write=frozenset({"config"}))
    request = [("Action", "GetConfig"), ("Filename", "pjsip.conf"), ("Filter", PJSIP_FILTER)]
    reply = dispatch(simulator.ctx, session, request)
    return sum(len(wire.encode(m)) for m in reply.messages)


def settings(port: int, **changes: Any) -> AmiSettings:
    base: dict[str, Any] = {"connect_timeout": 5.0, "action_timeout": 30.0}
    return AmiSettings("127.0.0.1", port, "agent", AGENT_SECRET, **{**base, **changes})


async def test_a_20_mb_getconfig_in_small_chunks_is_counted(big_office: Simulator) -> None:
    assert answer_size(big_office) > 20_000_000
    big_office.faults.chunk_size = 1400  # every answer in pieces the size of a TCP segment
    driver = AsteriskDriver(settings(big_office.port))
    await driver.connect()
    try:
        inventory = await driver.inventory()
    finally:
        await driver.close()
    report = count_now(inventory)
    assert report.billable == 11 + BIG_EXTENSIONS
    big = next(e for e in inventory.endpoints if e.name == "51999")
    notes = [v for k, v in big.options if k == "set_var"]
    assert len(notes) == NOTES and notes[-1] == f"NOTE_{NOTES - 1}=51999-{NOTES - 1}-{'x' * 480}"
    assert (big.callerid_name, big.callerid_number, big.aors) == ("Big 51999", "51999", ("51999",))


async def test_an_answer_past_the_limit_names_the_limit_and_the_link_stays(
    big_office: Simulator,
) -> None:
    big_office.faults.chunk_size = 1400
    driver = AsteriskDriver(settings(big_office.port, max_answer_bytes=8 * MIB))
    await driver.connect()
    try:
        with pytest.raises(AnswerTooLarge) as failure:
            await driver.inventory()
        message = str(failure.value)
        assert "GetConfig" in message and "8 MiB" in message
        assert "pbx.ami.max_answer_mb" in message
        assert "connection lost" not in message
        # the rest of that answer was skipped, not held: the same connection answers on
        assert wire.get(await driver.ami.action("Ping"), "Ping") == "Pong"
        assert len(await driver.endpoints()) == 16 + BIG_EXTENSIONS
    finally:
        await driver.close()


# -- timeouts count silence, not length -----------------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def scripted_pbx(script: Script) -> AsyncIterator[int]:
    """An AMI peer that greets, accepts any login, then runs `script` for the next action."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
        action_id = wire.get(login, "ActionID") or ""
        writer.write(wire.encode([("Response", "Success"), ("ActionID", action_id)]))
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await script(reader, writer)
            await writer.drain()
            await reader.read()  # until the client leaves

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def trickled_list(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """PJSIPShowEndpoints whose 15 events come 0.1 s apart: 1.5 s in all."""
    request = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
    aid = wire.get(request, "ActionID") or ""
    writer.write(
        wire.encode(
            [("Response", "Success"), ("ActionID", aid), ("EventList", "start"), ("Message", "x")]
        )
    )
    for n in range(15):
        await asyncio.sleep(0.1)
        writer.write(
            wire.encode([("Event", "EndpointList"), ("ActionID", aid), ("ObjectName", str(n))])
        )
        await writer.drain()
    writer.write(
        wire.encode(
            [
                ("Event", "EndpointListComplete"),
                ("ActionID", aid),
                ("EventList", "Complete"),
                ("ListItems", "15"),
            ]
        )
    )


async def silent_after_the_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The list starts, then nothing more comes."""
    request = wire.decode((await reader.readuntil(b"\r\n\r\n"))[:-4])
    aid = wire.get(request, "ActionID") or ""
    writer.write(
        wire.encode(
            [("Response", "Success"), ("ActionID", aid), ("EventList", "start"), ("Message", "x")]
        )
    )
    await asyncio.sleep(5)


async def test_a_long_list_that_keeps_coming_outlasts_the_action_timeout() -> None:
    async with scripted_pbx(trickled_list) as port:
        client = AmiClient(settings(port, action_timeout=0.5))
        await client.connect()
        try:
            answer = await client.list_action("PJSIPShowEndpoints")
        finally:
            await client.close()
    assert [wire.get(m, "ObjectName") for m in answer[1:-1]] == [str(n) for n in range(15)]


async def test_an_answer_that_stops_coming_times_out() -> None:
    async with scripted_pbx(silent_after_the_response) as port:
        client = AmiClient(settings(port, action_timeout=0.5))
        await client.connect()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(DriverTimeout, match=r"PJSIPShowEndpoints: no answer .* 0\.5 s"):
                await client.list_action("PJSIPShowEndpoints")
            assert loop.time() - started < 3.0
        finally:
            await client.close()
