"""The simulator as a server: sessions, permissions, events, faults and hostile input."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim import core_actions
from drivers.asterisk.sim.office import OfficeError, load_office
from drivers.asterisk.simulator import Simulator
from tests.conftest import AGENT_SECRET, CRM_SECRET


class Client:
    """A raw AMI connection for tests: send pairs, read whole messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = wire.Splitter()
        self.pending: list[wire.Message] = []

    @classmethod
    async def open(cls, sim: Simulator) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        client = cls(reader, writer)
        assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        return client

    async def send(self, *pairs: tuple[str, str]) -> None:
        self.writer.write(wire.encode(pairs))
        await self.writer.drain()

    async def read(self, within: float = 3.0) -> wire.Message:
        async with asyncio.timeout(within):
            while not self.pending:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                self.pending += [wire.decode(b) for b in self.splitter.feed(data)]
        return self.pending.pop(0)

    async def closed(self) -> bool:
        try:
            async with asyncio.timeout(3):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True

    async def login(self, user: str = "agent", secret: str = AGENT_SECRET, **extra: str) -> None:
        await self.send(("Action", "Login"), ("Username", user), ("Secret", secret), *extra.items())
        assert wire.get(await self.read(), "Message") == "Authentication accepted"


async def test_failed_login_is_answered_then_the_connection_closes(
    ami_simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_actions, "LOGIN_FAILURE_DELAY", 0.05)
    client = await Client.open(ami_simulator)
    await client.send(("Action", "Login"), ("Username", "agent"), ("Secret", "nope"))
    assert wire.get(await client.read(), "Message") == "Authentication failed"
    assert await client.closed()


async def test_unsolicited_events_follow_read_classes_and_event_flag(
    ami_simulator: Simulator,
) -> None:
    agent, crm, quiet = [await Client.open(ami_simulator) for _ in range(3)]
    await agent.login()
    assert wire.get(await agent.read(), "Event") == "FullyBooted"
    await crm.login("crm", CRM_SECRET)
    await quiet.login(Events="off")
    await ami_simulator.push_event(
        ami_simulator.ctx.unsolicited("Reload", [("Module", "All"), ("Status", "0")])
    )
    assert wire.get(await agent.read(), "Event") == "Reload"
    for other in (crm, quiet):
        with pytest.raises(TimeoutError):
            await other.read(within=0.3)


async def test_hostile_input_never_crashes_the_server(ami_simulator: Simulator) -> None:
    client = await Client.open(ami_simulator)
    await client.login()
    await client.read()  # FullyBooted
    client.writer.write(b"\x00\xff not a header at all\r\n\r\n")
    await client.writer.drain()
    assert wire.get(await client.read(), "Message") == "Missing action in request"
    flood = await Client.open(ami_simulator)
    with contextlib.suppress(ConnectionError):  # the server may close while we still write
        flood.writer.write(b"A" * (2 * 1024 * 1024))  # never terminated
        await flood.writer.drain()
    assert await flood.closed()
    await client.send(("Action", "Ping"))
    assert wire.get(await client.read(), "Ping") == "Pong", "other sessions are unaffected"


async def test_refused_connections(ami_simulator: Simulator) -> None:
    ami_simulator.faults.refuse_connections = True
    reader, _ = await asyncio.open_connection("127.0.0.1", ami_simulator.port)
    async with asyncio.timeout(3):
        assert await reader.read(100) == b""


async def test_manager_reload_with_setvar_takes_the_pbx_down_until_restart(
    ami_simulator: Simulator,
) -> None:
    manager = ami_simulator.ctx.config.root / "manager.conf"
    manager.write_text(manager.read_text().replace("writetimeout = 5000", "setvar = A=1"))
    client = await Client.open(ami_simulator)
    await client.login()
    await client.read()  # FullyBooted
    for read_classes in ("call,cdr", "call,cdr,agent"):
        await client.send(
            ("Action", "UpdateConfig"),
            ("SrcFilename", "manager.conf"),
            ("DstFilename", "manager.conf"),
            ("Action-000000", "Update"),
            ("Cat-000000", "crm"),
            ("Var-000000", "read"),
            ("Value-000000", read_classes),
            ("Reload", "manager"),
        )
        assert wire.get(await client.read(), "Response") == "Success"
        if not ami_simulator.ctx.crashed:
            assert wire.get(await client.read(), "Event") == "Reload"
    assert ami_simulator.ctx.crashed
    with pytest.raises(ConnectionError):
        while True:
            await client.read()
    with pytest.raises(OSError):
        await Client.open(ami_simulator)
    await ami_simulator.restart()
    again = await Client.open(ami_simulator)
    await again.login()


def test_bad_office_files_are_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(OfficeError, match="not found"):
        load_office(tmp_path / "missing.toml")
    bad = tmp_path / "office.toml"
    bad.write_text("name = [")
    with pytest.raises(OfficeError, match="not valid TOML"):
        load_office(bad)
    bad.write_text('name = "x"\nconfig_dir = "nowhere"\n[pbx]\nversion = "22"\n')
    with pytest.raises(OfficeError, match="config_dir"):
        load_office(bad)
    bad.write_text('name = "x"\nconfig_dir = "."\n')
    with pytest.raises(OfficeError, match=r"pbx\.version"):
        load_office(bad)
