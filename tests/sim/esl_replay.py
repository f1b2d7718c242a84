"""Replaying captured ESL exchanges against the FreeSWITCH simulator over TCP, with masking of
values that legitimately differ between two runs: clocks, measurements, random ids.

Content-Length headers are compared after masking (a masked value changes a body's length);
the framing itself is checked on every message received (`wire.Framer` reads by it).
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.freeswitch import wire

# Values inside bodies and header values that vary from run to run, and why.
MASKED_PATTERNS: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        "<uuid>",
        "random ids: core, channel, job, conference UUIDs",
    ),
    (
        re.compile(
            r"\d+ years?, \d+ days?, \d+ hours?, \d+ minutes?, \d+ seconds?, \d+ "
            r"milliseconds?, \d+ microseconds?"
        ),
        "<uptime>",
        "time since the (simulated) start",
    ),
    (re.compile(r"\b1[0-9]{9}\b"), "<epoch>", "absolute times: expiries, next ping, task runs"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<date>", "wall-clock dates"),
    (re.compile(r"(?i)(EXPSECS\()-?\d+"), r"\1<secs>", "seconds left of a registration"),
    (re.compile(r"(Ping-Time:\t)[0-9.]+"), r"\1<rtt>", "measured OPTIONS round-trip"),
    (re.compile(r"(<ping-time>)[0-9.]+"), r"\1<rtt>", "measured OPTIONS round-trip"),
    (re.compile(r"(retry: |<retry>)(\d+s|NEVER)"), r"\1<secs>", "seconds to a gateway's retry"),
    (re.compile(r"(last 5min )\d+"), r"\1<n>", "a five-minute window of the clock"),
    (re.compile(r"(min idle cpu )[0-9.]+/[0-9.]+"), r"\1<cpu>", "measured CPU"),
    (
        re.compile(r'(run_time="|"run_time":\t|"join_time":\t|<join_time>)\d+'),
        r"\1<secs>",
        "seconds a conference has run",
    ),
]
# Event headers whose values vary, and why.
MASKED_EVENT_HEADERS = {
    "Event-Date-Local": "wall clock",
    "Event-Date-GMT": "wall clock",
    "Event-Date-Timestamp": "wall clock",
    "Event-Sequence": "counts every event FreeSWITCH fires, most of which are not modelled",
    "Core-UUID": "random per start",
    "Up-Time": "time since start",
    "Uptime-msec": "time since start",
    "Idle-CPU": "measured CPU",
    "Session-Per-Sec-FiveMin": "a five-minute window of the clock",
    "Session-Peak-FiveMin": "a five-minute window of the clock",
    "Task-Runtime": "wall clock",
    "Job-UUID": "random id",
    "Content-Length": "a nested body's length, which masking changes",
}


@dataclass(frozen=True)
class Exchange:
    name: str
    session: str
    request: bytes | None
    expected: bytes
    complete_by: str
    entry: dict[str, object]


def exchanges(fixtures: Path) -> list[Exchange]:
    result = []
    for line in (fixtures / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        request = entry.get("request_file")
        result.append(
            Exchange(
                name=entry["name"],
                session=entry["connection"]["label"],
                request=(fixtures / request).read_bytes() if request else None,
                expected=(fixtures / entry["response_file"]).read_bytes(),
                complete_by=entry["complete_by"],
                entry=entry,
            )
        )
    return result


def split(data: bytes) -> list[wire.Message]:
    return list(wire.Framer().feed(data))


def _mask_text(text: str) -> str:
    for pattern, placeholder, _ in MASKED_PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def _mask_event(message: wire.Message) -> str:
    text = message.text()
    kind = message.content_type
    if kind == wire.EVENT_JSON:
        data = json.loads(text, object_pairs_hook=list)
        pairs = [(k, "<masked>" if k in MASKED_EVENT_HEADERS else v) for k, v in data]
        return _mask_text(json.dumps(pairs))
    if kind == wire.EVENT_XML:
        for name in MASKED_EVENT_HEADERS:
            text = re.sub(rf"(<{name}>)[^<]*(</{name}>)", r"\1<masked>\2", text)
        return _mask_text(text)
    head, sep, body = text.partition("\n\n")
    lines = []
    for line in head.split("\n"):
        name, colon, _ = line.partition(": ")
        lines.append(f"{name}: <masked>" if colon and name in MASKED_EVENT_HEADERS else line)
    return _mask_text("\n".join(lines) + sep + body)


def masked(
    message: wire.Message, command: str = ""
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """A message in comparable form: its headers (Content-Length masked) and its body.
    `command` is the request it answers (``api uptime`` answers only a clock)."""
    headers = tuple(
        (k, "<len>" if k == "Content-Length" else _mask_text(v)) for k, v in message.headers
    )
    if message.body is None:
        return headers, None
    if message.content_type in (wire.EVENT_PLAIN, wire.EVENT_JSON, wire.EVENT_XML):
        return headers, _mask_event(message)
    text = message.text()
    if command.strip() == "api uptime":
        text = re.sub(r"^\d+", "<secs>", text)
    return headers, _mask_text(text)


class Session:
    """One blocking TCP connection to the simulator."""

    def __init__(self, port: int, source: str | None = None) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=(source, 0) if source else None
        )
        self.framer = wire.Framer()
        self.pending: list[wire.Message] = []
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int, timeout: float = 5.0, grace: float = 0.05) -> list[wire.Message]:
        """`count` messages before the deadline, then whatever arrives within `grace` (so a
        simulator that says too much is caught and the next exchange starts clean)."""
        deadline = time.monotonic() + timeout
        while len(self.pending) < count and not self.eof:
            if not self._recv(deadline):
                break
        end = time.monotonic() + grace
        while not self.eof and self._recv(end):
            pass
        messages, self.pending = self.pending, []
        return messages

    def read_until_eof(self, timeout: float = 20.0) -> list[wire.Message]:
        deadline = time.monotonic() + timeout
        while not self.eof and self._recv(deadline):
            pass
        messages, self.pending = self.pending, []
        return messages

    def _recv(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.pending += self.framer.feed(chunk)
        return True

    def close(self) -> None:
        self.sock.close()
