"""ESL wire format, shared by the client, the simulator and the tests. Pure functions.

A message is a block of ``Name: value`` lines, each ended by ``\\n``, closed by an empty
line; a body follows only when there is a ``Content-Length`` header, and is then exactly
that many bytes with no terminator (fixture facts 1-3). Header order is not fixed and names
may repeat, so headers are ordered pairs. TCP chunking means nothing (fact 5): `Framer`
buffers bytes and hands out whole messages, bounded against a hostile peer.

Events (fact 29-32): plain events carry URL-encoded ``Name: value`` lines (names repeat,
fact 34) and may nest a second ``Content-Length`` body (BACKGROUND_JOB); json events are one
object of strings with the body under ``_body``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

Pairs = tuple[tuple[str, str], ...]

MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024 * 1024

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
EVENT_XML = "text/event-xml"


class FramingError(ValueError):
    """The byte stream is not ESL: an endless header block, a bad or huge Content-Length."""


def _get(pairs: Pairs, key: str) -> str | None:
    for k, v in pairs:
        if k == key:
            return v
    lowered = key.lower()
    for k, v in pairs:
        if k.lower() == lowered:
            return v
    return None


@dataclass(frozen=True, slots=True)
class Message:
    """One ESL message: its header lines in order, and its body (``None`` without one)."""

    headers: Pairs
    body: bytes | None = None

    def get(self, key: str) -> str | None:
        return _get(self.headers, key)

    @property
    def content_type(self) -> str:
        return self.get("Content-Type") or ""

    @property
    def reply_text(self) -> str:
        return self.get("Reply-Text") or ""

    def text(self) -> str:
        """The body as text; bytes that are not UTF-8 are replaced, never fatal."""
        return (self.body or b"").decode("utf-8", "replace")


def encode(headers: Iterable[tuple[str, str]], body: bytes | None = None) -> bytes:
    """One message on the wire; `Content-Length` is appended when there is a body."""
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    if body is None:
        return (head + "\n").encode()
    return f"{head}Content-Length: {len(body)}\n\n".encode() + body


def parse_headers(block: bytes) -> Pairs:
    """``Name: value`` lines; a line without ``": "`` is kept with an empty name."""
    pairs: list[tuple[str, str]] = []
    for raw in block.split(b"\n"):
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
        pairs.append((name, value) if sep else ("", line))
    return tuple(pairs)


class Framer:
    """Incremental: feed arbitrary TCP chunks, get whole messages back, in order."""

    def __init__(self, max_body: int = MAX_BODY, max_header: int = MAX_HEADER) -> None:
        self._buffer = bytearray()
        self._max_body = max_body
        self._max_header = max_header
        self._headers: Pairs | None = None
        self._need = 0
        self._scanned = 0

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer += data
        while True:
            if self._headers is None:
                while self._buffer[:1] == b"\n":  # stray blank lines between messages
                    del self._buffer[:1]
                end = self._buffer.find(b"\n\n", max(0, self._scanned - 1))
                if end < 0:
                    self._scanned = len(self._buffer)
                    if len(self._buffer) > self._max_header:
                        raise FramingError(f"ESL header block longer than {self._max_header} bytes")
                    return
                headers = parse_headers(bytes(self._buffer[:end]))
                del self._buffer[: end + 2]
                self._scanned = 0
                length = _get(headers, "Content-Length")
                if length is None:
                    yield Message(headers)
                    continue
                if not length.strip().isdigit():
                    raise FramingError(f"ESL Content-Length is not a number: {length[:40]!r}")
                self._need = int(length)
                if self._need > self._max_body:
                    raise FramingError(
                        f"ESL body of {self._need} bytes is over the {self._max_body}-byte limit"
                    )
                self._headers = headers
            if len(self._buffer) < self._need:
                return
            body = bytes(self._buffer[: self._need])
            del self._buffer[: self._need]
            headers, self._headers = self._headers, None
            yield Message(headers, body)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buffer)


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event: its headers in order (names may repeat), and its body if any."""

    headers: Pairs
    body: str = ""

    def get(self, key: str) -> str | None:
        return _get(self.headers, key)

    @property
    def name(self) -> str:
        """``Event-Name``, or the subclass for CUSTOM events (e.g. ``sofia::register``)."""
        name = self.get("Event-Name") or ""
        if name == "CUSTOM":
            return self.get("Event-Subclass") or name
        return name


def decode_event(message: Message) -> Event:
    """An event from its message; raises `FramingError` for a body that is not an event."""
    kind = message.content_type
    text = message.text()
    if kind == EVENT_PLAIN:
        return decode_plain(text)
    if kind == EVENT_JSON:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FramingError(f"json event is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise FramingError("json event is not an object")
        body = data.pop("_body", "")
        pairs = tuple((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items())
        return Event(pairs, body if isinstance(body, str) else "")
    raise FramingError(f"not an event: Content-Type {kind[:40]!r}")


def decode_plain(text: str) -> Event:
    """A plain event body: URL-encoded header lines, an empty line, then an optional body
    announced by a nested Content-Length (fact 32)."""
    head, _, rest = text.partition("\n\n")
    pairs = []
    for line in head.split("\n"):
        name, sep, value = line.partition(": ")
        if sep:
            pairs.append((name, unquote(value)))
    headers = tuple(pairs)
    length = _get(headers, "Content-Length")
    body = ""
    if length is not None and length.isdigit():
        body = rest.encode()[: int(length)].decode("utf-8", "replace")
    return Event(headers, body)


URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_HEX = b"0123456789ABCDEF"


def url_encode(value: str) -> str:
    """How FreeSWITCH writes a plain event value (fact 29): every byte outside printable
    ASCII and every byte of ``\\r\\n #%&+:;<=>?@[\\]^`{|}"`` becomes ``%XX``, except a ``%``
    that already starts a ``%XX`` escape."""
    data = value.encode()
    out = bytearray()
    for index, byte in enumerate(data):
        escaped = (
            byte == 0x25
            and index + 2 < len(data)
            and data[index + 1] in _HEX
            and data[index + 2] in _HEX
        )
        if not escaped and (byte < 0x20 or byte > 0x7E or byte in URL_UNSAFE):
            out += b"%" + _HEX[byte >> 4 : (byte >> 4) + 1] + _HEX[byte & 15 : (byte & 15) + 1]
        else:
            out.append(byte)
    return out.decode("ascii")
