"""The ESL simulator: a TCP server speaking FreeSWITCH's event socket for a simulated office.

Answers are generated from the office's configuration tree and runtime state by the
handlers in `drivers.freeswitch.sim`, shaped like the transcripts captured from a real
FreeSWITCH 1.10.12 (tests/sim/test_esl_replay.py proves it). Session handling follows
mod_event_socket: the ACL check before the banner (fact 10), commands refused before auth
(fact 8), ``exit`` answered at any time (fact 11), api output written as header then body
(fact 5), events delivered whenever they fire (fact 6), every session told when the switch
shuts down (fact 38). Faults can be injected for tests; devices and gateways are played
through `state` (see `SimState.register`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from drivers.freeswitch.sim import (  # noqa: F401  (importing registers the apis)
    api_apps,
    api_calls,
    api_show,
    api_sofia,
    apis,
    lifecycle,
    tables,
)
from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim.events import SimEvent, Subscription, serialise
from drivers.freeswitch.sim.office import Office, load_office
from drivers.freeswitch.sim.state import SimState
from drivers.gc_pause import paused_gc
from drivers.sim_faults import Faults
from drivers.sim_server import SimServer, serve_until_signal

log = structlog.get_logger(__name__)

MAX_REQUEST = 64 * 1024
GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
SHUTTING_DOWN = "The system is being shut down.\n"


def reply(text: str, extra: str = "") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode()


def notice(text: str, kind: str = "text/disconnect-notice") -> bytes:
    body = text.encode()
    return f"Content-Type: {kind}\nContent-Length: {len(body)}\n\n".encode() + body


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    authed: bool = False
    events: Subscription = field(default_factory=Subscription)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closing: bool = False


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
        scheduler: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.office = office
        self.faults = faults or Faults()
        self.state = SimState(office)
        self.state.sink = self._deliver
        self.state.listening = self._listening
        self._scheduler_wanted = scheduler
        self._sessions: set[Session] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self.down = False  # shut down: connections are refused until `restart`
        # The last commands received (tests check what a client asks), the auth secret masked.
        self.received: deque[str] = deque(maxlen=100_000)

    async def start(self) -> None:
        await super().start()
        self.down = False
        if self._scheduler_wanted:
            self._scheduler = asyncio.create_task(self._tick(), name="fs-sim-scheduler")

    async def stop(self) -> None:
        await self._stop_listening()
        self.state.stop()

    async def restart(self) -> None:
        """Start again after a shutdown: same port and configuration, fresh clocks and core
        UUID; registrations kept (they live in sofia's database, fact 26)."""
        await self._stop_listening()
        self.state.boot(keep_registrations=True)
        await self.start()

    async def shutdown(self) -> None:
        """``fsctl shutdown`` (fact 38): SHUTDOWN, every module unloaded (sofia's gateways
        and profiles with them), then every session gets the notice and EOF."""
        for _ in lifecycle.shutdown(self.state):
            await asyncio.sleep(0)  # sessions receive the events as they fire
        for session in list(self._sessions):
            await self._send(session, notice(SHUTTING_DOWN))
            session.closing = True
            session.writer.close()
        await self._stop_listening()
        self.down = True

    # -- serving ---------------------------------------------------------------------------

    async def _tick(self) -> None:
        interval = self.state.heartbeat_interval()
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            ticks += 1
            if not self.down and not self.state.shutting_down:
                self.state.scheduler_tick(check_ip=ticks * interval % 60 == 0)

    def _drop_sessions(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            self._scheduler = None
        for session in list(self._sessions):
            session.writer.close()

    def _socket_acl(self) -> str | None:
        conf = self.state.configuration("event_socket.conf")
        return dict(d.pairs(conf, "settings", "param")).get("apply-inbound-acl") if conf else None

    def _password(self) -> str:
        conf = self.state.configuration("event_socket.conf")
        return (
            dict(d.pairs(conf, "settings", "param")).get("password", "ClueCon")
            if conf
            else "ClueCon"
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        try:
            if self.faults.refuse_connections or self.down:
                return
            peer = writer.get_extra_info("peername")
            acl = self._socket_acl()
            if acl and peer and not self.state.acl_allows(str(peer[0]), acl):
                writer.write(notice("Access Denied, go away.\n", "text/rude-rejection"))
                writer.write(notice(GOODBYE))
                await writer.drain()
                return
            self._sessions.add(session)
            writer.write(b"Content-Type: auth/request\n\n")
            await writer.drain()
            buffer = b""
            while not session.closing:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
                while not session.closing:
                    request, buffer = _take_request(buffer)
                    if request is None:
                        break
                    await self._answer(session, request)
                if len(buffer) > MAX_REQUEST:
                    return
        except (OSError, asyncio.CancelledError) as exc:
            log.debug("ESL simulator session ended", reason=type(exc).__name__)
        finally:
            self._sessions.discard(session)

    async def _answer(self, session: Session, request: list[str]) -> None:
        if self.faults.stall:
            return
        command = request[0].split("\r", 1)[0]
        self.received.append("auth ***" if command.lower().startswith("auth ") else command)
        headers = dict(line.split(": ", 1) for line in request[1:] if ": " in line)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if self.faults.garbage is not None:
            payload, self.faults.garbage = self.faults.garbage, None
            await self._send(session, payload)
            return
        lowered = command.lower()
        if lowered.startswith(("exit", "...")):
            await self._send(session, reply("+OK bye") + notice(GOODBYE))
            await self._close(session)
            return
        if not session.authed:
            if lowered.startswith("auth "):
                if command[5:] == self._password():
                    session.authed = True
                    await self._send(session, reply("+OK accepted"))
                else:
                    await self._send(session, reply("-ERR invalid") + notice(GOODBYE))
                    await self._close(session)
                return
            await self._send(session, reply("-ERR command not found"))
            return
        if lowered.startswith("api "):
            await self._api(session, command[4:])
        elif lowered.startswith("bgapi "):
            job = headers.get("Job-UUID") or str(uuid.uuid4())
            await self._send(session, reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n"))
            self._background(command[6:], job)
        elif lowered.startswith("event"):
            await self._send(session, reply(session.events.event(_words(command[5:]))))
        elif lowered.startswith("nixevent"):
            await self._send(session, reply(session.events.nix(_words(command[8:]))))
        elif lowered.startswith("noevents"):
            await self._send(session, reply(session.events.clear()))
        elif lowered.startswith("filter "):
            await self._send(session, reply(session.events.filter(command[7:])))
        elif lowered.startswith(("linger", "nolinger")):
            await self._send(session, reply("-ERR not controlling a session"))
        else:
            await self._send(session, reply("-ERR command not found"))

    async def _api(self, session: Session, line: str) -> None:
        name, _, arg = line.partition(" ")
        ctx = apis.ApiContext(shutdown=self._schedule_shutdown)
        with paused_gc():
            try:
                _, output = apis.execute(self.state, name, arg, ctx)
            except Exception:  # a simulator bug: say so on the wire, keep the session
                log.exception("ESL simulator api failed", api=name)
                output = "-ERR simulator internal error (see its log)\n"
        body = (output or "-ERR no reply\n").encode()
        head = f"Content-Type: api/response\nContent-Length: {len(body)}\n\n".encode()
        if self.faults.drop_mid_list and len(body) > 2:
            self.faults.drop_mid_list = False
            await self._send(session, head + body[: len(body) // 2])
            await self._close(session)
            return
        # Two writes, as mod_event_socket sends them (fact 5).
        await self._send(session, head)
        await self._send(session, body)

    def _background(self, line: str, job: str) -> None:
        name, _, arg = line.partition(" ")
        found, output = apis.execute(
            self.state, name, arg, apis.ApiContext(self._schedule_shutdown)
        )
        headers = [("Job-UUID", job), ("Job-Command", name)]
        if arg:
            headers.append(("Job-Command-Arg", arg))
        event = SimEvent(
            "BACKGROUND_JOB",
            headers,
            ("mod_event_socket.c", "api_exec", 1572),
            body=output if found else f"-ERR {name} Command not found!\n",
        )
        self.state.fire(event)

    def _schedule_shutdown(self) -> None:
        task = asyncio.get_running_loop().create_task(self.shutdown(), name="fs-sim-shutdown")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _listening(self, event: SimEvent) -> bool:
        return any(s.authed and s.events.wants(event, filtered=False) for s in self._sessions)

    def _deliver(self, event: SimEvent) -> None:
        """Queue a fired event to every session that subscribed to it."""
        for session in list(self._sessions):
            if session.authed and session.events.wants(event):
                kind, body = serialise(event, session.events.fmt)
                payload = f"Content-Length: {len(body)}\nContent-Type: {kind}\n\n".encode() + body
                task = asyncio.get_running_loop().create_task(self._send(session, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, session: Session, payload: bytes) -> None:
        async with session.lock:
            if session.writer.is_closing():
                return
            size = self.faults.chunk_size
            with contextlib.suppress(OSError):
                if not size:
                    session.writer.write(payload)
                    await session.writer.drain()
                    return
                for start in range(0, len(payload), size):
                    session.writer.write(payload[start : start + size])
                    await session.writer.drain()

    async def _close(self, session: Session) -> None:
        session.closing = True
        async with session.lock:
            session.writer.close()


def _take_request(buffer: bytes) -> tuple[list[str] | None, bytes]:
    """One request (lines up to an empty line; CRLF accepted, fact 1) and the rest."""
    found = [(at, end) for end in (b"\n\n", b"\r\n\r\n") if (at := buffer.find(end)) >= 0]
    if not found:
        return None, buffer
    at, end = min(found)
    text = buffer[:at].decode("utf-8", "replace").replace("\r\n", "\n")
    return text.split("\n"), buffer[at + len(end) :]


def _words(text: str) -> list[str]:
    return [w for w in text.strip("\r\n").split(" ") if w]


async def serve(
    office_path: Path, host: str, port: int, ready: Callable[[int], None] | None = None
) -> None:
    """Serve the office until cancelled or SIGTERM/SIGINT (`pbx-agent simulate freeswitch`)."""
    simulator = Simulator(load_office(office_path), host=host, port=port)
    gc.freeze()  # the loaded office lives as long as the process: keep it out of GC scans
    await serve_until_signal(simulator, ready)
