"""The AMI client against the simulator over real TCP, with faults injected."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from drivers.asterisk import wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.sim import core_actions
from drivers.asterisk.simulator import Simulator
from drivers.errors import (
    CommandError,
    DriverAuthError,
    DriverConnectionError,
    DriverTimeout,
    PermissionDenied,
)
from tests.conftest import AGENT_SECRET, CRM_SECRET


def settings(port: int, user: str = "agent", secret: str = AGENT_SECRET) -> AmiSettings:
    return AmiSettings(
        "127.0.0.1",
        port,
        user,
        secret,
        connect_timeout=2.0,
        action_timeout=0.5,
        reconnect_initial=0.05,
        reconnect_max=0.2,
    )


@pytest.fixture
async def client(ami_simulator: Simulator) -> AsyncIterator[AmiClient]:
    c = AmiClient(settings(ami_simulator.port))
    await c.connect()
    yield c
    await c.close()


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.02)


async def works(c: AmiClient) -> bool:
    try:
        await c.action("Ping")
    except DriverConnectionError:
        return False
    return True


async def recovered(c: AmiClient, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await works(c):
        assert time.monotonic() < deadline, "the client did not reconnect in time"
        await asyncio.sleep(0.05)


async def test_login_facts_endpoints_and_command(ami_simulator: Simulator) -> None:
    driver = AsteriskDriver(settings(ami_simulator.port))
    await driver.connect()
    try:
        facts = await driver.facts()
        assert facts.version == "22.10.1" and facts.system_name == "nw-pbx01"
        endpoints = await driver.endpoints()
        assert len(endpoints) == 16
        output = await driver.ami.command("module show like res_pjsip_registrar")
        assert output[-1] == "1 modules loaded" and len(output) == 3
    finally:
        await driver.close()


async def test_bad_secret_is_an_auth_error(
    ami_simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_actions, "LOGIN_FAILURE_DELAY", 0.05)
    c = AmiClient(settings(ami_simulator.port, secret="wrong"))
    with pytest.raises(DriverAuthError, match="Authentication failed"):
        await c.connect()
    assert AGENT_SECRET not in str(c.last_error)


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DriverConnectionError, match="cannot connect"):
        await AmiClient(settings(port)).connect()


async def test_not_an_ami_server(ami_simulator: Simulator) -> None:
    server = await asyncio.start_server(
        lambda r, w: (w.write(b"SSH-2.0-OpenSSH_9.2\r\n"), None)[1], "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DriverConnectionError, match="not an AMI server"):
            await AmiClient(settings(port)).connect()
    finally:
        server.close()


async def test_stalled_pbx_times_out_then_reconnects(
    ami_simulator: Simulator, client: AmiClient
) -> None:
    ami_simulator.faults.stall = True
    started = time.monotonic()
    with pytest.raises(DriverTimeout):
        await client.action("CoreStatus")
    assert time.monotonic() - started < 2.0
    ami_simulator.faults.stall = False
    await recovered(client)


async def test_connection_dropped_mid_list(ami_simulator: Simulator, client: AmiClient) -> None:
    ami_simulator.faults.drop_mid_list = True
    with pytest.raises(DriverConnectionError):
        await client.list_action("PJSIPShowEndpoints")
    await recovered(client)
    events = await client.list_action("PJSIPShowEndpoints")
    assert wire.get(events[-1], "ListItems") == "16" and len(events) == 18


async def test_garbage_then_still_usable(ami_simulator: Simulator, client: AmiClient) -> None:
    ami_simulator.faults.garbage = b"\x00\xff\xfegarbage without framing\r\n\r\nmore junk"
    with pytest.raises(DriverConnectionError):  # the answer never comes: timeout, reconnect
        await client.action("CoreSettings")
    await recovered(client)
    assert wire.get(await client.action("CoreSettings"), "AsteriskVersion") == "22.10.1"


async def test_one_byte_chunks_and_non_ascii(ami_simulator: Simulator, client: AmiClient) -> None:
    ami_simulator.ctx.live.contacts[0].user_agent = "Zoë Phone ☎ 2.0"
    ami_simulator.faults.chunk_size = 1
    events = await client.list_action("PJSIPShowContacts")
    agents = [wire.get(e, "UserAgent") for e in events if wire.get(e, "Event") == "ContactList"]
    assert "Zoë Phone ☎ 2.0" in agents and len(agents) == 8


async def test_slow_pbx_within_the_timeout_is_fine(
    ami_simulator: Simulator, client: AmiClient
) -> None:
    ami_simulator.faults.latency = 0.2
    assert wire.get(await client.action("Ping"), "Ping") == "Pong"


async def test_errors_are_typed(ami_simulator: Simulator) -> None:
    crm = AmiClient(settings(ami_simulator.port, "crm", CRM_SECRET))
    await crm.connect()
    try:
        with pytest.raises(PermissionDenied):
            await crm.list_action("PJSIPShowEndpoints")
        with pytest.raises(CommandError, match="Invalid/unknown command"):
            await crm.action("FooBarBaz")
    finally:
        await crm.close()


async def test_shutdown_event_then_reconnect_after_restart(ami_simulator: Simulator) -> None:
    seen: list[wire.Message] = []
    c = AmiClient(settings(ami_simulator.port), on_event=seen.append)
    await c.connect()
    try:
        await ami_simulator.shutdown()
        await eventually(lambda: any(wire.get(m, "Event") == "Shutdown" for m in seen))
        await eventually(lambda: not c.connected)
        with pytest.raises(DriverConnectionError, match="not connected"):
            await c.action("Ping")
        await ami_simulator.restart()
        await recovered(c)
    finally:
        await c.close()
