"""Collecting a FreeSWITCH inventory over ESL, one inventory per directory domain (tenant =
domain, fact 42): users and whether each can register, registered devices, dialplan
objects, queues; gateways are shared by every tenant (fact 42).

Secrets: ``xml_locate directory`` and a bare ``global_getvar`` return every password in
clear (fact 40) and are never sent. Whether a user without a registration can register at
all needs three facts FreeSWITCH only gives per user (``user_data``): ``sip-forbid-register``,
``allow-empty-password`` and, only where an empty password would be refused, whether a
``password`` or ``a1-hash`` exists; that last answer is reduced to present/absent inside the
client (`EslClient.presence`) and never reaches this module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from drivers.errors import CommandError, ParseError
from drivers.freeswitch import parse
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.parse.directory import DirectoryUser
from drivers.freeswitch.settings import EslSettings
from drivers.models import Aor, Contact, DialplanObject, Endpoint, Inventory, PbxFacts, Queue
from drivers.models import Registration as Trunk
from drivers.user_agents import MAX_USER_AGENT

# FreeSWITCH has no per-user limit on registered devices unless the profile sets one.
UNLIMITED_CONTACTS = 1_000_000
BATCH = 500  # apis written at once (pipelined, fact 6)
_SAFE_ARG = re.compile(r"^[^\s|{}()$]+$")

FORBIDDEN = "sip-forbid-register=true: the PBX refuses every registration"
NO_PASSWORD = (
    "no SIP password and allow-empty-password=false: cannot register (a voicemail-only box?)"
)


async def collect(client: EslClient, settings: EslSettings, facts: PbxFacts) -> Inventory:
    warnings: list[str] = []
    sofia = parse.parse_sofia_status(await client.api("sofia status"))
    users = await read_users(client, settings, warnings)
    rows = await read_registrations(client, settings, sofia, warnings)
    registered = {(r.user_id, r.realm.lower()) for r in rows}
    blocked = await _cannot_register(
        client, [u for u in users if (u.user_id, u.domain.lower()) not in registered], warnings
    )
    queues = await _queues(client, warnings)
    by_domain: dict[str, list[DirectoryUser]] = defaultdict(list)
    for user in users:
        by_domain[user.domain.lower()].append(user)
    rows_by_domain: dict[str, list[parse.RegistrationRow]] = defaultdict(list)
    for row in rows:
        rows_by_domain[row.realm.lower()].append(row)
    domains = _domains(settings, by_domain)
    tenants = []
    for domain in domains:
        members = by_domain.get(domain.lower(), [])
        contexts = sorted({u.context for u in members if u.context})
        dialplan: list[DialplanObject] = []
        for context in contexts:
            dialplan += await _context(client, context, warnings)
        ids = {u.user_id for u in members}
        strays = [r for r in rows_by_domain.get(domain.lower(), []) if r.user_id not in ids]
        for row in strays:
            warnings.append(
                f"{row.user} is registered ({row.agent[:40]}) but not in the directory of {domain}"
            )
        tenants.append(
            Inventory(
                facts=facts,
                endpoints=tuple(_endpoint(u, blocked) for u in members),
                aors=tuple(Aor(u.user_id, UNLIMITED_CONTACTS) for u in members),
                contacts=tuple(
                    _contact(r, warnings)
                    for r in rows_by_domain.get(domain.lower(), [])
                    if r.user_id in ids
                ),
                queues=tuple(Queue(q) for q in queues if _tenant_of(q) == domain.lower()),
                dialplan=tuple(dialplan),
                tenant=domain,
            )
        )
    known = {d.lower() for d in by_domain}
    shared_queues = tuple(Queue(q) for q in queues if _tenant_of(q) not in known)
    return Inventory(
        facts=facts,
        registrations=tuple(
            trunk(e.profile, e.name, e.data, e.state) for e in sofia if e.kind == "gateway"
        ),
        queues=shared_queues if not settings.domains else (),
        warnings=tuple(warnings),
        tenants=tuple(tenants),
    )


def trunk(profile: str, name: str, data: str, state: str) -> Trunk:
    """A gateway as a trunk registration; ``REGED`` is what the agent calls Registered."""
    word = state.split(" ", 1)[0]
    return Trunk(
        name=name,
        endpoint=f"{profile}::{name}" if profile else None,
        server_uri=data,
        client_uri=data,
        status="Registered" if word == "REGED" else word or "Unknown",
    )


def _domains(settings: EslSettings, by_domain: dict[str, list[DirectoryUser]]) -> list[str]:
    if settings.domains:
        return list(settings.domains)
    names: dict[str, str] = {}
    for users in by_domain.values():
        names.setdefault(users[0].domain.lower(), users[0].domain)
    return sorted(names.values(), key=str.lower)


async def read_users(
    client: EslClient, settings: EslSettings, warnings: list[str]
) -> list[DirectoryUser]:
    if not settings.domains:
        return list(parse.parse_list_users(await client.api("list_users"), warnings))
    users: list[DirectoryUser] = []
    for domain in settings.domains:
        _check_arg(domain, "domain")
        found = parse.parse_list_users(await client.api(f"list_users domain {domain}"), warnings)
        if not found:
            exists = parse.parse_bool(await client.api(f"domain_exists {domain}"))
            warnings.append(
                f"domain {domain} has no users"
                if exists
                else f"domain {domain} is not in FreeSWITCH's directory: check pbx.esl.domains"
            )
        users += found
    return users


async def read_registrations(
    client: EslClient,
    settings: EslSettings,
    sofia: Sequence[parse.SofiaEntry],
    warnings: list[str],
) -> list[parse.RegistrationRow]:
    running = [e.name for e in sofia if e.kind == "profile"]
    profiles = list(settings.profiles) or running
    rows: list[parse.RegistrationRow] = []
    for profile in profiles:
        if profile not in running:
            warnings.append(f"SIP profile {profile} is not running: its phones were not read")
            continue
        _check_arg(profile, "profile")
        answer = await client.api(f"sofia xmlstatus profile {profile} reg")
        rows += parse.parse_registrations(answer, warnings)
    wanted = {d.lower() for d in settings.domains}
    return [r for r in rows if not wanted or r.realm.lower() in wanted]


async def _cannot_register(
    client: EslClient, users: Sequence[DirectoryUser], warnings: list[str]
) -> dict[tuple[str, str], str]:
    """Why each of `users` (none registered now) can never register, when it cannot."""
    checkable = []
    for user in users:
        if _SAFE_ARG.match(user.address):
            checkable.append(user)
        else:
            warnings.append(f"user {user.address[:60]!r}: unusual characters, not checked")
    reasons: dict[tuple[str, str], str] = {}
    forbid = await _batched(client, checkable, "param sip-forbid-register")
    rest = []
    for user, answer in zip(checkable, forbid, strict=True):
        if parse.parse_flag(answer):
            reasons[(user.domain.lower(), user.user_id)] = FORBIDDEN
        else:
            rest.append(user)
    empty_allowed = await _batched(client, rest, "param allow-empty-password")
    strict = [u for u, a in zip(rest, empty_allowed, strict=True) if parse.parse_flag(a) is False]
    has_password = await _present(client, strict, "password")
    no_password = [u for u, present in zip(strict, has_password, strict=True) if not present]
    has_hash = await _present(client, no_password, "a1-hash")
    for user, present in zip(no_password, has_hash, strict=True):
        if not present:
            reasons[(user.domain.lower(), user.user_id)] = NO_PASSWORD
    return reasons


async def _batched(client: EslClient, users: Sequence[DirectoryUser], what: str) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(users), BATCH):
        chunk = users[start : start + BATCH]
        answers += await client.api_many([f"user_data {u.address} {what}" for u in chunk])
    return answers


async def _present(client: EslClient, users: Sequence[DirectoryUser], param: str) -> list[bool]:
    found: list[bool] = []
    for start in range(0, len(users), BATCH):
        chunk = users[start : start + BATCH]
        found += await client.presence([f"user_data {u.address} param {param}" for u in chunk])
    return found


async def _queues(client: EslClient, warnings: list[str]) -> list[str]:
    names: list[str] = []
    for command, parser in (
        ("callcenter_config queue list", parse.parse_callcenter_queues),
        ("fifo list", parse.parse_fifo_names),
    ):
        try:
            names += parser(await client.api(command))
        except CommandError as exc:
            if "Command not found" not in exc.reason:  # the module is not loaded: no queues
                warnings.append(f"{command}: {exc.reason}")
        except ParseError as exc:
            warnings.append(f"{command}: {exc}")
    return names


async def _context(client: EslClient, context: str, warnings: list[str]) -> list[DialplanObject]:
    if not _SAFE_ARG.match(context):
        warnings.append(f"dialplan context {context[:60]!r}: unusual characters, not read")
        return []
    try:
        answer = await client.api(f"xml_locate dialplan context name {context}")
        return list(parse.parse_context(answer, context))
    except (CommandError, ParseError) as exc:
        warnings.append(f"dialplan context {context}: {exc}")
        return []


def _tenant_of(queue: str) -> str:
    return queue.rpartition("@")[2].lower() if "@" in queue else ""


def _endpoint(user: DirectoryUser, blocked: dict[tuple[str, str], str]) -> Endpoint:
    return Endpoint(
        name=user.user_id,
        technology="SIP",
        callerid_name=user.callerid_name or None,
        callerid_number=user.callerid_number or None,
        context=user.context or None,
        aors=(user.user_id,),
        inbound_auth=True,
        cannot_register=blocked.get((user.domain.lower(), user.user_id)),
    )


def _contact(row: parse.RegistrationRow, warnings: list[str]) -> Contact:
    agent = row.agent
    if len(agent) > MAX_USER_AGENT:
        warnings.append(
            f"contact {row.uri[:80]}: user agent of {len(agent)} characters cut to {MAX_USER_AGENT}"
        )
        agent = agent[:MAX_USER_AGENT]
    return Contact(
        aor=row.user_id,
        uri=row.uri,
        user_agent=agent,
        source=f"{row.network_ip}:{row.network_port}" if row.network_ip else "",
        status=row.ping_status,
        rtt_usec=parse.ping_time_usec(row.ping_time),
    )


def _check_arg(value: str, what: str) -> None:
    if not _SAFE_ARG.match(value):
        raise ValueError(f"{what} {value[:60]!r} cannot be sent in an ESL command")
