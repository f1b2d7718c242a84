"""Collecting an Asterisk inventory over AMI: the actions to send, and assembling their
parsed answers. Passwords are never fetched where avoidable (auth sections are not read)
and never kept where unavoidable (manager.conf: names only)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.errors import CommandError, ParseError
from drivers.models import Contact, Endpoint, Inventory, PbxFacts
from drivers.user_agents import MAX_USER_AGENT

PJSIP_TYPES = ("endpoint", "aor", "identify", "registration")


# What each answer is kept for; everything else is dropped as it arrives (memory stays
# proportional to what the counting rules use, not to what the PBX sends).
CONFIG_OPTIONS = frozenset(
    {
        "type",
        "callerid",
        "context",
        "aors",
        "mailboxes",
        "auth",
        "outbound_auth",
        "endpoint",
        "max_contacts",
        "contact",
    }
)
KEEP_FIELDS = {
    "PJSIPShowContacts": {
        "objectname",
        "uri",
        "useragent",
        "viaaddr",
        "viaport",
        "status",
        "roundtripusec",
    },
    "PJSIPShowRegistrationsOutbound": {
        "objectname",
        "endpoint",
        "serveruri",
        "clienturi",
        "status",
    },
    "VoicemailUsersList": {"vmcontext", "voicemailbox", "fullname"},
    "QueueSummary": {"queue"},
    "ShowDialPlan": {"context", "extension", "priority", "application", "appdata"},
}


def _config_line(key: str, value: str) -> bool:
    if key.startswith("Line-"):
        return value.partition("=")[0] in CONFIG_OPTIONS
    return key.startswith("Category-")


def _fields(names: set[str]) -> Any:
    return lambda key, value: key.lower() in names


async def collect(ami: AmiClient, facts: PbxFacts) -> Inventory:
    """One action at a time, each answer parsed as soon as it arrives: the PBX answers them
    one by one anyway, and only one raw answer is ever held."""
    warnings: list[str] = []

    async def config(filename: str, kind: str | None = None) -> list[parse.Section]:
        filters = {"Filter": f"type={kind}"} if kind else {}
        answer = await ami.action("GetConfig", keep=_config_line, Filename=filename, **filters)
        return parse.parse_get_config(answer)

    async def listed(name: str) -> list[wire.Message]:
        try:
            return await ami.list_action(name, keep=_fields(KEEP_FIELDS[name]))
        except (CommandError, ParseError) as exc:  # e.g. app_voicemail not loaded
            warnings.append(f"{name}: {exc}")
            return []

    endpoint_sections = await config("pjsip.conf", "endpoint")
    identify_sections = await config("pjsip.conf", "identify")
    registration_sections = await config("pjsip.conf", "registration")
    endpoints = list(
        parse.parse_endpoints(endpoint_sections, identify_sections, registration_sections)
    )
    del endpoint_sections
    aors = parse.parse_aors(await config("pjsip.conf", "aor"))
    if await _module(ami, "chan_iax2"):
        endpoints += parse.parse_iax_peers(await ami.list_action("IAXpeerlist"))
    if await _module(ami, "chan_sip"):
        endpoints += parse.parse_sip_peers(await ami.list_action("SIPpeers"))
    contacts = parse.parse_contacts(await listed("PJSIPShowContacts"), warnings)
    for contact in contacts:
        if len(contact.user_agent) > MAX_USER_AGENT:
            warnings.append(
                f"contact {contact.uri[:80]}: user agent of {len(contact.user_agent)} characters "
                f"cut to {MAX_USER_AGENT}"
            )
    contacts = tuple(
        c if len(c.user_agent) <= MAX_USER_AGENT else _cut_user_agent(c) for c in contacts
    )
    registrations = parse.parse_registrations(await listed("PJSIPShowRegistrationsOutbound"))
    mailboxes = parse.parse_mailboxes(await listed("VoicemailUsersList"))
    queues = parse.parse_queues(await listed("QueueSummary"))
    plan = await listed("ShowDialPlan")  # its `hint` priorities are the hints
    hints, dialplan = parse.parse_hints(plan), parse.parse_dialplan(plan)
    del plan
    try:
        manager = parse.parse_manager_users(await config("manager.conf"))
    except (CommandError, ParseError) as exc:
        warnings.append(f"GetConfig manager.conf: {exc}")
        manager = ()
    return Inventory(
        facts=facts,
        endpoints=_unique(endpoints, warnings),
        aors=aors,
        contacts=contacts,
        registrations=registrations,
        mailboxes=mailboxes,
        queues=queues,
        hints=hints,
        dialplan=dialplan,
        manager_users=manager,
        warnings=tuple(warnings),
    )


def _cut_user_agent(contact: Contact) -> Contact:
    return replace(contact, user_agent=contact.user_agent[:MAX_USER_AGENT])


def _unique(endpoints: list[Endpoint], warnings: list[str]) -> tuple[Endpoint, ...]:
    """Endpoints by (technology, name); a duplicate is reported and the first one kept."""
    counts = Counter((e.technology, e.name) for e in endpoints)
    for (technology, name), count in sorted(counts.items()):
        if count > 1:
            warnings.append(f"{technology} endpoint {name!r} is defined {count} times; first kept")
    seen: set[tuple[str, str]] = set()
    unique = []
    for endpoint in sorted(endpoints, key=lambda e: (e.name, e.technology)):
        key = (endpoint.technology, endpoint.name)
        if key not in seen:
            seen.add(key)
            unique.append(endpoint)
    return tuple(unique)


async def _module(ami: AmiClient, module: str) -> bool:
    try:
        await ami.action("ModuleCheck", Module=module)
    except CommandError:
        return False
    return True
