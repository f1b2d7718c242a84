"""The AMI byte stream read as it arrives (`StreamProtocol`): the greeting, then each
message's lines handed at once to the reader of the action it answers (found by its
ActionID), runs of a list's events handed over together; answers bounded in size, actions
failed once their answer stands still too long, unsolicited events passed on.

Reading runs ahead of parsing (by up to `READ_AHEAD` bytes): a PBX writes its answers in
order and waits while the socket is full, so a burst it writes faster than we parse (a
filtered GetConfig comes at 60 MB/s from the simulator after a second of loading, and we parse
it at 30-50 MB/s) would hold it up, and with it every answer after. Read into memory, the
burst is parsed while the PBX goes on with the next actions (issue 19). The bound is a fixed
cost in memory, whatever the answer's size. The socket is read straight into blocks mapped of
their own (anonymous `mmap`s), unmapped once parsed but for a few kept for the next reads: held
in the heap, a 50,000-extension backlog raised the count's peak RSS from 212 to 249 MB;
unmapped, the peak stays the count's own (212 MB). Choosing the bound (the GetConfig then
asked ahead of the endpoint lists): 64 MiB measured 1.18-1.37x the floor at 50,000 extensions,
32 MiB 1.36-1.40x, 8 MiB with the GetConfig after the endpoint list 1.41-1.44x.
"""

from __future__ import annotations

import asyncio
import mmap
import re
from collections import deque
from typing import Any, Protocol

import structlog
from panoramisk.actions import Action as _PanoramiskAction

from drivers.asterisk import wire
from drivers.asterisk.answers import Messages
from drivers.asterisk.settings import AmiSettings
from drivers.errors import AnswerTooLarge, DriverConnectionError, DriverError, DriverTimeout

log = structlog.get_logger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
# Lines of a message read before its ActionID says whose it is: an unsolicited event (they
# carry none, fact 5) is a few hundred bytes; a peer that sends more is not speaking AMI.
MAX_UNCLAIMED = 1024 * 1024
_ACTION_ID = re.compile(r"^ActionID: *([^\r\n]*)", re.MULTILINE)
READ_SIZE = 1024 * 1024  # the most one read takes from the socket: the size of a block
SPARE_BLOCKS = 2  # parsed blocks kept for the next reads (their pages already mapped in)
PARSE_STEP = 256 * 1024  # parsed per turn of the event loop, so reads come in between
READ_AHEAD = 64 * 1024 * 1024  # read and not yet parsed, at most: then reading pauses


class Client(Protocol):
    """What the stream needs of the client it reads for (`AmiClient`)."""

    settings: AmiSettings

    @property
    def where(self) -> str: ...

    def dispatch(self, message: wire.Message) -> None: ...

    def too_large(self, action: str) -> str: ...

    def _lost(self, protocol: Any) -> None: ...


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


class _Held:
    """A block the socket is read into: `data[start:end]` read and not yet parsed,
    `data[end:]` free for the next reads."""

    __slots__ = ("data", "end", "start")

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.start = 0
        self.end = 0


class StreamProtocol(asyncio.BufferedProtocol):
    """Reads the AMI byte stream: the greeting, then messages, each line handed to the reader
    of the action it answers as soon as it is complete. Bytes are decoded only up to the last
    complete line, so a UTF-8 character split across TCP chunks is never lost (fact 2).

    The transport reads straight into the free end of the last block of `_unparsed` (blocks of
    `READ_SIZE`, no copy); `data_received` parses them a `PARSE_STEP` per turn of the loop, so
    when the PBX sends faster than we parse, reading keeps up with it and the backlog waits
    here. A parsed block is kept for reuse (`SPARE_BLOCKS` of them) or unmapped."""

    def __init__(self, client: Client) -> None:
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
        self._unparsed: deque[_Held] = deque()  # the last one is read into
        self._spare: list[mmap.mmap] = []
        self._lent: memoryview | None = None  # the free end of a block, lent to the transport
        self._unparsed_size = 0
        self._parsing: asyncio.Handle | None = None  # the next parse step, when one is due
        self._paused = False  # reading paused: READ_AHEAD bytes wait

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

    def get_buffer(self, sizehint: int) -> memoryview:
        self._return_lent()
        tail = self._unparsed[-1] if self._unparsed else None
        if tail is None or tail.end == READ_SIZE:
            tail = _Held(self._spare.pop() if self._spare else mmap.mmap(-1, READ_SIZE))
            self._unparsed.append(tail)
        self._lent = memoryview(tail.data)[tail.end :]
        return self._lent

    def buffer_updated(self, nbytes: int) -> None:
        self._return_lent()
        if nbytes <= 0 or not self._unparsed:  # (nothing, or read after a failure)
            return
        self._unparsed[-1].end += nbytes
        self._unparsed_size += nbytes
        if self._unparsed_size >= READ_AHEAD and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        if self._parsing is None:
            self._parsing = self._loop.call_soon(self._parse_step)

    def _return_lent(self) -> None:
        if self._lent is not None:
            self._lent.release()  # a block with a view on it could not be unmapped
            self._lent = None

    def _parse_step(self, everything: bool = False) -> None:
        """Parse what was read, a PARSE_STEP of it (all of it with `everything`)."""
        self._parsing = None
        done = 0
        while self._unparsed_size and (everything or done < PARSE_STEP):
            held = self._unparsed[0]
            stop = held.end if everything else min(held.end, held.start + PARSE_STEP - done)
            self._unparsed_size -= stop - held.start
            done += stop - held.start
            with memoryview(held.data) as whole, whole[held.start : stop] as view:
                self.data_received(view)
            held.start = stop
            if stop == READ_SIZE and self._unparsed and self._unparsed[0] is held:
                self._unparsed.popleft()  # (a failure empties it)
                self._recycle(held)
        if self._unparsed_size:
            self._parsing = self._loop.call_soon(self._parse_step)
        if self._paused and self._unparsed_size <= READ_AHEAD // 2 and self.transport is not None:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def _recycle(self, held: _Held) -> None:
        """A parsed block: kept for the next reads, or unmapped (a backlog's memory goes back
        to the system at once)."""
        if len(self._spare) < SPARE_BLOCKS:
            self._spare.append(held.data)
        else:
            held.data.close()

    def data_received(self, data: bytes | memoryview) -> None:
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
        last = run.find("\r\nEventList:")  # as Asterisk spells it; any spelling in the last
        if last < 0:  # event (the only place it can be when every event is the list's)
            tail = run.rfind("\r\n\r\n")
            tail = tail + 4 if tail >= 0 else 0
            found = run[tail:].lower().find("\r\neventlist:")
            last = tail + found if found >= 0 else -1
        if last >= 0:
            end = run.rfind("\r\n\r\n", 0, last)
            if end < 0:
                return position
            run = run[:end]
        events = run.split("\r\n\r\n")
        marker = pending.marker  # the last event's ActionID may be its last line: no CRLF
        if run.count(marker) + run.endswith(marker[:-2]) != len(events):
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
        self._return_lent()
        self._unparsed.clear()  # nothing after a failure is read
        self._unparsed_size = 0
        if not self.banner.done():
            self.banner.set_exception(exc)
        for pending in list(self.pending.values()):
            self._settle(pending, exc)
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._parsing is not None:  # what came before the end is read first
            self._parsing.cancel()
            self._parse_step(everything=True)
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
