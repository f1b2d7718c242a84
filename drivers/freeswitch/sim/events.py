"""Events as FreeSWITCH fires and serialises them, and who receives them.

Every event starts with the same core headers (its name, Core-UUID, host, date three ways,
where it was fired from, a sequence number); the serialisations are plain (URL-encoded
``Name: value`` lines, a nested Content-Length for a body, facts 29 and 32), json (one object
of strings, the body under ``_body``, fact 30) and xml (fact 31). A session receives an event
when it subscribed to ALL or to the event's type (for CUSTOM events, to its subclass), and
its filters let it through (mod_event_socket's event_handler).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.freeswitch.wire import url_encode

# switch_event.c EVENT_NAMES: what `event` and `nixevent` accept (ALL is last).
EVENT_NAMES = (  # noqa: SIM905 - a list of names, kept readable as text
    "CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE "
    "CHANNEL_ANSWER CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE "
    "CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK "
    "CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID API LOG INBOUND_CHAN OUTBOUND_CHAN "
    "STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD "
    "DTMF MESSAGE PRESENCE_IN NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING "
    "MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE PRIVATE_COMMAND "
    "HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY "
    "PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS "
    "CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED SERVER_DISCONNECTED "
    "SEND_INFO RECV_INFO RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START "
    "RECORD_STOP PLAYBACK_START PLAYBACK_STOP CALL_UPDATE FAILURE SOCKET_DATA "
    "MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ "
    "CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT SHUTDOWN_REQUESTED CERT_RELOAD ALL"
).split()
_BY_NAME = {n.upper(): n for n in EVENT_NAMES}


def event_type(word: str) -> str | None:
    """The event type a word names (switch_name_event: also ``SWITCH_EVENT_``-prefixed)."""
    key = word.upper()
    if len(key) > 13 and key[13:] in _BY_NAME:
        return _BY_NAME[key[13:]]
    return _BY_NAME.get(key)


@dataclass
class SimEvent:
    """An event before it is fired: the core headers are added at firing time."""

    name: str
    headers: list[tuple[str, str]]
    calling: tuple[str, str, int]  # file, function, line
    subclass: str | None = None
    body: str | None = None
    when: float | None = None  # epoch seconds; None: when fired
    # Filled when fired:
    fired: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        lowered = key.lower()
        for k, v in self.fired or self.headers:
            if k.lower() == lowered:
                return v
        return None


@dataclass(frozen=True)
class Identity:
    """What every event says about the switch that fired it."""

    core_uuid: str
    hostname: str
    ipv4: str
    ipv6: str


def stamp(event: SimEvent, identity: Identity, sequence: int, now: float) -> None:
    """Give the event its core headers, in FreeSWITCH's order."""
    moment = event.when if event.when is not None else now
    local = datetime.fromtimestamp(moment, UTC)
    head: list[tuple[str, str]] = []
    if event.subclass is not None:
        head.append(("Event-Subclass", event.subclass))
    file, function, line = event.calling
    head += [
        ("Event-Name", event.name),
        ("Core-UUID", identity.core_uuid),
        ("FreeSWITCH-Hostname", identity.hostname),
        ("FreeSWITCH-Switchname", identity.hostname),
        ("FreeSWITCH-IPv4", identity.ipv4),
        ("FreeSWITCH-IPv6", identity.ipv6),
        ("Event-Date-Local", local.strftime("%Y-%m-%d %H:%M:%S")),
        ("Event-Date-GMT", local.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        ("Event-Date-Timestamp", str(int(moment * 1_000_000))),
        ("Event-Calling-File", file),
        ("Event-Calling-Function", function),
        ("Event-Calling-Line-Number", str(line)),
        ("Event-Sequence", str(sequence)),
    ]
    event.fired = head + event.headers


def serialise(event: SimEvent, fmt: str) -> tuple[str, bytes]:
    """(Content-Type, body) of the event in `fmt` (plain, json or xml)."""
    headers = event.fired
    if fmt == "json":
        parts = [f"{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}" for k, v in headers]
        if event.body is not None:
            size = len(event.body.encode())
            parts.append(f'"Content-Length":"{size}"')
            parts.append(f'"_body":{json.dumps(event.body, ensure_ascii=False)}')
        return "text/event-json", ("{" + ",".join(parts) + "}").encode()
    if fmt == "xml":
        lines = ["<event>", "  <headers>"]
        lines += [f"    <{k}>{url_encode(v)}</{k}>" for k, v in headers]
        lines.append("  </headers>")
        if event.body is not None:
            escaped = event.body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            lines.append(f"  <body>{escaped}</body>")
        lines.append("</event>")
        return "text/event-xml", ("\n".join(lines) + "\n").encode()
    text = "".join(f"{k}: {url_encode(v)}\n" for k, v in headers)
    if event.body is not None:
        body = event.body.encode()
        return (
            "text/event-plain",
            text.encode() + f"Content-Length: {len(body)}\n\n".encode() + body,
        )
    return "text/event-plain", (text + "\n").encode()


@dataclass
class Subscription:
    """One session's event listener: format, types, CUSTOM subclasses, filters."""

    fmt: str = "plain"
    types: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)
    filters: list[tuple[str, str]] = field(default_factory=list)
    enabled: bool = False

    def event(self, words: list[str]) -> str:
        """The ``event`` command: format first (optional), then names; after CUSTOM, the
        words are subclasses."""
        keys, custom = 0, False
        for index, word in enumerate(words):
            if index == 0 and word.lower() in ("plain", "json", "xml"):
                self.fmt = word.lower()
                continue
            if custom:
                self.subclasses.add(word)
                continue
            kind = event_type(word)
            if kind is None:
                continue
            keys += 1
            self.types.add(kind)
            if kind == "CUSTOM":
                custom = True
        if not keys:
            return "-ERR no keywords supplied"
        self.enabled = True
        return f"+OK event listener enabled {self.fmt}"

    def nix(self, words: list[str]) -> str:
        keys, custom = 0, False
        for word in words:
            if custom:
                self.subclasses.discard(word)
                continue
            kind = event_type(word)
            if kind is None:
                continue
            keys += 1
            if kind == "CUSTOM":
                custom = True
            elif kind == "ALL":
                self.types.clear()
            else:
                if "ALL" in self.types:
                    self.types = set(EVENT_NAMES[:-1])
                self.types.discard(kind)
        if not keys:
            return "-ERR no keywords supplied"
        self.enabled = True
        return "+OK events nixed"

    def clear(self) -> str:
        if not self.enabled:
            return "-ERR not listening for events"
        self.types.clear()
        self.subclasses.clear()
        self.enabled = False
        return "+OK no longer listening for events"

    def filter(self, text: str) -> str:
        name, _, value = text.lstrip(" ").partition(" ")
        if name.lower() == "delete" and value:
            name, _, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [
                    (k, v)
                    for k, v in self.filters
                    if not (k.lower() == name.lower() and (not value or v == value))
                ]
            return f"+OK filter deleted. [{name}][{value}]"
        if not value:
            return "-ERR invalid syntax"
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"

    def wants(self, event: SimEvent, *, filtered: bool = True) -> bool:
        """Whether this session receives `event`; `filtered=False` skips the filters (which
        need the event's core headers, given only when it is fired to someone)."""
        if not self.enabled:
            return False
        if "ALL" in self.types:
            send = True
        elif event.name in self.types:
            send = event.name != "CUSTOM" or event.subclass in self.subclasses
        else:
            send = False
        if send and filtered and self.filters:
            send = self._filtered(event)
        return send

    def _filtered(self, event: SimEvent) -> bool:
        send = False
        for name, value in self.filters:
            have = event.get(name)
            if have is None:
                continue
            positive, rest = True, value
            while rest and rest[0] in "+- ":
                if rest[0] != " ":
                    positive = rest[0] == "+"
                rest = rest[1:]
            if send and positive:
                continue
            match = (
                re.search(rest[1:], have) is not None
                if value.startswith("/")
                else have.lower() == rest.lower()
            )
            if match:
                if not positive:
                    return False
                send = True
        return send
