"""Replaying captured AMI exchanges against a simulator over TCP, with masking of values that
legitimately vary between two runs (clocks, nonces, round-trip times)."""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.asterisk import wire

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
        if entry.get("kind") == "unsolicited events":
            continue
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
