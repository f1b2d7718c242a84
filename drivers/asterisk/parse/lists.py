"""List answers -> inventory pieces: contacts, registrations, mailboxes, queues, manager
users. Pure functions over `wire.Message` lists."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import ClassVar, Generic, Self, TypeVar

from drivers.asterisk import wire
from drivers.asterisk.parse.getconfig import Section
from drivers.errors import ParseError
from drivers.models import Contact, Mailbox, Queue, Registration

T = TypeVar("T")


def events(messages: Iterable[wire.Message], name: str) -> list[wire.Message]:
    return [m for m in messages if wire.get(m, "Event") == name]


class EventItems(Generic[T]):
    """A list answer's items, one per event named `event`, built as the list streams in:
    `add` takes each message as it is read (`AmiClient.list_action(each=...)`), so only the
    items are kept, never the events. With a `warnings` list, a malformed item is skipped and
    reported there; without, it raises `ParseError`."""

    event: ClassVar[str]

    def __init__(self, warnings: list[str] | None = None) -> None:
        self.items: list[T] = []
        self._warnings = warnings

    def build(self, event: wire.Fields) -> T:
        raise NotImplementedError

    def add(self, event: wire.Fields) -> None:
        """One event's fields (`wire.fields`)."""
        if event.field("Event") != self.event:
            return
        try:
            self.items.append(self.build(event))
        except ParseError as exc:
            if self._warnings is None:
                raise
            self._warnings.append(str(exc))

    def read(self, messages: Iterable[wire.Message]) -> Self:
        """A whole recorded answer (tests, transcripts)."""
        for message in messages:
            self.add(wire.fields(message))
        return self


def _need(event: wire.Fields, key: str, what: str) -> str:
    value = event.field(key)
    if value is None:
        raise ParseError(f"{what}: missing field {key!r}")
    return value


class ContactList(EventItems[Contact]):
    """Registered contacts from PJSIPShowContacts (ContactList events)."""

    event = "ContactList"

    def build(self, event: wire.Fields) -> Contact:
        object_name = _need(event, "ObjectName", "ContactList")
        uri = _need(event, "Uri", f"contact {object_name}")
        if not uri.lower().startswith(("sip:", "sips:")):
            raise ParseError(f"contact {object_name[:60]}: unparseable URI {uri[:80]!r}")
        rtt = event.field("RoundtripUsec") or ""
        addr, port = event.field("ViaAddr") or "", event.field("ViaPort") or ""
        return Contact(
            aor=object_name.split(";@", 1)[0],
            uri=uri,
            user_agent=sys.intern(event.field("UserAgent") or ""),  # phones share theirs
            source=f"{addr}:{port}" if addr else "",
            status=sys.intern(event.field("Status") or ""),
            rtt_usec=int(rtt) if rtt.isdigit() else None,
        )

    def result(self) -> tuple[Contact, ...]:
        return tuple(sorted(self.items, key=lambda c: (c.aor, c.address_key, c.uri)))


def parse_contacts(
    messages: Sequence[wire.Message], warnings: list[str] | None = None
) -> tuple[Contact, ...]:
    return ContactList(warnings).read(messages).result()


class RegistrationList(EventItems[Registration]):
    """Outbound registrations; the AuthDetail events in the same list (with passwords,
    fact 10) are ignored."""

    event = "OutboundRegistrationDetail"

    def build(self, event: wire.Fields) -> Registration:
        return Registration(
            name=_need(event, "ObjectName", "OutboundRegistrationDetail"),
            endpoint=event.field("Endpoint") or None,
            server_uri=event.field("ServerUri") or "",
            client_uri=event.field("ClientUri") or "",
            status=event.field("Status") or "",
        )

    def result(self) -> tuple[Registration, ...]:
        return tuple(sorted(self.items, key=lambda r: r.name))


def parse_registrations(messages: Sequence[wire.Message]) -> tuple[Registration, ...]:
    return RegistrationList().read(messages).result()


class MailboxList(EventItems[Mailbox]):
    event = "VoicemailUserEntry"

    def build(self, event: wire.Fields) -> Mailbox:
        return Mailbox(
            context=sys.intern(event.field("VMContext") or "default"),  # one per context
            mailbox=_need(event, "VoiceMailbox", "VoicemailUserEntry"),
            name=event.field("Fullname") or "",
        )

    def result(self) -> tuple[Mailbox, ...]:
        return tuple(sorted(self.items, key=lambda b: (b.context, b.mailbox)))


def parse_mailboxes(messages: Sequence[wire.Message]) -> tuple[Mailbox, ...]:
    return MailboxList().read(messages).result()


class QueueList(EventItems[str]):
    event = "QueueSummary"

    def build(self, event: wire.Fields) -> str:
        return _need(event, "Queue", "QueueSummary")

    def result(self) -> tuple[Queue, ...]:
        return tuple(Queue(name) for name in sorted(set(self.items)))


def parse_queues(messages: Sequence[wire.Message]) -> tuple[Queue, ...]:
    return QueueList().read(messages).result()


def parse_manager_users(sections: Sequence[Section]) -> tuple[str, ...]:
    """AMI account names from manager.conf (only names are kept: the file holds secrets)."""
    return tuple(sorted(s.name for s in sections if s.name != "general"))
