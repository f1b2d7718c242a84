"""The AMI simulator: a TCP server speaking the real AMI wire protocol for a simulated office.

Answers are generated from the office's Asterisk config files and runtime state by the
handlers in `drivers.asterisk.sim`, shaped exactly like the transcripts captured from a real
Asterisk 22 (tests/sim/test_replay.py proves it). Faults can be injected for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from drivers.asterisk import wire
from drivers.asterisk.sim import (  # noqa: F401  (importing registers the handlers)
    astdb,
    calls,
    cli_commands,
    config_actions,
    core_actions,
    dialplan_actions,
    iax,
    maintenance,
    manager_cli,
    office_actions,
    pjsip_actions,
    pjsip_detail,
    pjsip_lists,
    registrar,
)
from drivers.asterisk.sim.base import Reply, Session, SimContext, error
from drivers.asterisk.sim.cost import GetConfigCost, pieces
from drivers.asterisk.sim.dispatch import dispatch
from drivers.asterisk.sim.faults import Faults
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.office import Office, load_office
from drivers.asterisk.sim.pjsip_lists import registry_event
from drivers.gc_pause import paused_gc
from drivers.sim_server import SimServer, serve_until_signal

log = structlog.get_logger(__name__)

MAX_REQUEST = 1024 * 1024


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.session = Session(address=str(peer[0]) if peer else "", started=time.time())
        self.lock = asyncio.Lock()

    def close(self) -> None:
        self.writer.close()


class Simulator(SimServer):
    """Serves `office` on host:port (port 0 picks a free one; see `port`)."""

    max_request = MAX_REQUEST

    def __init__(
        self,
        office: Office,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(host, port)
        self.office = office
        self.faults = faults or Faults()
        self.ctx: SimContext = office.context()
        self.getconfig_cost = GetConfigCost.from_office(office)  # the PBX's own work
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        self.ctx.load_all()
        await super().start()

    async def stop(self) -> None:
        await self._stop_listening()
        if self.ctx.scratch is not None:
            shutil.rmtree(self.ctx.scratch, ignore_errors=True)

    async def restart(self, *, booting: bool = False) -> None:
        """Start again after a crash or shutdown: same port, same config files, fresh clocks.

        With `booting`, the PBX stays in its start-up phase (contacts not yet qualified,
        registrations not yet attempted) until `settle()`.
        """
        await self._stop_listening()
        self.ctx.crashed = False
        self.ctx.manager_reloads = 0
        self.ctx.restarted()
        if booting:
            self.ctx.live.boot()
        else:
            self.ctx.live.started_at = self.ctx.live.reloaded_at = time.time()
            self.ctx.live.forget_runtime()
        await self.start()

    async def settle(self) -> None:
        """End the start-up phase and broadcast what changed (PeerStatus, ContactStatus,
        Registry), as Asterisk does once its first qualifies and registrations finish."""
        conf = self.ctx.loaded("pjsip.conf")
        for name, fields in self.ctx.live.settle():
            await self.push_event(self.ctx.unsolicited(name, fields))
        for reg in conf.objects("registration"):
            status = self.ctx.live.registrations.get(reg.name, "Unregistered")
            await self.push_event(registry_event(self.ctx, reg, status))

    async def qualify(self, aor: str) -> None:
        """Asterisk qualifies the contacts of `aor` now (its timer fired): each change of
        status is broadcast (ContactStatus, and PeerStatus when it becomes reachable)."""
        conf = self.ctx.loaded("pjsip.conf")
        category = conf.find(aor, "aor")
        frequency = conf.value(category, "qualify_frequency") if category is not None else None
        for name, fields in self.ctx.live.qualify(aor, int(frequency or 0)):
            await self.push_event(self.ctx.unsolicited(name, fields))

    async def retry_registration(self, name: str) -> None:
        """Asterisk retries an outbound registration (its timer fired): `Registry` with the
        outcome the office configures."""
        conf = self.ctx.loaded("pjsip.conf")
        reg = conf.find(name, "registration")
        if reg is None:
            raise KeyError(name)
        status = self.ctx.live.attempt_registration(name)
        await self.push_event(registry_event(self.ctx, reg, status))

    def register(self, device: Contact) -> str:
        """A phone sends its first REGISTER; the SIP answer code (`registrar.decide`)."""
        return registrar.register(self.ctx, device)

    def refresh(self, aor: str) -> str:
        """The phones on `aor` refresh their registration; the SIP answer code."""
        return registrar.refresh(self.ctx, aor)

    def unregister(self, aor: str) -> str:
        """The phones on `aor` unregister (REGISTER with Expires: 0)."""
        return registrar.unregister(self.ctx, aor)

    async def shutdown(self) -> None:
        """A clean stop as Asterisk does it: `Shutdown` event to every session, then close."""
        await self.push_event(
            self.ctx.unsolicited("Shutdown", [("Shutdown", "Cleanly"), ("Restart", "False")])
        )
        await self._stop_listening()

    async def push_event(self, message: wire.Message) -> None:
        """Send an unsolicited event to every session that wants it."""
        privilege = set((wire.get(message, "Privilege") or "").split(",")) - {"all", ""}
        for conn in list(self._connections):
            s = conn.session
            if s.logged_in and s.events_on and (not privilege or privilege & s.read):
                with contextlib.suppress(OSError):
                    await self._write(conn, wire.encode(message))

    def _drop_sessions(self) -> None:
        for conn in list(self._connections):
            conn.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(reader, writer)
        self._connections.add(conn)
        self.ctx.sessions.append(conn.session)
        try:
            if self.faults.refuse_connections or self.ctx.crashed:
                return
            writer.write(f"Asterisk Call Manager/{self.ctx.ami_version}\r\n".encode())
            await writer.drain()
            splitter = wire.Splitter(MAX_REQUEST)
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for block in splitter.feed(data):
                    if not await self._answer(conn, wire.decode(block)):
                        return
        except (OSError, wire.FramingError, asyncio.CancelledError) as exc:
            log.debug("simulator session ended", reason=type(exc).__name__)
        finally:
            self._connections.discard(conn)
            self.ctx.sessions[:] = [s for s in self.ctx.sessions if s is not conn.session]

    async def _answer(self, conn: _Connection, request: wire.Message) -> bool:
        """Handle one request; False when the connection must close."""
        if self.faults.stall:
            return True
        paced = self.getconfig_cost is not None and self.faults == Faults()  # as Asterisk
        try:
            with paused_gc():  # a big answer is many small acyclic objects
                reply = dispatch(self.ctx, conn.session, request)
                payload = b"" if paced else b"".join(wire.encode(m) for m in reply.messages)
        except Exception:  # a simulator bug: say so on the wire, keep the session
            log.exception("simulator handler failed", request=request[:2])
            reply = Reply([error(request, "Simulator internal error (see its log)")])
            payload = b"".join(wire.encode(m) for m in reply.messages)
        delay = reply.delay
        if self.getconfig_cost is not None:
            delay += self.getconfig_cost.charge(self.ctx, request)
        if delay:
            await asyncio.sleep(delay)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.garbage is not None:
            payload, self.faults.garbage = self.faults.garbage, None
            await self._write(conn, payload)
            return True
        messages = reply.messages
        if self.faults.drop_mid_list and len(messages) > 2:
            self.faults.drop_mid_list = False
            await self._write(
                conn, b"".join(wire.encode(m) for m in messages[: len(messages) // 2])
            )
            return False
        if paced:
            async with conn.lock:
                for piece in pieces(reply.messages):
                    conn.writer.write(piece)
                    await conn.writer.drain()
        else:
            await self._write(conn, payload)
        for event in reply.broadcast:
            await self.push_event(event)
        if self.ctx.crashed:
            await self._crash()
            return False
        return not reply.close

    async def _write(self, conn: _Connection, payload: bytes) -> None:
        async with conn.lock:
            size = self.faults.chunk_size
            if not size:
                conn.writer.write(payload)
                await conn.writer.drain()
                return
            for start in range(0, len(payload), size):
                conn.writer.write(payload[start : start + size])
                await conn.writer.drain()

    async def _crash(self) -> None:
        log.warning("simulated Asterisk crash (manager reload with setvar, fixture fact 19)")
        self._close_server()


async def serve(
    office_path: Path, host: str, port: int, ready: Callable[[int], None] | None = None
) -> None:
    """Serve the office until cancelled or SIGTERM/SIGINT (`pbx-agent simulate asterisk`)."""
    simulator = Simulator(load_office(office_path), host=host, port=port)
    simulator.ctx.loaded("pjsip.conf")  # parse the office once, up front
    gc.freeze()  # what is loaded now lives as long as the process: keep it out of GC scans
    await serve_until_signal(simulator, ready)
