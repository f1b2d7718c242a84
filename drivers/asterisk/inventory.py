"""Collecting an Asterisk inventory over AMI: the actions to send, and assembling their
parsed answers. What the PBX runs comes from its live lists (PJSIPShowEndpoints, IAXpeerlist,
SIPpeers); what those objects are comes from the configuration (GetConfig). Passwords are
never fetched where avoidable (auth sections are not read) and never kept where unavoidable
(manager.conf: names only; register lines: user and host only)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import replace
from operator import attrgetter
from typing import Any, TypeVar

from drivers.asterisk import parse
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.parse.config import PJSIP_FILTER, PjsipReader
from drivers.asterisk.parse.dialplan import Dialplan
from drivers.asterisk.parse.getconfig import ConfigReader, Section
from drivers.asterisk.parse.lists import ContactList, MailboxList, QueueList, RegistrationList
from drivers.asterisk.parse.live import (
    DETAIL_FIELDS,
    LIST_FIELDS,
    LiveEndpoint,
    LiveEndpoints,
    Reconciled,
    parse_endpoint_detail,
    reconcile,
)
from drivers.asterisk.parse.peers import keep_peer_option, parse_live_peers, parse_peers
from drivers.errors import CommandError, ParseError
from drivers.models import Aor, Contact, Endpoint, Inventory, PbxFacts
from drivers.user_agents import MAX_USER_AGENT

# Endpoints loaded in Asterisk but missing from the files are described one PJSIPShowEndpoint
# each; past this many (a file that cannot be read at all) the live list alone describes them.
MAX_DETAIL_LOOKUPS = 100

# What each list answer is read for (fields as Asterisk spells them; matched without case);
# nothing else of it becomes a string (memory and time follow what the counting rules use,
# not what the PBX sends).
KEEP_FIELDS = {
    "PJSIPShowContacts": (
        "ObjectName",
        "Uri",
        "UserAgent",
        "ViaAddr",
        "ViaPort",
        "Status",
        "RoundtripUsec",
    ),
    "PJSIPShowRegistrationsOutbound": (
        "ObjectName",
        "Endpoint",
        "ServerUri",
        "ClientUri",
        "Status",
    ),
    "VoicemailUsersList": ("VMContext", "VoiceMailbox", "Fullname"),
    "QueueSummary": ("Queue",),
    "ShowDialPlan": ("Context", "Extension", "Priority", "Application", "AppData"),
}
PEER_DRIVERS = (
    # technology, module, live list action, configuration file
    ("IAX2", "chan_iax2", "IAXpeerlist", "iax.conf"),
    ("SIP", "chan_sip", "SIPpeers", "sip.conf"),
)
T = TypeVar("T")


def _is_trunk(endpoint: Endpoint) -> bool:
    return (
        endpoint.identify
        or endpoint.outbound_registration
        or (endpoint.outbound_auth and not endpoint.inbound_auth)
    )


async def collect(ami: AmiClient, facts: Awaitable[PbxFacts]) -> Inventory:
    """Every action that needs no other answer goes out at once (one GetConfig of pjsip.conf
    for its four object types: Asterisk re-reads the whole file for each GetConfig); Asterisk
    answers them in order, and each answer is parsed as it streams in while the PBX works on
    the next. Only what an answer decides (peers of a loaded channel driver, endpoints the
    files no longer describe) is asked afterwards."""
    found: dict[str, list[str]] = defaultdict(list)  # warnings by source, in report order

    async def listed(name: str, reader: Any) -> Any:
        """A list action whose events `reader` turns into items as they arrive; its items,
        or None when the PBX refuses the action (e.g. app_voicemail not loaded)."""
        try:
            await ami.list_action(name, keep=KEEP_FIELDS[name], each=reader.add)
        except (CommandError, ParseError) as exc:
            found[name].append(f"{name}: {exc}")
            return None
        return reader

    async def peer_config(technology: str, filename: str) -> list[Section]:
        reader = ConfigReader(keep=keep_peer_option)
        try:
            return (await ami.read("GetConfig", reader, Filename=filename)).sections
        except (CommandError, ParseError) as exc:
            found[technology].append(
                f"GetConfig {filename}: {exc}: {technology} peers judged without it"
            )
            return []

    async def peers(loaded: Awaitable[bool], technology: str, list_name: str, file: str) -> Any:
        if not await loaded:
            return None
        live_peers, sections = await _concurrently(
            start(ami.list_action(list_name)), start(peer_config(technology, file))
        )
        return parse_live_peers(live_peers), sections

    async def prepared(listing: Awaitable[Dialplan | None]) -> Dialplan | None:
        """The dialplan, its hints sorted and extensions classified as soon as it is in
        (while the PBX still loads pjsip.conf for the GetConfig after it)."""
        plan = await listing
        return plan.prepare() if plan is not None else None

    async def manager_users() -> tuple[str, ...]:
        try:
            reader = await ami.read(
                "GetConfig", ConfigReader(keep=_nothing), Filename="manager.conf"
            )
        except (CommandError, ParseError) as exc:
            found["manager"].append(f"GetConfig manager.conf: {exc}")
            return ()
        return parse.parse_manager_users(reader.sections)

    async def both_views(
        listing: Awaitable[Any], files: Awaitable[PjsipReader]
    ) -> tuple[tuple[LiveEndpoint, ...], Reconciled, list[Aor]]:
        """The live list and the files, reconciled as soon as both are in (while the PBX
        sends the rest)."""
        await listing
        pjsip = await files
        configured = pjsip.endpoints()
        _warn_duplicates(configured, found["pjsip"])
        live = live_list.result()
        return live, reconcile(live, configured, pjsip.auths), list(pjsip.aors())

    # Sent in this order (tasks start in the order they are made; Asterisk answers a session's
    # actions in order): the small questions whose answers decide what else to ask first; then
    # the dialplan and the voicemail users, which Asterisk lists from memory at once and we
    # parse slowest per byte, so their parse runs while the PBX loads pjsip.conf for the
    # GetConfig (a second before its first byte at 50,000 endpoints); then that GetConfig, our
    # longest parse, which the stream reads ahead (`ami_stream.READ_AHEAD`) while the PBX makes
    # the lists that follow.
    modules = [start(_module(ami, module)) for _, module, _, _ in PEER_DRIVERS]
    dialplan = start(prepared(listed("ShowDialPlan", Dialplan())))
    mailbox_list = start(listed("VoicemailUsersList", MailboxList()))
    files = start(ami.read("GetConfig", PjsipReader(), Filename="pjsip.conf", Filter=PJSIP_FILTER))
    live_list = LiveEndpoints()
    listing = start(ami.list_action("PJSIPShowEndpoints", keep=LIST_FIELDS, each=live_list.add))
    (
        (live, reconciled, aors),
        registrations,
        contacts,
        mailboxes,
        queues,
        plan,
        manager,
        pbx,
        *peer_answers,
    ) = await _concurrently(
        start(both_views(listing, files)),
        start(listed("PJSIPShowRegistrationsOutbound", RegistrationList())),
        start(listed("PJSIPShowContacts", ContactList(found["PJSIPShowContacts"]))),
        mailbox_list,
        start(listed("QueueSummary", QueueList())),
        dialplan,
        start(manager_users()),
        start(facts),
        *(
            start(peers(loaded, technology, list_name, filename))
            for loaded, (technology, _, list_name, filename) in zip(
                modules, PEER_DRIVERS, strict=True
            )
        ),
        also=(*modules, listing, files),
    )
    # The loop's wake-up of this task still holds gather's list of results until this task
    # yields; once it has, each big piece below goes as soon as it is used.
    await asyncio.sleep(0)
    registrations = registrations.result() if registrations else ()
    warnings = [*found["pjsip"], *reconciled.warnings, *found["PJSIPShowRegistrationsOutbound"]]
    registered = {r.endpoint for r in registrations if r.endpoint}
    endpoints = [
        replace(e, outbound_registration=True)
        if e.name in registered and not e.outbound_registration
        else e
        for e in reconciled.endpoints
    ]
    known_aors = {a.name for a in aors}
    lookups = reconciled.only_live[:MAX_DETAIL_LOOKUPS]
    details = await _concurrently(
        *(
            start(ami.list_action("PJSIPShowEndpoint", keep=DETAIL_FIELDS, Endpoint=name))
            for name in lookups
        )
    )
    for name, answer in zip(lookups, details, strict=True):
        endpoint, its_aors = parse_endpoint_detail(answer)
        endpoints.append(endpoint)
        aors += [a for a in its_aors if a.name not in known_aors]
        known_aors |= {a.name for a in its_aors}
        warnings.append(
            f"endpoint {name} is loaded in Asterisk but no longer in pjsip.conf: counted as "
            "Asterisk runs it (it goes at the next res_pjsip reload)"
        )
    _describe_the_rest(live, reconciled.only_live[MAX_DETAIL_LOOKUPS:], endpoints, warnings)
    del live, reconciled
    contact_list = list(contacts.result()) if contacts else []
    del contacts
    warnings += found["PJSIPShowContacts"]
    warnings += found["VoicemailUsersList"] + found["QueueSummary"] + found["ShowDialPlan"]
    plan = plan or Dialplan()
    inbound = {e.context for e in endpoints if e.context and _is_trunk(e)}
    objects = plan.objects(inbound)
    dials = plan.peer_dials()
    hints = plan.hints()
    del plan
    for (technology, *_), answers in zip(PEER_DRIVERS, peer_answers, strict=True):
        if answers is None:
            continue
        live_peers, sections = answers
        warnings += found[technology]
        peers_found = parse_peers(technology, sections, live_peers, dials)
        endpoints += peers_found.endpoints
        contact_list += peers_found.contacts
        warnings += peers_found.warnings
    warnings += found["manager"]
    return Inventory(
        facts=pbx,
        endpoints=_unique(endpoints, warnings),
        aors=tuple(sorted(aors, key=lambda a: a.name)),
        contacts=_cut_user_agents(contact_list, warnings),
        registrations=registrations,
        mailboxes=mailboxes.result() if mailboxes else (),
        queues=queues.result() if queues else (),
        hints=hints,
        dialplan=objects,
        manager_users=manager,
        warnings=tuple(warnings),
    )


def _nothing(option: str) -> bool:
    """manager.conf: only the section names are kept (the file holds the AMI secrets)."""
    return False


def start(coroutine: Awaitable[T]) -> asyncio.Future[T]:
    """Run `coroutine` as a task: tasks start in the order they are made, so their actions
    go out in that order, pipelined (Asterisk answers one session's actions in order)."""
    return asyncio.ensure_future(coroutine)


async def _concurrently(
    *tasks: asyncio.Future[Any], also: tuple[asyncio.Future[Any], ...] = ()
) -> list[Any]:
    """The results of `tasks`; on the first failure these and `also` (tasks they await) are
    cancelled and that failure is raised as it is."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in (*tasks, *also):
            task.cancel()
        await asyncio.gather(*tasks, *also, return_exceptions=True)
        raise


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
    names = [e.name for e in endpoints]
    if len(set(names)) == len(names):  # the usual file: no name twice, nothing to sort
        return
    for name, count in sorted(Counter(names).items()):
        if count > 1:
            warnings.append(f"PJSIP endpoint {name!r} is defined {count} times; first kept")


_NAME = attrgetter("name")

# When two technologies use one name, the extension is one seat: PJSIP first.
TECHNOLOGY_ORDER = {"PJSIP": 0, "SIP": 1, "IAX2": 2}


def _unique(endpoints: list[Endpoint], warnings: list[str]) -> tuple[Endpoint, ...]:
    """Endpoints by name; a name used twice is reported and the first kept (PJSIP first)."""
    by_name = sorted(endpoints, key=_NAME)
    if len({e.name for e in by_name}) == len(by_name):  # the usual office: no name twice
        return tuple(by_name)
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
