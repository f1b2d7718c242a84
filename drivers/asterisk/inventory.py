"""Collecting an Asterisk inventory over AMI: the actions to send, and assembling their
parsed answers. Passwords are never fetched where avoidable (auth sections are not read)
and never kept where unavoidable (manager.conf: names only)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.errors import CommandError, ParseError
from drivers.models import Endpoint, Inventory, PbxFacts
from drivers.user_agents import MAX_USER_AGENT

PJSIP_TYPES = ("endpoint", "aor", "identify", "registration")


async def collect(ami: AmiClient, facts: PbxFacts) -> Inventory:
    """Ask for everything at once (panoramisk correlates the answers by ActionID)."""
    warnings: list[str] = []
    configs = [
        ami.action("GetConfig", Filename="pjsip.conf", Filter=f"type={kind}")
        for kind in PJSIP_TYPES
    ]
    lists = {
        name: _optional(ami.list_action(name), name, warnings)
        for name in (
            "PJSIPShowContacts",
            "PJSIPShowRegistrationsOutbound",
            "VoicemailUsersList",
            "QueueSummary",
            "ExtensionStateList",
            "ShowDialPlan",
        )
    }
    manager = _optional(
        ami.action("GetConfig", Filename="manager.conf"), "GetConfig manager.conf", warnings
    )
    iax, sip = _module(ami, "chan_iax2"), _module(ami, "chan_sip")
    results = await asyncio.gather(*configs, *lists.values(), manager, iax, sip)
    endpoint_cfg, aor_cfg, identify_cfg, registration_cfg = (
        parse.parse_get_config(m) for m in results[: len(configs)]
    )
    answers: dict[str, Any] = dict(
        zip(lists, results[len(configs) : len(configs) + len(lists)], strict=True)
    )
    manager_answer, iax_loaded, sip_loaded = results[-3:]

    endpoints = list(parse.parse_endpoints(endpoint_cfg, identify_cfg, registration_cfg))
    if iax_loaded:
        endpoints += parse.parse_iax_peers(await ami.list_action("IAXpeerlist"))
    if sip_loaded:
        endpoints += parse.parse_sip_peers(await ami.list_action("SIPpeers"))
    contacts = parse.parse_contacts(answers["PJSIPShowContacts"] or [], warnings)
    for contact in contacts:
        if len(contact.user_agent) > MAX_USER_AGENT:
            warnings.append(
                f"contact {contact.uri[:80]}: user agent of {len(contact.user_agent)} characters "
                f"cut to {MAX_USER_AGENT}"
            )
    contacts = tuple(
        c if len(c.user_agent) <= MAX_USER_AGENT else _cut_user_agent(c) for c in contacts
    )
    return Inventory(
        facts=facts,
        endpoints=_unique(endpoints, warnings),
        aors=parse.parse_aors(aor_cfg),
        contacts=contacts,
        registrations=parse.parse_registrations(answers["PJSIPShowRegistrationsOutbound"] or []),
        mailboxes=parse.parse_mailboxes(answers["VoicemailUsersList"] or []),
        queues=parse.parse_queues(answers["QueueSummary"] or []),
        hints=parse.parse_hints(answers["ExtensionStateList"] or []),
        dialplan=parse.parse_dialplan(answers["ShowDialPlan"] or []),
        manager_users=parse.parse_manager_users(
            parse.parse_get_config(manager_answer) if manager_answer else []
        ),
        warnings=tuple(warnings),
    )


def _cut_user_agent(contact: Any) -> Any:
    from dataclasses import replace

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


async def _optional(call: Any, what: str, warnings: list[str]) -> Any:
    """A source the count can do without (e.g. app_voicemail not loaded): warn, go on."""
    try:
        return await call
    except (CommandError, ParseError) as exc:
        warnings.append(f"{what}: {exc}")
        return None


async def _module(ami: AmiClient, module: str) -> bool:
    try:
        await ami.action("ModuleCheck", Module=module)
    except CommandError:
        return False
    return True


__all__ = ["collect", "wire"]
