"""Replaying captured AMI exchanges against a simulator over TCP, with masking of values that
legitimately vary between two runs (clocks, nonces, round-trip times)."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator

# Header values that vary from run to run, and why.
MASKED_HEADERS = {
    "Timestamp": "Ping's wall-clock time",
    "Uptime": "seconds since the (simulated) start",
    "LastReload": "seconds since the last reload",
    "CoreStartupDate": "start date",
    "CoreStartupTime": "start time",
    "CoreReloadDate": "last reload date",
    "CoreReloadTime": "last reload time",
    "Challenge": "MD5 login nonce",
    "ExpirationTime": "absolute expiry of a registration",
    "RegExpire": "absolute expiry of a registration",
    "RoundtripUsec": "measured qualify round-trip",
    "LoginTime": "when a queue member logged in (the PBX start)",
    "StartTime": "when a call started (Cdr)",
    "AnswerTime": "when a call was answered (Cdr)",
    "EndTime": "when a call ended (Cdr)",
}
# Headers whose value holds a clock reading next to a value that must match.
_EPOCH_ID = (re.compile(r"^(.*-)?\d+\.(\d+)$"), r"\1<epoch>.\2")  # SystemName-epoch.sequence
MASKED_PARTS = {
    "Uniqueid": _EPOCH_ID,
    "Linkedid": _EPOCH_ID,
    "DestUniqueid": _EPOCH_ID,
    "DestLinkedid": _EPOCH_ID,
    "UniqueID": _EPOCH_ID,
    "Val": (re.compile(r'"expiration_time":"\d+"'), '"expiration_time":"<masked>"'),  # AstDB
}
# Patterns inside values (CLI output) that vary, and their placeholder.
MASKED_PATTERNS = [
    (re.compile(r"(System uptime|Last reload): \d+"), r"\1: <masked>"),
    (re.compile(r"on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "on <build date>"),
    (re.compile(r"login was \d+ secs ago"), "login was <masked> secs ago"),  # queue show
    (re.compile(r"(Avail|Unavail) +\d+\.\d{3}$"), r"\1 <rtt>"),  # CLI round-trip times
]


@dataclass(frozen=True)
class Exchange:
    name: str
    session: str
    request: bytes | None  # None for a greeting
    expected: bytes
    server_closes: bool


def exchanges(fixtures: Path) -> list[Exchange]:
    result = []
    for line in (fixtures / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("kind") not in (None, "banner"):
            continue  # listeners' events, events between exchanges, SIP traces
        transcripts = fixtures / "transcripts"
        request = entry.get("request_file")
        result.append(
            Exchange(
                name=entry["name"],
                session=entry["session"],
                request=(transcripts / request).read_bytes() if request else None,
                expected=(transcripts / entry["response_file"]).read_bytes(),
                server_closes=bool(entry.get("server_closed_connection")),
            )
        )
    return result


def mask(message: wire.Message) -> wire.Message:
    masked = []
    for key, value in message:
        if key in MASKED_HEADERS:
            value = "<masked>"
        if key in MASKED_PARTS:
            pattern, replacement = MASKED_PARTS[key]
            value = pattern.sub(replacement, value)
        for pattern, placeholder in MASKED_PATTERNS:
            value = pattern.sub(placeholder, value)
        masked.append((key, value))
    return masked


def split(data: bytes) -> list[bytes]:
    return [block + b"\r\n\r\n" for block in data.split(b"\r\n\r\n")[:-1]]


class Session:
    """One blocking TCP connection to the simulator."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.challenge: str | None = None

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._recv()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def read_message(self, deadline: float) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._recv()
        block, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return block + b"\r\n\r\n"

    def read_messages(self, count: int, timeout: float = 5.0, grace: float = 0.05) -> list[bytes]:
        """Up to `count` messages before the deadline, then whatever else arrives within
        `grace` (so a simulator that says too much is caught, and the next exchange starts
        clean)."""
        deadline = time.monotonic() + timeout
        messages: list[bytes] = []
        try:
            while len(messages) < count:
                messages.append(self.read_message(deadline))
            while True:
                messages.append(self.read_message(time.monotonic() + grace))
        except (TimeoutError, ConnectionError):
            pass
        return messages

    def closed_by_server(self, timeout: float = 3.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.buffer == b"" and self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"server closed the connection; unread: {self.buffer!r}")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


# -- replaying a whole capture ---------------------------------------------------------------


def in_any_order(messages: list[wire.Message]) -> list[wire.Message]:
    """The list's start and Complete messages where they are, its items sorted."""
    if len(messages) < 3:
        return messages
    return [messages[0], *sorted(messages[1:-1]), messages[-1]]


def describe_difference(expected: list[wire.Message], got: list[wire.Message]) -> str:
    if len(got) != len(expected):
        head = f"{len(expected)} messages captured, {len(got)} received"
    else:
        head = f"{len(expected)} messages"
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            diff = difflib.unified_diff(
                [f"{k}: {v}" for k, v in want],
                [f"{k}: {v}" for k, v in have],
                "captured",
                "simulator",
                lineterm="",
            )
            return f"{head}; message {index + 1} differs:\n" + "\n".join(diff)
    if len(got) > len(expected):
        extra = "\n".join(f"{k}: {v}" for k, v in got[len(expected)])
        return f"{head}; first extra message:\n{extra}"
    return head


# The FullyBooted a listener session gets after its login: captured as the first message of
# that session's events file, not with the login.
FULLY_BOOTED = mask(
    [
        ("Event", "FullyBooted"),
        ("Privilege", "system,all"),
        ("Uptime", "0"),
        ("LastReload", "0"),
        ("Status", "Fully Booted"),
    ]
)


@dataclass
class Capture:
    """How to replay one capture: its folder, the office it was captured from, and what the
    capture did outside AMI.

    Attributes:
        setup: exchange name -> what the capture changed before sending that request.
        during: exchange name -> (messages to read first, what happened next outside AMI):
            for answers that contain an event the PBX sent on its own at that moment.
        event_sessions: sessions that only listened for events.
        hash_ordered: lists Asterisk sends in its hash table's order (any order is faithful).
        normalise: per exchange name, a function applied to both message lists before they
            are compared, for orders that follow thread timing.
        secrets: AMI user -> secret, for MD5 logins.
    """

    folder: Path
    office: Path
    setup: dict[str, Callable[[Replayer], None]] = field(default_factory=dict)
    during: dict[str, tuple[int, Callable[[Replayer], None]]] = field(default_factory=dict)
    event_sessions: frozenset[str] = frozenset()
    hash_ordered: frozenset[str] = frozenset()
    normalise: dict[str, Callable[[list[wire.Message]], list[wire.Message]]] = field(
        default_factory=dict
    )
    secrets: dict[str, str] = field(default_factory=dict)

    def exchanges(self) -> list[Exchange]:
        return exchanges(self.folder)


class Replayer:
    """A simulator on its own event loop thread, and the sessions of the capture."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.simulator = Simulator(load_office(capture.office))
        asyncio.run_coroutine_threadsafe(self.simulator.start(), self.loop).result(10)
        self.sessions: dict[str, Session] = {}
        # Sessions the capture closed or replaced, with what they received and nobody read.
        self.retired: list[tuple[str, list[wire.Message]]] = []

    @property
    def etc(self) -> Path:
        """The simulator's scratch copy of the office's config folder."""
        return self.simulator.ctx.config.root

    def session(self, label: str) -> Session:
        if label not in self.sessions:
            self.sessions[label] = Session(self.simulator.port)
        return self.sessions[label]

    def retire(self, label: str) -> None:
        """Close a session (the capture opened a new one under that label, or the PBX
        restarted), keeping the events it had received for the tests to look at."""
        session = self.sessions.pop(label, None)
        if session is None:
            return
        try:
            blocks = session.read_messages(0, grace=0.2)
        except OSError:
            blocks = []
        self.retired.append((label, [wire.decode(b[:-4]) for b in blocks]))
        session.close()

    def retire_all(self) -> None:
        for label in list(self.sessions):
            self.retire(label)

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def run(self, function: Callable[[], Any]) -> Any:
        """Run `function` on the simulator's loop (the simulator is not thread-safe)."""

        async def wrapper() -> Any:
            return function()

        return self.call(wrapper())

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def replay(self, exchange: Exchange) -> None:
        """Send one captured request and compare the answer with the captured one."""
        capture = self.capture
        if exchange.name in capture.setup:
            capture.setup[exchange.name](self)
        if exchange.request is None:  # a new connection, maybe under a label used before
            self.retire(exchange.session)
        session = self.session(exchange.session)
        if exchange.request is None:  # the greeting, sent as soon as the connection opens
            assert session.read_line() == exchange.expected
            return
        session.sock.sendall(self._md5_login_for_this_run(exchange.request, session))
        expected = [mask(wire.decode(block[:-4])) for block in split(exchange.expected)]
        raw: list[wire.Message] = []
        if exchange.name in capture.during:
            first, happening = capture.during[exchange.name]
            raw += [wire.decode(b[:-4]) for b in session.read_messages(first, grace=0)]
            happening(self)
        rest = session.read_messages(len(expected) - len(raw))
        raw += [wire.decode(block[:-4]) for block in rest]
        for message in raw:
            session.challenge = wire.get(message, "Challenge") or session.challenge
        got = [mask(message) for message in raw]
        if exchange.session in capture.event_sessions and got[len(expected) :] == [FULLY_BOOTED]:
            got = got[: len(expected)]  # captured as the first event of that session's events file
        if exchange.name in capture.hash_ordered:  # Asterisk lists these in hash order
            expected, got = in_any_order(expected), in_any_order(got)
        if exchange.name in capture.normalise:
            normalise = capture.normalise[exchange.name]
            expected, got = normalise(expected), normalise(got)
        if got != expected:
            pytest.fail(describe_difference(expected, got))
        if exchange.server_closes:
            assert session.closed_by_server(), "Asterisk closes the connection here"
            del self.sessions[exchange.session]

    def _md5_login_for_this_run(self, request: bytes, session: Session) -> bytes:
        """An MD5 login's Key answers the server's nonce, which differs in every run:
        recompute it from this run's nonce, the way the captured client computed it
        (md5(nonce + secret))."""
        message = wire.decode(request[:-4])
        if (wire.get(message, "AuthType") or "").lower() != "md5" or wire.get(
            message, "Key"
        ) is None:
            return request
        secret = self.capture.secrets[wire.get(message, "Username") or ""]
        key = hashlib.md5(f"{session.challenge}{secret}".encode()).hexdigest()
        return wire.encode([(k, key if k == "Key" else v) for k, v in message])
