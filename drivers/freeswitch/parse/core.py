"""Core answers -> facts: ``status``, ``version``, HEARTBEAT events, api error shapes. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drivers.errors import CommandError, ParseError
from drivers.freeswitch.wire import Event

_UPTIME = re.compile(
    r"^UP (\d+) years?, (\d+) days?, (\d+) hours?, (\d+) minutes?, (\d+) seconds?, "
    r"(\d+) milliseconds?, (\d+) microseconds?$"
)
_READY = re.compile(r"^FreeSWITCH \(Version ([^)]*?)\s*\) is (.+)$")
_SESSIONS = re.compile(r"^(\d+) session\(s\) - peak (\d+)")
_MAX = re.compile(r"^(\d+) session\(s\) max$")
_VERSION = re.compile(r"^FreeSWITCH Version (\S+)")

# Shapes of an api error body (fact 13): there is no single marker.
_ERROR_PREFIXES = ("-ERR", "-USAGE")
_ERROR_BODIES = ("Invalid Profile!", "Invalid Gateway!")


@dataclass(frozen=True, slots=True)
class Status:
    """What ``api status`` says."""

    uptime: timedelta
    version: str
    state: str  # "ready", or what FreeSWITCH says instead
    sessions: int
    peak: int
    max_sessions: int

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def api_error(command: str, text: str) -> CommandError | None:
    """The error an api body reports, or None. `-ERR no reply` means "no output" (fact 13):
    callers that expect possibly empty output check for it before calling this."""
    stripped = text.strip()
    if stripped.startswith(_ERROR_PREFIXES) or stripped in _ERROR_BODIES:
        return CommandError(command, stripped.splitlines()[0][:200] if stripped else "error")
    return None


def checked(command: str, text: str) -> str:
    """`text` unless it is an api error, which is raised."""
    error = api_error(command, text)
    if error is not None:
        raise error
    return text


def no_output(text: str) -> bool:
    """An api that printed nothing: FreeSWITCH replaces empty output by ``-ERR no reply``."""
    return text.strip() in ("", "-ERR no reply")


def parse_status(text: str) -> Status:
    lines = checked("status", text).splitlines()
    if not lines:
        raise ParseError("status: empty answer")
    found = _UPTIME.match(lines[0].strip())
    if found is None:
        raise ParseError(f"status: no uptime line: {lines[0][:80]!r}")
    years, days, hours, minutes, seconds, ms, us = (int(g) for g in found.groups())
    uptime = timedelta(
        days=years * 365 + days,
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        milliseconds=ms,
        microseconds=us,
    )
    version, state, sessions, peak, max_sessions = "", "unknown", 0, 0, 0
    for line in lines[1:]:
        line = line.strip()
        if m := _READY.match(line):
            version, state = m.group(1).split()[0], m.group(2).strip()
        elif m := _SESSIONS.match(line):
            sessions, peak = int(m.group(1)), int(m.group(2))
        elif m := _MAX.match(line):
            max_sessions = int(m.group(1))
    return Status(uptime, version, state, sessions, peak, max_sessions)


def parse_version(text: str) -> str:
    """``FreeSWITCH Version 1.10.12-release~64bit ( 64bit)`` -> ``1.10.12-release``."""
    found = _VERSION.match(checked("version", text).strip())
    if found is None:
        raise ParseError(f"version: unexpected answer {text.strip()[:80]!r}")
    return found.group(1).split("~")[0]


def startup_from_status(status: Status, received_at: datetime) -> datetime:
    return received_at - status.uptime


def startup_from_heartbeat(event: Event) -> datetime | None:
    """The start time a HEARTBEAT implies, measured on the PBX's own clock: its timestamp
    (microseconds since the epoch) minus its uptime (fact 35)."""
    stamp, uptime = event.get("Event-Date-Timestamp"), event.get("Uptime-msec")
    if not stamp or not uptime or not stamp.isdigit() or not uptime.isdigit():
        return None
    micros = int(stamp) - int(uptime) * 1000
    return datetime.fromtimestamp(micros / 1e6, UTC)
