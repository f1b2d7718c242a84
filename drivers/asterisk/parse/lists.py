"""List answers -> inventory pieces: contacts, registrations, mailboxes, queues, manager
users. Pure functions over `wire.Message` lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from drivers.asterisk import wire
from drivers.asterisk.parse.config import Section
from drivers.errors import ParseError
from drivers.models import Contact, Mailbox, Queue, Registration

T = TypeVar("T")


def events(messages: Iterable[wire.Message], name: str) -> list[wire.Message]:
    return [m for m in messages if wire.get(m, "Event") == name]


def lenient(
    items: Iterable[wire.Message], build: Callable[[wire.Message], T], warnings: list[str] | None
) -> list[T]:
    """`build` each item; with a `warnings` list, a malformed item is skipped and reported
    there instead of failing the whole answer."""
    result = []
    for item in items:
        try:
            result.append(build(item))
        except ParseError as exc:
            if warnings is None:
                raise
            warnings.append(str(exc))
    return result


def _need(message: wire.Message, key: str, what: str) -> str:
    value = wire.get(message, key)
    if value is None:
        raise ParseError(f"{what}: missing field {key!r}")
    return value


def parse_contacts(
    messages: Sequence[wire.Message], warnings: list[str] | None = None
) -> tuple[Contact, ...]:
    """Registered contacts from PJSIPShowContacts (ContactList events)."""

    def build(m: wire.Message) -> Contact:
        object_name = _need(m, "ObjectName", "ContactList")
        uri = _need(m, "Uri", f"contact {object_name}")
        if not uri.lower().startswith(("sip:", "sips:")):
            raise ParseError(f"contact {object_name[:60]}: unparseable URI {uri[:80]!r}")
        rtt = wire.get(m, "RoundtripUsec") or ""
        addr, port = wire.get(m, "ViaAddr") or "", wire.get(m, "ViaPort") or ""
        return Contact(
            aor=object_name.split(";@", 1)[0],
            uri=uri,
            user_agent=wire.get(m, "UserAgent") or "",
            source=f"{addr}:{port}" if addr else "",
            status=wire.get(m, "Status") or "",
            rtt_usec=int(rtt) if rtt.isdigit() else None,
        )

    contacts = lenient(events(messages, "ContactList"), build, warnings)
    return tuple(sorted(contacts, key=lambda c: (c.aor, c.address_key, c.uri)))


def parse_registrations(messages: Sequence[wire.Message]) -> tuple[Registration, ...]:
    """Outbound registrations; the AuthDetail events in the same list (with passwords,
    fact 10) are ignored."""
    result = []
    for m in events(messages, "OutboundRegistrationDetail"):
        result.append(
            Registration(
                name=_need(m, "ObjectName", "OutboundRegistrationDetail"),
                endpoint=wire.get(m, "Endpoint") or None,
                server_uri=wire.get(m, "ServerUri") or "",
                client_uri=wire.get(m, "ClientUri") or "",
                status=wire.get(m, "Status") or "",
            )
        )
    return tuple(sorted(result, key=lambda r: r.name))


def parse_mailboxes(messages: Sequence[wire.Message]) -> tuple[Mailbox, ...]:
    boxes = [
        Mailbox(
            context=wire.get(m, "VMContext") or "default",
            mailbox=_need(m, "VoiceMailbox", "VoicemailUserEntry"),
            name=wire.get(m, "Fullname") or "",
        )
        for m in events(messages, "VoicemailUserEntry")
    ]
    return tuple(sorted(boxes, key=lambda b: (b.context, b.mailbox)))


def parse_queues(messages: Sequence[wire.Message]) -> tuple[Queue, ...]:
    names = sorted({_need(m, "Queue", "QueueSummary") for m in events(messages, "QueueSummary")})
    return tuple(Queue(name) for name in names)


def parse_manager_users(sections: Sequence[Section]) -> tuple[str, ...]:
    """AMI account names from manager.conf (only names are kept: the file holds secrets)."""
    return tuple(sorted(s.name for s in sections if s.name != "general"))
