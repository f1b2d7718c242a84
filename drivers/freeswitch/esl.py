"""An asyncio client for FreeSWITCH's event socket (inbound mode), built on the captured facts.

Why not `genesis` (the maintained asyncio ESL library): judged against the transcripts it
frames messages correctly, but it has no timeout on commands or on the auth handshake (a
PBX that stops answering, or never sends its banner, hangs every caller), a byte that is not
UTF-8 or a non-numeric Content-Length kills its reader and hangs every later call, bodies are
unbounded, and it pulls 44 packages (web server, Redis, OpenTelemetry exporters) into the
agent. Replacing its framing, handshake and reader would leave nothing of it; see README.

The policy on top of the framing (`wire.Framer`): one connection, replies matched to calls
in order (FreeSWITCH answers in order, fact 6) and events dispatched on Content-Type
whenever they arrive; a timeout on every call (a call that times out drops the connection,
since the order of later replies is then unknown); no message without a Content-Length
body ever read "until a blank line" (fact 2); a supervised reconnect with exponential
back-off and jitter; a connection with no message at all for `heartbeat_timeout` seconds
is dropped (FreeSWITCH sends HEARTBEAT every 20 s to a subscriber). The password and api
bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import structlog

from drivers.errors import DriverAuthError, DriverConnectionError, DriverError, DriverTimeout
from drivers.freeswitch import wire
from drivers.freeswitch.settings import EslSettings
from drivers.link import SupervisedLink

log = structlog.get_logger(__name__)

EventCallback = Callable[[wire.Event], None]

# What the driver listens for: liveness and start time (HEARTBEAT), a clean stop (SHUTDOWN).
DEFAULT_EVENTS = ("HEARTBEAT", "SHUTDOWN")


class _Protocol(asyncio.Protocol):
    def __init__(self, client: EslClient, max_body: int) -> None:
        self.client = client
        self.framer = wire.Framer(max_body=max_body)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[None] = loop.create_future()
        self.pending: deque[asyncio.Future[wire.Message]] = deque()
        self.closed = False
        self.notice: str | None = None  # the text of a disconnect notice, if one came
        self.last_message = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for message in self.framer.feed(data):
                self.last_message = time.monotonic()
                self._handle(message)
        except wire.FramingError as exc:
            self.fail(DriverConnectionError(f"ESL at {self.client.where}: {exc}"))

    def _handle(self, message: wire.Message) -> None:
        kind = message.content_type
        if kind == wire.AUTH_REQUEST:
            if not self.banner.done():
                self.banner.set_result(None)
        elif kind in (wire.COMMAND_REPLY, wire.API_RESPONSE):
            if not self.banner.done():
                self.fail(DriverConnectionError(f"{self.client.where} sent no ESL banner"))
            elif self.pending:
                future = self.pending.popleft()
                if not future.done():
                    future.set_result(message)
            else:
                log.debug("ESL reply with no call waiting for it", content_type=kind)
        elif kind in (wire.EVENT_PLAIN, wire.EVENT_JSON):
            try:
                event = wire.decode_event(message)
            except wire.FramingError as exc:
                log.debug("ignored a malformed ESL event", error=str(exc))
                return
            self.client._event(event)
        elif kind == wire.RUDE_REJECTION:
            self.fail(
                DriverConnectionError(
                    f"FreeSWITCH at {self.client.where} refused this client's address "
                    f"({message.text().strip()[:80]}): check apply-inbound-acl in "
                    "event_socket.conf.xml"
                )
            )
        elif kind == wire.DISCONNECT_NOTICE:
            self.notice = message.text().strip()[:200]
        else:
            log.debug("ignored an ESL message", content_type=kind[:40])

    def fail(self, exc: DriverError) -> None:
        if not self.banner.done():
            self.banner.set_exception(exc)
        self._fail_pending(exc)
        if self.transport is not None:
            self.transport.close()

    def _fail_pending(self, exc: DriverError) -> None:
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = self.notice or (str(exc) if exc else "closed by the peer")
        error = DriverConnectionError(f"ESL connection to {self.client.where} lost: {reason}")
        if not self.banner.done():
            self.banner.set_exception(error)
        self._fail_pending(error)
        self.client._lost(self)

    def send(self, line: str) -> asyncio.Future[wire.Message]:
        future: asyncio.Future[wire.Message] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            future.set_exception(DriverConnectionError(f"not connected to {self.client.where}"))
            return future
        self.pending.append(future)
        self.transport.write(line.encode() + b"\n\n")
        return future


class EslClient(SupervisedLink):
    """One supervised ESL session (`SupervisedLink`: the first `connect()` raises if it fails,
    a lost connection is re-established in the background with back-off, calls made meanwhile
    fail fast). Events go to `on_event`.
    """

    label: ClassVar[str] = "ESL"
    interface: ClassVar[str] = "FreeSWITCH's event socket"

    def __init__(
        self,
        settings: EslSettings,
        *,
        on_event: EventCallback | None = None,
        events: Sequence[str] = DEFAULT_EVENTS,
        max_body: int = wire.MAX_BODY,
    ) -> None:
        super().__init__(settings)
        self.settings = settings
        self._on_event = on_event
        self._events = tuple(events)
        self._max_body = max_body
        self._protocol: _Protocol | None = None
        self.last_notice: str | None = None  # what FreeSWITCH said when it last hung up
        self.last_heartbeat: wire.Event | None = None
        self.shutting_down = False  # FreeSWITCH announced SHUTDOWN on this connection

    async def api(self, command: str, *, limit: float | None = None) -> str:
        """Run ``api COMMAND`` and return its body as text. Errors are in the body, in
        several shapes (fact 13): the parsers judge them."""
        message = await self._call(f"api {_one_line(command)}", limit)
        if message.content_type != wire.API_RESPONSE:
            # "api" with nothing FreeSWITCH knows gets a command/reply (fact 12)
            raise DriverError(f"api {command.split(' ', 1)[0]}: {message.reply_text}")
        return message.text()

    async def api_many(self, commands: Sequence[str], *, limit: float | None = None) -> list[str]:
        """Several apis written at once and answered in order (pipelining, fact 6); the
        time limit covers the whole batch."""
        protocol = self._live()
        futures = [protocol.send(f"api {_one_line(c)}") for c in commands]
        limit = limit or self.settings.action_timeout
        try:
            async with asyncio.timeout(limit):
                messages = [await f for f in futures]
        except TimeoutError as exc:
            self._drop(protocol)
            raise DriverTimeout(
                f"{len(commands)} apis: no complete answer from {self.where} within {limit:g} s"
            ) from exc
        return [m.text() for m in messages]

    async def presence(self, commands: Sequence[str]) -> list[bool]:
        """Whether each api printed anything (FreeSWITCH says ``-ERR no reply`` for nothing).

        For questions whose answer is a secret (``user_data U@D param password``): only
        present/absent leaves this method; the text is dropped here, never returned, logged
        or kept.
        """
        answers = await self.api_many(commands)
        result = [a.strip() not in ("", "-ERR no reply") for a in answers]
        answers.clear()
        return result

    async def command(self, line: str, *, limit: float | None = None) -> str:
        """A top-level command (``event``, ``filter``, ...); returns its Reply-Text."""
        message = await self._call(_one_line(line), limit)
        return message.reply_text

    # -- internals -------------------------------------------------------------------------

    def _live(self) -> _Protocol:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            reason = (
                f" (it said: {self.last_notice})"
                if self.last_notice
                else f" (last error: {self.last_error})"
                if self.last_error
                else ""
            )
            raise DriverConnectionError(f"not connected to FreeSWITCH at {self.where}{reason}")
        return protocol

    async def _call(self, line: str, limit: float | None) -> wire.Message:
        protocol = self._live()
        return await self._send(protocol, line, limit or self.settings.action_timeout)

    async def _send(self, protocol: _Protocol, line: str, limit: float) -> wire.Message:
        future = protocol.send(line)
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError as exc:
            self._drop(protocol)  # later replies could no longer be matched to their calls
            what = line.split(" ", 2)[:2] if line.startswith("api ") else line.split(" ", 1)[:1]
            raise DriverTimeout(
                f"{' '.join(what)}: no answer from {self.where} within {limit:g} s"
            ) from exc

    async def _handshake(self) -> _Protocol:
        s = self.settings
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _Protocol(self, self._max_body), s.host, s.port
        )
        self._opening = protocol
        await protocol.banner
        reply = await protocol.send(f"auth {_one_line(s.password)}")
        if reply.reply_text.strip() != "+OK accepted":
            raise DriverAuthError(
                f"FreeSWITCH at {self.where} refused the event socket password "
                f"({reply.reply_text.strip()[:60] or 'no reason'}): check event_socket.conf.xml"
            )
        if self._events:
            answer = await protocol.send(f"event plain {' '.join(self._events)}")
            if not answer.reply_text.startswith("+OK"):
                log.warning(
                    "FreeSWITCH refused the event subscription", reply=answer.reply_text[:80]
                )
        return protocol

    async def _goodbye(self, protocol: _Protocol) -> None:
        async with asyncio.timeout(1.0):
            await protocol.send("exit")

    def _opened(self) -> None:
        self.shutting_down = False
        self.last_notice = None

    def _lost(self, protocol: Any) -> None:
        if isinstance(protocol, _Protocol) and protocol is self._protocol:
            self.last_notice = protocol.notice
        super()._lost(protocol)

    def _event(self, event: wire.Event) -> None:
        name = event.name
        if name == "HEARTBEAT":
            self.last_heartbeat = event
        elif name == "SHUTDOWN":
            self.shutting_down = True
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a faulty subscriber must not break the connection
                log.exception("ESL event callback failed")

    async def _watch(self) -> None:
        """Return when the connection is lost, or silent for longer than allowed."""
        limit = self.settings.heartbeat_timeout
        while True:
            if not limit:
                await self._lost_event.wait()
                return
            protocol = self._protocol
            if protocol is None or protocol.closed:
                return
            idle = time.monotonic() - protocol.last_message
            if idle > limit:
                log.warning("FreeSWITCH sent nothing, not even a HEARTBEAT", seconds=int(idle))
                self._drop(protocol)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(limit - idle, limit) + 0.05):
                    await self._lost_event.wait()
                    return


def _one_line(text: str) -> str:
    """A command is one line: a newline inside it would start another command."""
    if "\n" in text or "\r" in text:
        raise ValueError("an ESL command cannot contain a line break")
    return text
