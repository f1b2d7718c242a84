"""List answers -> inventory pieces: contacts, registrations, mailboxes, queues, hints,
dialplan objects, IAX2/SIP peers, manager users. Pure functions over `wire.Message` lists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from drivers.asterisk import wire
from drivers.asterisk.parse.config import Section
from drivers.errors import ParseError
from drivers.models import Contact, DialplanObject, Endpoint, Hint, Mailbox, Queue, Registration

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
    return tuple(sorted(contacts, key=lambda c: (c.aor, c.uri)))


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


def parse_hints(messages: Sequence[wire.Message]) -> tuple[Hint, ...]:
    """Hints from ShowDialPlan (the `hint` priorities) or ExtensionStateList events."""
    hints = []
    for m in messages:
        event = wire.get(m, "Event")
        if event == "ListDialplan" and wire.get(m, "Priority") == "hint":
            exten, devices = wire.get(m, "Extension"), wire.get(m, "Application") or ""
        elif event == "ExtensionStatus":
            exten, devices = wire.get(m, "Exten"), wire.get(m, "Hint") or ""
        else:
            continue
        if exten is None:
            continue
        hints.append(
            Hint(exten, wire.get(m, "Context") or "", tuple(d for d in devices.split("&") if d))
        )
    return tuple(sorted(hints, key=lambda h: (h.context, h.extension)))


# Dialplan applications that make an extension a virtual object, by kind.
APP_KINDS = {
    "queue": "queue",
    "confbridge": "conference",
    "meetme": "conference",
    "page": "paging",
    "park": "parking",
    "voicemailmain": "feature",
    "echo": "feature",
    "directory": "feature",
}
IVR_APPS = {"background", "waitexten", "read"}


def parse_dialplan(messages: Sequence[wire.Message]) -> tuple[DialplanObject, ...]:
    """Virtual objects from ShowDialPlan: IVRs (contexts that play a menu and wait for
    digits, and the extensions that jump into them), queues, conferences, paging, parking,
    ring groups (Dial to several devices), intercom (Dial with auto-answer) and voicemail-only
    extensions. Phone extensions are not reported here."""
    steps: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for m in events(messages, "ListDialplan"):
        context, exten = wire.get(m, "Context") or "", wire.get(m, "Extension")
        if exten is None or wire.get(m, "Priority") == "hint":
            continue
        app = (wire.get(m, "Application") or "").strip().lower()
        if app == "parkedcall":
            continue  # parking slots: summarised from their hints, one line per lot
        steps[(context, exten)].append((app, wire.get(m, "AppData") or ""))
    ivr_contexts = {
        context for (context, _), apps in steps.items() if any(a in IVR_APPS for a, _ in apps)
    }
    objects: list[DialplanObject] = [
        DialplanObject(c, "s", "ivr", "phone tree") for c in ivr_contexts
    ]
    for (context, exten), apps in steps.items():
        if context in ivr_contexts:
            continue
        kind, detail = _classify(apps, exten, ivr_contexts)
        if kind is not None:
            objects.append(DialplanObject(context, exten, kind, detail))
    return tuple(sorted(set(objects), key=lambda o: (o.context, o.extension, o.kind)))


def _classify(
    apps: list[tuple[str, str]], exten: str, ivr_contexts: set[str]
) -> tuple[str | None, str]:
    names = [a for a, _ in apps]
    for app, data in apps:
        if app in APP_KINDS:
            return APP_KINDS[app], data.split(",")[0]
        if app in ("goto", "gosub") and data.split(",")[0] in ivr_contexts:
            return "ivr", data.split(",")[0]
    dials = [data for app, data in apps if app == "dial"]
    for data in dials:
        target, _, options = data.partition(",")
        if "${ARG" in target:  # a subroutine dialling what its caller passed: not an object
            continue
        if "autoanswer" in options.lower() or exten.startswith(("*8", "_*8")):
            return "intercom", target
        if "&" in target or (target.startswith("${") and "EXTEN" not in target):
            return "ring_group", target
    if "voicemail" in names and not dials and "gosub" not in names:
        data = next(d for a, d in apps if a == "voicemail")
        return "voicemail", data.split(",")[0]
    return None, ""


def parse_iax_peers(messages: Sequence[wire.Message]) -> tuple[Endpoint, ...]:
    """IAX2 peers link PBXs together here; the counting rules treat them as trunks."""
    peers = [
        Endpoint(
            name=_need(m, "ObjectName", "PeerEntry"),
            technology="IAX2",
            identify=True,
        )
        for m in events(messages, "PeerEntry")
        if (wire.get(m, "Channeltype") or "").upper() == "IAX"
    ]
    return tuple(sorted(peers, key=lambda e: e.name))


def parse_sip_peers(messages: Sequence[wire.Message]) -> tuple[Endpoint, ...]:
    """chan_sip peers: a dynamic peer is a device that registers; a fixed host is a trunk."""
    peers = []
    for m in events(messages, "PeerEntry"):
        if (wire.get(m, "Channeltype") or "").upper() != "SIP":
            continue
        dynamic = (wire.get(m, "Dynamic") or "").lower() == "yes"
        name = _need(m, "ObjectName", "PeerEntry")
        peers.append(
            Endpoint(
                name=name,
                technology="SIP",
                aors=(name,),
                inbound_auth=dynamic,
                identify=not dynamic,
            )
        )
    return tuple(sorted(peers, key=lambda e: e.name))


def parse_manager_users(sections: Sequence[Section]) -> tuple[str, ...]:
    """AMI account names from manager.conf (only names are kept: the file holds secrets)."""
    return tuple(sorted(s.name for s in sections if s.name != "general"))
