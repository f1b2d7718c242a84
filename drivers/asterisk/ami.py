"""AMI client: panoramisk's actions (request encoding, ActionIDs) over a reader of our own that
streams each answer into the parser that wants it, with the connection policy the field needs
(a timeout on every action, a safety limit on every answer, list completion on
``EventList: Complete``, a supervised reconnect with back-off).

Answers are read as they arrive: each complete line of a message goes at once to the
`wire.AnswerReader` of the action it answers (found by its ActionID), so a 100 MB GetConfig is
parsed while it streams and never held whole, and memory follows what the parsers keep, not
the size of the largest answer. Actions may be pipelined: Asterisk answers one session's
actions in order, and the reader parses one answer while the PBX works on the next.

Results of `action`/`list_action` are `wire.Message` (ordered key/value pairs), so the parsers
never see panoramisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

import structlog
from panoramisk.actions import Action as _PanoramiskAction

from drivers.asterisk import wire
from drivers.asterisk.settings import AmiSettings
from drivers.errors import (
    AnswerTooLarge,
    CommandError,
    DriverAuthError,
    DriverConnectionError,
    DriverError,
    DriverTimeout,
    PermissionDenied,
)
from drivers.link import SupervisedLink

log = structlog.get_logger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
# Lines of a message read before its ActionID says whose it is: an unsolicited event (they
# carry none, fact 5) is a few hundred bytes; a peer that sends more is not speaking AMI.
MAX_UNCLAIMED = 1024 * 1024

EventCallback = Callable[[wire.Message], None]
R = TypeVar("R", bound=wire.AnswerReader)

# Headers kept whatever a `keep` set says: the framing of responses and lists.
FRAMING = frozenset({"response", "event", "eventlist", "message", "actionid", "listitems"})
_ACTION_ID = re.compile(r"^ActionID: *([^\r\n]*)", re.MULTILINE)


class Messages:
    """The generic `wire.AnswerReader`: the answer's messages as ordered pairs. With `keep`
    (field names as Asterisk spells them; matched without case), only those fields and the
    framing are read out of each message. With `each`, every event after the response goes
    to `each` as it is read, as `wire.Fields`, instead of being kept: a parser building its
    items as the list streams in. The answer is a list when its response says
    ``EventList: start`` (or "will follow", as older Asterisks wrote), and it ends with the
    message carrying ``EventList: Complete``, whatever that event is called."""

    def __init__(
        self,
        keep: Iterable[str] | None = None,
        each: Callable[[wire.Fields], None] | None = None,
    ) -> None:
        self.messages: list[wire.Message] = []
        self._fields = None if keep is None else _fields_pattern(keep)
        self._wanted = wire.markers(("Event", *keep)) if keep is not None else None
        self._each = each
        self._text: list[str] = []  # the message in progress
        self._list = False

    @property
    def response(self) -> wire.Message:
        return self.messages[0] if self.messages else []

    @property
    def events(self) -> bool:
        """Whether `feed_events` may be used: a list in progress, its events going to `each`."""
        return self._list and self._each is not None

    def feed(self, text: str) -> None:
        self._text.append(text)

    def end_message(self) -> bool:
        text = "".join(self._text)
        self._text.clear()
        message = self._fields.findall(text) if self._fields else wire.parse_lines(text)
        if not message:
            return False
        marker = ""
        for key, value in message:
            if key == "EventList" or key.lower() == "eventlist":
                marker = value.lower()
                break
        if not self.messages:
            self.messages.append(message)
            self._list = marker == "start" or "will follow" in (
                wire.get(message, "Message") or ""
            )
            return not self._list
        if self._each is None:
            self.messages.append(message)
        else:
            self._each(wire.fields(message))
        return marker == "complete"

    def feed_events(self, texts: list[str]) -> None:
        """Whole events of the list in progress, none of them its last (the protocol cuts a
        run of them out of what arrived): each field found by its spelling."""
        each, wanted = self._each, self._wanted
        if each is None or wanted is None:
            for text in texts:
                self.feed(text + "\r\n")
                self.end_message()
            return
        for text in texts:
            found = wire.pick(text, wanted)
            if found is None:  # another spelling: read it line by line
                found = wire.fields(self._fields.findall(text) if self._fields else [])
            each(found)


@functools.lru_cache(maxsize=64)
def _pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(re.escape(name) for name in names))
    # `[^\r\n]*` also leaves out the stray newline a value may end with (fact 3)
    return re.compile(rf"^({alternatives}): ?([^\r\n]*)", re.MULTILINE | re.IGNORECASE)


def _fields_pattern(keep: Iterable[str]) -> re.Pattern[str]:
    return _pattern(frozenset(name.lower() for name in keep) | FRAMING)



class _Pending:
    """An action sent and not yet answered in full."""

    __slots__ = ("future", "key", "marker", "name", "reader", "sent", "size", "timeout")

    def __init__(
        self,
        key: str,
        name: str,
        reader: wire.AnswerReader,
        future: asyncio.Future[Any],
        timeout: float,
    ) -> None:
        self.key = key
        self.marker = f"\r\nActionID: {key}\r\n"  # as each event of its list carries it
        self.name = name
        self.reader = reader
        self.future = future
        self.sent = future.get_loop().time()
        self.timeout = timeout
        self.size = 0


_DISCARD = object()  # the message in progress answers nothing we wait for: skip it


class _Protocol(asyncio.Protocol):
    """Reads the AMI byte stream: the greeting, then messages, each line handed to the reader
    of the action it answers as soon as it is complete. Bytes are decoded only up to the last
    complete line, so a UTF-8 character split across TCP chunks is never lost (fact 2)."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.version: str | None = None
        self.banner: asyncio.Future[str] = self._loop.create_future()
        self.pending: dict[str, _Pending] = {}
        self._buffer = bytearray()  # the line in progress (bytes after the last CRLF)
        self._owner: Any = None  # the _Pending the message in progress answers, or _DISCARD
        self._listing: _Pending | None = None  # the list whose events are coming in
        self._unclaimed: list[str] = []  # the message's lines before its ActionID
        self._unclaimed_size = 0
        self._progress = self._loop.time()  # when a pending answer last moved
        self._watchdog: asyncio.TimerHandle | None = None

    # -- sending -------------------------------------------------------------------------

    def request(
        self, headers: dict[str, str], reader: wire.AnswerReader, timeout: float
    ) -> asyncio.Future[Any]:
        """Send one action; the future gets `reader` once the whole answer went through it."""
        action = _PanoramiskAction(headers)
        future: asyncio.Future[Any] = self._loop.create_future()
        if self.closed or self.transport is None:
            future.set_exception(
                DriverConnectionError(f"the AMI connection to {self._client.where} is closed")
            )
            return future
        now = self._loop.time()
        if not self.pending:
            self._progress = now
        self.pending[action.id] = _Pending(action.id, headers["Action"], reader, future, timeout)
        self.transport.write(str(action).encode())
        if self._watchdog is None or self._watchdog.when() > now + timeout:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = self._loop.call_later(timeout, self._watch)
        return future

    def forget(self, future: asyncio.Future[Any]) -> None:
        """The caller stopped waiting (cancelled): the rest of that answer is skipped."""
        for pending in list(self.pending.values()):
            if pending.future is future:
                del self.pending[pending.key]
                if self._owner is pending:
                    self._owner = _DISCARD
                if self._listing is pending:
                    self._listing = None

    # -- reading -------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        start = max(0, len(buffer) - 1)  # only the new bytes (and a CR before them) are new
        buffer += data
        if not self.banner.done():
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > 1024:
                    self._fail(DriverConnectionError("the peer sent no AMI greeting"))
                return
            line = buffer[:end].decode("utf-8", "replace")
            del buffer[: end + 2]
            if not line.startswith(BANNER_PREFIX):
                self._fail(DriverConnectionError(f"not an AMI server (greeting {line[:60]!r})"))
                return
            self.version = line[len(BANNER_PREFIX) :].strip()
            self.banner.set_result(self.version)
            start = 0
        cut = buffer.rfind(b"\r\n", start)
        if cut < 0:
            if len(buffer) > self._line_limit():
                self._fail(DriverConnectionError(self._too_long(len(buffer))))
            return
        text = buffer[: cut + 2].decode("utf-8", "replace")
        del buffer[: cut + 2]
        try:
            self._read(text)
        except DriverConnectionError as exc:
            self._fail(exc)

    def _read(self, text: str) -> None:
        """Complete lines: each message's lines to its reader; an empty line ends a message."""
        position, size = 0, len(text)
        while position < size:
            if text.startswith("\r\n", position):
                self._end_message()
                position += 2
                continue
            if self._owner is None and self._listing is not None:
                position = self._events(text, position)
                if position >= size:
                    return
            end = text.find("\r\n\r\n", position)
            if end < 0:
                self._lines(text[position:] if position else text)
                return
            self._lines(text[position : end + 2])
            self._end_message()
            position = end + 4

    def _lines(self, text: str) -> None:
        owner = self._owner
        if owner is None:  # the message's first lines: whose answer is it?
            found = _ACTION_ID.search(text)
            if found is None:
                self._unclaimed.append(text)
                self._unclaimed_size += len(text)
                if self._unclaimed_size > MAX_UNCLAIMED:
                    raise DriverConnectionError(
                        f"the AMI at {self._client.where} sent a message of more than "
                        f"{MAX_UNCLAIMED} bytes that answers no action"
                    )
                return
            owner = self.pending.get(found.group(1).strip(), _DISCARD)
            self._owner = owner
            if self._unclaimed:
                text = "".join(self._unclaimed) + text
                self._unclaimed.clear()
                self._unclaimed_size = 0
        if owner is _DISCARD:
            return
        owner.size += len(text)
        self._progress = self._loop.time()
        if owner.size > self._client.settings.max_answer_bytes:
            self._settle(owner, AnswerTooLarge(self._client.too_large(owner.name)))
            return
        try:
            owner.reader.feed(text)
        except DriverError as exc:  # a parser refusing what it reads (ParseError)
            self._settle(owner, exc)

    def _events(self, text: str, position: int) -> int:
        """A run of whole events of the list in progress, handed over in one call: those
        from `position` up to the last complete one, short of any event with an EventList
        header (the list's last: read as usual), when each of them carries the list's
        ActionID (no unsolicited event among them). Returns where reading goes on."""
        pending = self._listing
        end = text.rfind("\r\n\r\n", position)
        if pending is None or end <= position or not isinstance(pending.reader, Messages):
            return position
        reader = pending.reader
        run = text[position:end]
        last = run.lower().find("\r\neventlist:")
        if last >= 0:
            end = run.rfind("\r\n\r\n", 0, last)
            if end < 0:
                return position
            run = run[:end]
        events = run.split("\r\n\r\n")
        if (run + "\r\n").count(pending.marker) != len(events):
            return position  # something else among them: message by message
        pending.size += len(run)
        self._progress = self._loop.time()
        if pending.size > self._client.settings.max_answer_bytes:
            self._settle(pending, AnswerTooLarge(self._client.too_large(pending.name)))
            return position
        try:
            reader.feed_events(events)
        except DriverError as exc:
            self._settle(pending, exc)
        return position + len(run) + 4

    def _end_message(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            if self._unclaimed:
                text = "".join(self._unclaimed)
                self._unclaimed.clear()
                self._unclaimed_size = 0
                self._unsolicited(wire.parse_lines(text))
            return
        if owner is _DISCARD:
            return
        try:
            done = owner.reader.end_message()
        except DriverError as exc:
            self._settle(owner, exc)
            return
        if done:
            self._settle(owner, None)
        elif getattr(owner.reader, "events", False):
            self._listing = owner

    def _settle(self, pending: _Pending, error: DriverError | None) -> None:
        """The answer is complete (or failed): hand it over, skip whatever is left of it."""
        if self.pending.get(pending.key) is pending:
            del self.pending[pending.key]
        if self._owner is pending:
            self._owner = _DISCARD
        if self._listing is pending:
            self._listing = None
        self._progress = self._loop.time()
        if pending.future.done():
            return
        if error is None:
            pending.future.set_result(pending.reader)
        else:
            pending.future.set_exception(error)

    def _unsolicited(self, message: wire.Message) -> None:
        if wire.get(message, "Event") is None:
            log.debug("ignored an AMI message that answers no action", size=len(message))
            return
        self._client.dispatch(message)
        if (wire.get(message, "Event") or "").lower() == "shutdown":
            self._close()  # Asterisk is stopping: it closes the socket next

    # -- timeouts and failures -------------------------------------------------------------

    def _watch(self) -> None:
        """The oldest pending action fails once its answer has not moved for its timeout
        (a long list that keeps coming is not a stalled PBX; one that stops is)."""
        self._watchdog = None
        if not self.pending or self.closed:
            return
        head = next(iter(self.pending.values()))
        deadline = max(self._progress, head.sent) + head.timeout
        now = self._loop.time()
        if now < deadline:
            self._watchdog = self._loop.call_later(deadline - now, self._watch)
            return
        where = self._client.where
        error = DriverTimeout(
            f"{head.name}: no answer from {where} for {head.timeout:g} s (pbx.ami.action_timeout)"
        )
        for pending in list(self.pending.values()):
            if pending is head:
                self._settle(pending, error)
            else:
                self._settle(
                    pending,
                    DriverTimeout(f"{pending.name}: not answered ({head.name} timed out first)"),
                )
        self._close()  # a PBX that stops answering mid-session gets a fresh connection

    def _line_limit(self) -> int:
        return self._client.settings.max_answer_bytes

    def _too_long(self, size: int) -> str:
        owner = self._owner if isinstance(self._owner, _Pending) else None
        if owner is not None:
            return self._client.too_large(owner.name)
        return f"the AMI at {self._client.where} sent a line of more than {size} bytes"

    def _fail(self, exc: DriverError) -> None:
        if not self.banner.done():
            self.banner.set_exception(exc)
        for pending in list(self.pending.values()):
            self._settle(pending, exc)
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        error = DriverConnectionError(
            f"AMI connection lost: {exc}" if isinstance(exc, Exception) else "AMI connection lost"
        )
        for pending in list(self.pending.values()):
            self._settle(pending, error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if not self.banner.done():
            self.banner.set_exception(error)
        self.closed = True
        self._client._lost(self)


class AmiClient(SupervisedLink):
    """One supervised AMI session (`SupervisedLink`: the first `connect()` raises if it fails,
    a lost connection is re-established in the background with back-off, calls made meanwhile
    fail fast). Unsolicited events go to `on_event`.
    """

    label: ClassVar[str] = "AMI"
    interface: ClassVar[str] = "the AMI"

    def __init__(self, settings: AmiSettings, *, on_event: EventCallback | None = None) -> None:
        super().__init__(settings)
        self.settings = settings
        self._on_event = on_event
        self._protocol: _Protocol | None = None
        self.api_version: str | None = None

    async def action(
        self, name: str, *, keep: Iterable[str] | None = None, **headers: str
    ) -> wire.Message:
        """Send one action and return its response; raises on ``Response: Error``.
        `keep` names the fields wanted (lower case); the others are dropped as they arrive."""
        answer = await self.read(name, Messages(keep), **headers)
        return answer.messages[0]

    async def list_action(
        self,
        name: str,
        *,
        keep: Iterable[str] | None = None,
        each: Callable[[wire.Fields], None] | None = None,
        **headers: str,
    ) -> list[wire.Message]:
        """Send a list action; return the response followed by every event of the list (with
        `each`, only the response: each event goes to `each` as soon as it is read)."""
        return (await self.read(name, Messages(keep, each), **headers)).messages

    async def read(self, name: str, reader: R, **headers: str) -> R:
        """Send an action and stream its answer into `reader` (a parser that builds its result
        as the lines arrive); return the reader. Raises on ``Response: Error``."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise DriverConnectionError(
                f"not connected to the AMI at {self.where}"
                + (f" (last error: {self.last_error})" if self.last_error else "")
            )
        future = protocol.request(
            {"Action": name, **headers}, reader, self.settings.action_timeout
        )
        try:
            await future
        except asyncio.CancelledError:
            protocol.forget(future)
            raise
        _raise_for_error(name, reader.response)
        return reader

    async def command(self, cli: str) -> list[str]:
        """Run a CLI command; one string per output line (fact 9: one ``Output:`` per line)."""
        message = await self.action("Command", Command=cli)
        return wire.get_all(message, "Output")

    def dispatch(self, message: wire.Message) -> None:
        """Called by the protocol for every unsolicited event."""
        if self._on_event is not None:
            try:
                self._on_event(message)
            except Exception:  # a faulty subscriber must not break the connection
                log.exception("AMI event callback failed")

    def too_large(self, action: str) -> str:
        limit = self.settings.max_answer_bytes
        return (
            f"{action}: the answer from {self.where} passed the safety limit of "
            f"{limit / 1048576:g} MiB (pbx.ami.max_answer_mb): not read; raise the limit "
            "if this PBX really is that large"
        )

    # -- internals ---------------------------------------------------------------------

    async def _handshake(self) -> _Protocol:
        s = self.settings
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _Protocol(self), s.host, s.port)
        self._opening = protocol
        self.api_version = await protocol.banner
        login = {"Action": "Login", "Username": s.username, "Secret": s.secret}
        reader = await protocol.request(login, Messages(), s.connect_timeout)
        message = reader.response
        if (wire.get(message, "Response") or "").lower() != "success":
            reason = wire.get(message, "Message") or "login refused"
            raise DriverAuthError(f"AMI at {self.where} refused user {s.username!r}: {reason}")
        return protocol

    async def _goodbye(self, protocol: _Protocol) -> None:
        with contextlib.suppress(DriverError):
            await protocol.request({"Action": "Logoff"}, Messages(), 1.0)


def _raise_for_error(action: str, message: wire.Message) -> None:
    if (wire.get(message, "Response") or "").lower() != "error":
        return
    reason = (wire.get(message, "Message") or "error").strip()
    if reason.lower() == "permission denied":
        raise PermissionDenied(action, reason)
    raise CommandError(action, reason)
