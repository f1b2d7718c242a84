"""Collecting an Asterisk inventory over AMI: the actions to send, and assembling their
parsed answers. What the PBX runs comes from its live lists (PJSIPShowEndpoints, IAXpeerlist,
SIPpeers); what those objects are comes from the configuration (GetConfig). Passwords are
never fetched where avoidable (auth sections are not read) and never kept where unavoidable
(manager.conf: names only; register lines: user and host only)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.parse.config import SECRETS
from drivers.asterisk.parse.dialplan import parse_peer_dials
from drivers.asterisk.parse.live import (
    DETAIL_FIELDS,
    LIST_FIELDS,
    LiveEndpoint,
    parse_endpoint_detail,
    parse_live_endpoints,
    reconcile,
)
from drivers.asterisk.parse.peers import keep_peer_line, parse_live_peers, parse_peers
from drivers.errors import CommandError, ParseError
from drivers.models import Contact, Endpoint, Inventory, PbxFacts
from drivers.user_agents import MAX_USER_AGENT

# Endpoints loaded in Asterisk but missing from the files are described one PJSIPShowEndpoint
# each; past this many (a file that cannot be read at all) the live list alone describes them.
MAX_DETAIL_LOOKUPS = 100

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
PEER_DRIVERS = (
    # technology, module, live list action, configuration file
    ("IAX2", "chan_iax2", "IAXpeerlist", "iax.conf"),
    ("SIP", "chan_sip", "SIPpeers", "sip.conf"),
)


def _config_line(key: str, value: str) -> bool:
    if key.startswith("Line-"):
        return value.partition("=")[0] in CONFIG_OPTIONS
    return key.startswith("Category-")


def _endpoint_line(key: str, value: str) -> bool:
    """Endpoint sections are kept whole (the inventory shows their effective options)."""
    if key.startswith("Line-"):
        return value.partition("=")[0].strip() not in SECRETS
    return key.startswith("Category-")


def _fields(names: set[str] | frozenset[str]) -> Any:
    return lambda key, value: key.lower() in names


def _is_trunk(endpoint: Endpoint) -> bool:
    return (
        endpoint.identify
        or endpoint.outbound_registration
        or (endpoint.outbound_auth and not endpoint.inbound_auth)
    )


async def collect(ami: AmiClient, facts: PbxFacts) -> Inventory:
    """One action at a time, each answer parsed as soon as it arrives: the PBX answers them
    one by one anyway, and only one raw answer is ever held."""
    warnings: list[str] = []

    async def config(filename: str, kind: str | None = None, keep: Any = _config_line) -> Any:
        filters = {"Filter": f"type={kind}"} if kind else {}
        answer = await ami.action("GetConfig", keep=keep, Filename=filename, **filters)
        return parse.parse_get_config(answer)

    async def listed(name: str) -> list[wire.Message]:
        try:
            return await ami.list_action(name, keep=_fields(KEEP_FIELDS[name]))
        except (CommandError, ParseError) as exc:  # e.g. app_voicemail not loaded
            warnings.append(f"{name}: {exc}")
            return []

    live = parse_live_endpoints(
        await ami.list_action("PJSIPShowEndpoints", keep=_fields(LIST_FIELDS))
    )
    endpoint_sections = await config("pjsip.conf", "endpoint", _endpoint_line)
    configured = parse.parse_endpoints(
        endpoint_sections,
        await config("pjsip.conf", "identify"),
        await config("pjsip.conf", "registration"),
    )
    del endpoint_sections
    _warn_duplicates(configured, warnings)
    reconciled = reconcile(live, configured)
    del configured
    warnings += reconciled.warnings
    registrations = parse.parse_registrations(await listed("PJSIPShowRegistrationsOutbound"))
    registered = {r.endpoint for r in registrations if r.endpoint}
    endpoints = [
        replace(e, outbound_registration=True)
        if e.name in registered and not e.outbound_registration
        else e
        for e in reconciled.endpoints
    ]
    aors = list(parse.parse_aors(await config("pjsip.conf", "aor")))
    known_aors = {a.name for a in aors}
    for name in reconciled.only_live[:MAX_DETAIL_LOOKUPS]:
        answer = await ami.list_action(
            "PJSIPShowEndpoint", keep=_fields(DETAIL_FIELDS), Endpoint=name
        )
        endpoint, its_aors = parse_endpoint_detail(answer)
        endpoints.append(endpoint)
        aors += [a for a in its_aors if a.name not in known_aors]
        known_aors |= {a.name for a in its_aors}
        warnings.append(
            f"endpoint {name} is loaded in Asterisk but no longer in pjsip.conf: counted as "
            "Asterisk runs it (it goes at the next res_pjsip reload)"
        )
    _describe_the_rest(live, reconciled.only_live[MAX_DETAIL_LOOKUPS:], endpoints, warnings)

    contacts = list(parse.parse_contacts(await listed("PJSIPShowContacts"), warnings))
    mailboxes = parse.parse_mailboxes(await listed("VoicemailUsersList"))
    queues = parse.parse_queues(await listed("QueueSummary"))
    plan = await listed("ShowDialPlan")  # its `hint` priorities are the hints
    hints = parse.parse_hints(plan)
    inbound = {e.context for e in endpoints if e.context and _is_trunk(e)}
    dialplan = parse.parse_dialplan(plan, inbound)
    dials = parse_peer_dials(plan)
    del plan
    for technology, module, list_name, filename in PEER_DRIVERS:
        if not await _module(ami, module):
            continue
        live_peers = parse_live_peers(await ami.list_action(list_name))
        try:
            sections = await config(filename, keep=keep_peer_line)
        except (CommandError, ParseError) as exc:
            warnings.append(f"GetConfig {filename}: {exc}: {technology} peers judged without it")
            sections = []
        peers = parse_peers(technology, sections, live_peers, dials)
        endpoints += peers.endpoints
        contacts += peers.contacts
        warnings += peers.warnings
    try:
        manager = parse.parse_manager_users(await config("manager.conf"))
    except (CommandError, ParseError) as exc:
        warnings.append(f"GetConfig manager.conf: {exc}")
        manager = ()
    return Inventory(
        facts=facts,
        endpoints=_unique(endpoints, warnings),
        aors=tuple(sorted(aors, key=lambda a: a.name)),
        contacts=_cut_user_agents(contacts, warnings),
        registrations=registrations,
        mailboxes=mailboxes,
        queues=queues,
        hints=hints,
        dialplan=dialplan,
        manager_users=manager,
        warnings=tuple(warnings),
    )


def _describe_the_rest(
    live: tuple[LiveEndpoint, ...],
    names: tuple[str, ...],
    endpoints: list[Endpoint],
    warnings: list[str],
) -> None:
    """Loaded endpoints past the lookup limit: described by the live list alone."""
    if not names:
        return
    wanted = set(names)
    for item in live:
        if item.name in wanted:
            endpoints.append(
                Endpoint(
                    name=item.name,
                    aors=item.aors,
                    inbound_auth=bool(item.auths),
                    outbound_auth=bool(item.outbound_auths),
                )
            )
    warnings.append(
        f"{len(names)} more endpoints are loaded in Asterisk but not in pjsip.conf "
        f"({', '.join(names[:5])}...): counted from the live list alone, without caller IDs"
    )


def _cut_user_agents(contacts: list[Contact], warnings: list[str]) -> tuple[Contact, ...]:
    result = []
    for contact in contacts:
        if len(contact.user_agent) > MAX_USER_AGENT:
            warnings.append(
                f"contact {contact.uri[:80]}: user agent of {len(contact.user_agent)} characters "
                f"cut to {MAX_USER_AGENT}"
            )
            contact = replace(contact, user_agent=contact.user_agent[:MAX_USER_AGENT])
        result.append(contact)
    return tuple(result)


def _warn_duplicates(endpoints: tuple[Endpoint, ...], warnings: list[str]) -> None:
    for name, count in sorted(Counter(e.name for e in endpoints).items()):
        if count > 1:
            warnings.append(f"PJSIP endpoint {name!r} is defined {count} times; first kept")


# When two technologies use one name, the extension is one seat: PJSIP first.
TECHNOLOGY_ORDER = {"PJSIP": 0, "SIP": 1, "IAX2": 2}


def _unique(endpoints: list[Endpoint], warnings: list[str]) -> tuple[Endpoint, ...]:
    """Endpoints by name; a name used twice is reported and the first kept (PJSIP first)."""
    seen: dict[str, Endpoint] = {}
    ordered = sorted(endpoints, key=lambda e: (e.name, TECHNOLOGY_ORDER.get(e.technology, 9)))
    for endpoint in ordered:
        first = seen.get(endpoint.name)
        if first is None:
            seen[endpoint.name] = endpoint
        elif first.technology != endpoint.technology:
            warnings.append(
                f"{endpoint.technology} {endpoint.name} has the same name as {first.technology} "
                f"{endpoint.name}: one extension, counted once as {first.technology}"
            )
    return tuple(seen.values())


async def _module(ami: AmiClient, module: str) -> bool:
    try:
        await ami.action("ModuleCheck", Module=module)
    except CommandError:
        return False
    return True
