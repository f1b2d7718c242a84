"""Proofs on what FreeSWITCH serves, never on a reload's answer: ``user_data`` of the users a
switch covers, and ``acl`` of FreeSWITCH itself (an address of each site network passes, the
off-site devices' addresses and, for the refuse-all list, any address do not)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching import live
from drivers.freeswitch.switching.lines import (
    AUTH_ACL,
    REFUSE_ALL,
    acl_value,
    domains_of,
    user_of,
)
from drivers.models import Switch, SwitchOutcome, SwitchState

LIGHT_PROOF_USERS = 20  # users of a domain checked after every poll (all when thorough)


async def prove(
    esl: EslClient, settings: EslSettings, switches: Sequence[Switch], *, thorough: bool
) -> dict[Switch, SwitchOutcome]:
    """IN_EFFECT, or ABSENT with what FreeSWITCH showed instead."""
    result: dict[Switch, SwitchOutcome] = {}
    stopped = [s for s in switches if user_of(s)]
    if stopped:
        addresses = [user_of(s) for s in stopped]
        values = await live.user_values(esl, addresses, "param", AUTH_ACL)
        # The list must really be unknown to FreeSWITCH: no address passes it.
        probes = await live.acl_allows(
            esl, [("127.0.0.1", REFUSE_ALL), ("::1", REFUSE_ALL)]
        )
        for switch, value in zip(stopped, values, strict=True):
            refused = value == REFUSE_ALL and not any(probes)
            result[switch] = SwitchOutcome(
                switch,
                SwitchState.IN_EFFECT if refused else SwitchState.ABSENT,
                f"user_data {user_of(switch)} param {AUTH_ACL}: {value or 'unset'}"
                + ("; acl: no address passes" if refused else ""),
            )
    for switch in (s for s in switches if domains_of(s)):
        result[switch] = await _prove_acl(esl, settings, switch, thorough)
    return result

async def _prove_acl(
    esl: EslClient, settings: EslSettings, switch: Switch, thorough: bool
) -> SwitchOutcome:
    value = acl_value(switch)
    checked = refused = 0
    for domain in domains_of(switch):
        users = await live.users_of(esl, domain)
        if not thorough:
            users = users[:LIGHT_PROOF_USERS]
        addresses = [f"{u}@{domain}" for u in users if live.safe(u)]
        values = await live.user_values(esl, addresses, "param", AUTH_ACL)
        bare = [a for a, v in zip(addresses, values, strict=True) if not v]
        if bare:
            return SwitchOutcome(
                switch,
                SwitchState.ABSENT,
                f"user_data {bare[0]} param {AUTH_ACL}: unset (the directory FreeSWITCH "
                "serves does not show the agent's auth-acl)",
            )
        checked += sum(1 for v in values if v == value)
        refused += sum(1 for v in values if v == REFUSE_ALL)
    if not checked:
        if refused:  # every user read is refused by a per-user switch of the agent's
            return SwitchOutcome(
                switch, SwitchState.IN_EFFECT, f"user_data: every user has {REFUSE_ALL}"
            )
        return SwitchOutcome(
            switch, SwitchState.ABSENT, f"no user shows auth-acl {value} after reloadxml"
        )
    problem = await _acl_answers(esl, settings, value, domains_of(switch))
    if problem:
        return SwitchOutcome(switch, SwitchState.ABSENT, problem)
    return SwitchOutcome(
        switch,
        SwitchState.IN_EFFECT,
        f"user_data: {checked} user(s) with auth-acl {value}; acl: on-site passes, off-site "
        "refused",
    )

async def _acl_answers(
    esl: EslClient, settings: EslSettings, value: str, domains: Sequence[str]
) -> str | None:
    """`acl` on FreeSWITCH itself: an address of each site network passes, the off-site
    devices of these domains do not."""
    nets = [ipaddress.ip_network(v, strict=False) for v in value.split(",")]
    on_site = [str(next(iter(n.hosts()), n.network_address)) for n in nets]
    wanted = {d.lower() for d in domains}
    away = sorted(
        {
            d.row.network_ip
            for d in await live.devices(esl, settings)
            if d.row.realm.lower() in wanted and _outside(d.row.network_ip, nets)
        }
    )
    checks = [(ip, value) for ip in on_site] + [(ip, value) for ip in away]
    answers = await live.acl_allows(esl, checks)
    for (ip, _), allowed in zip(checks, answers, strict=True):
        if (ip in on_site) != allowed:
            return f"acl {ip} {value}: {'true' if allowed else 'false'}"
    return None


def _outside(address: str, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return live.safe(address) and not any(ip.version == n.version and ip in n for n in nets)
