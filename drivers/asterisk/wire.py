"""AMI wire format: a message is a block of ``Key: Value\\r\\n`` lines ended by an empty line.

Pure functions shared by the simulator and the tests. Keys repeat (``Output``, ``Variable``)
and their order matters, so a message is a list of pairs, not a dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

EOL = b"\r\n"
END = b"\r\n\r\n"

Message = list[tuple[str, str]]


class FramingError(ValueError):
    """The byte stream cannot be split into AMI messages (e.g. an over-long message)."""


def encode(message: Iterable[tuple[str, str]]) -> bytes:
    """Serialise one message, including its terminating empty line. A pair with an empty key
    is a bare line (as `decode` reads one, e.g. GetConfig's `No categories found`)."""
    return b"".join((f"{k}: {v}" if k else v).encode() + EOL for k, v in message) + EOL


def decode(block: bytes) -> Message:
    """Parse one message block (without the terminating empty line) into ordered pairs.

    A line without ``": "`` is kept with an empty key, so nothing is lost silently; a bare
    ``\\n`` inside a value (seen at the end of some error messages) is kept in the value.
    """
    pairs: Message = []
    for raw in block.split(EOL):
        if not raw:
            continue
        line = raw.decode("utf-8", "replace")
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if sep:
            pairs.append((key, value))
        else:
            pairs.append(("", line))
    return pairs


def lines(text: str) -> list[str]:
    """The lines of `text`, complete lines each ended by CRLF, without their ends; the stray
    newline a value may end with (fact 3: ``Message: Unable to retrieve endpoint 999\\n``)
    is dropped."""
    while "\n\r\n" in text:
        text = text.replace("\n\r\n", "\r\n")
    result = text.split("\r\n")
    if result and not result[-1]:
        result.pop()
    return result


def parse_lines(text: str) -> Message:
    """One message's complete lines (`lines`) as ordered pairs, read as `decode` reads them."""
    pairs: Message = []
    for line in lines(text):
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if sep:
            pairs.append((key, value))
        elif line:
            pairs.append(("", line))
    return pairs


class AnswerReader(Protocol):
    """Reads one action's answer as it streams in (`drivers.asterisk.ami` feeds it).

    `feed` gets complete lines of the message in progress (CRLF-ended, possibly in several
    calls), `end_message` is called at its empty line and says whether the answer is complete;
    `response` is the answer's response fields (``Response``, ``Message``), for its errors.
    A reader may raise `ParseError`: the action then fails with it.
    """

    @property
    def response(self) -> Message: ...

    def feed(self, text: str) -> None: ...

    def end_message(self) -> bool: ...


def get(message: Message, key: str, default: str | None = None) -> str | None:
    """First value of `key` (case-insensitive, as Asterisk reads headers)."""
    for k, v in message:
        if k == key:  # the usual spelling: no lower-casing on the hot path
            return v
    lowered = key.lower()
    for k, v in message:
        if k.lower() == lowered:
            return v
    return default


class Fields(dict[str, str]):
    """One message's fields by name, the first value of each (`get`'s answer), for parsers
    that read several fields of many events: a name missing as written is looked up without
    case, as Asterisk reads headers; `field()` gives None for a name that is absent."""

    def field(self, key: str) -> str | None:
        value = self.get(key)
        if value is not None:
            return value
        lowered = key.lower()
        for name, found in self.items():
            if name.lower() == lowered:
                return found
        return None


class _Spelled(Fields):
    """What `pick` found, each name as it is asked for, none there in another spelling: a
    name missing is absent, so `field` is the dict's own lookup (one C call per field of
    200,000 events at 50,000 extensions, not two Python ones)."""

    field = dict.get  # type: ignore[assignment]


def fields(message: Message) -> Fields:
    return Fields(reversed(message))  # the first value of a repeated name is the one kept


def markers(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """What `pick` looks for: each name as Asterisk spells it, with its line start."""
    return tuple((name, f"\r\n{name}: ") for name in names)


def pick(text: str, wanted: tuple[tuple[str, str], ...]) -> Fields | None:
    """The `wanted` fields (`markers`) of one message (its lines, CRLF between them), found
    by their spelling: a few string searches instead of reading every line. A field that is
    absent is left out; None when one is there with another spelling (or a value ends in a
    stray newline, fact 3): read that message line by line instead."""
    text = "\r\n" + text
    if "\n\r\n" in text:
        return None
    found = _Spelled()
    lowered = None
    for name, marker in wanted:
        start = text.find(marker)
        if start < 0:
            lowered = lowered or text.lower()
            if f"\r\n{name.lower()}:" in lowered:
                return None
            continue
        start += len(marker)
        end = text.find("\r\n", start)
        found[name] = text[start:end] if end >= 0 else text[start:]
    return found


def get_all(message: Message, key: str) -> list[str]:
    """Every value of a repeated key, in order."""
    lowered = key.lower()
    return [v for k, v in message if k.lower() == lowered]


class Splitter:
    """Incremental splitter: feed arbitrary TCP chunks, get whole message blocks back.

    TCP chunking is unrelated to message boundaries (fixture fact 2), so bytes are buffered
    until ``\\r\\n\\r\\n``. `max_message` bounds the buffer against a hostile peer.
    """

    def __init__(self, max_message: int = 4 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self._scanned = 0  # bytes already searched for END: a long message is scanned once

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        while True:
            end = self._buffer.find(END, max(0, self._scanned - len(END) + 1))
            if end < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self._max:
                    self._buffer.clear()
                    self._scanned = 0
                    raise FramingError(f"AMI message longer than {self._max} bytes")
                return
            block = bytes(self._buffer[:end])
            del self._buffer[: end + len(END)]
            self._scanned = 0
            yield block

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)
