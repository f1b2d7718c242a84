"""What switching features off acts on, from the last count report and the config: the apps'
endpoints, the phones', the endpoints added since the lapse began, the seats whose app shares
an endpoint with a phone (named, since the PBX cannot tell them apart).

While a feature is off, what it acted on is remembered until renewal: the endpoints known when
`add_extensions` went off, and the apps seen while `softphone_app` is off. An app-only seat is
told apart by its registered devices' user agents; once the switch has cut and refused them,
the next count sees no device and would call it a phone, and the switch would be undone."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from agent.config.schema import AgentConfig
from agent.state import StateStore
from drivers.models import FeaturePolicy, SeatRef

KNOWN_ENDPOINTS = "enforcement_known_endpoints"
KNOWN_APPS = "enforcement_known_apps"


def endpoints_of(report: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """(seat endpoint -> role, every endpoint the report names: seats' and excluded ones)."""
    roles: dict[str, str] = {}
    for seat in report["seats"]:
        for member in seat["endpoints"]:
            roles[member["endpoint"]] = member["role"]
    named = set(roles) | {
        x["name"] for x in report.get("excluded", ()) if x["kind"] in ("endpoint", "trunk")
    }
    return roles, named


def shared_app_seats(
    report: Mapping[str, Any], roles: Mapping[str, str]
) -> list[tuple[SeatRef, str]]:
    """Seats with an app registered on a phone's endpoint (and so on its AOR)."""
    shared = []
    for seat in report["seats"]:
        on_phone = sorted(
            {
                d["endpoint"]
                for d in seat["devices"]
                if d["kind"] == "app" and roles.get(d["endpoint"]) == "phone"
            }
        )
        if on_phone and seat["kind"] != "app":
            shared.append((SeatRef(seat["extension"], seat.get("name", "")), on_phone[0]))
    return shared


async def policy(
    store: StateStore,
    cfg: AgentConfig,
    report: Mapping[str, Any] | None,
    lapsed_extensions: bool,
    lapsed_apps: bool = False,
) -> FeaturePolicy | None:
    """The policy from the last count report (None before the first count). While
    `add_extensions` is off, the endpoints known when it went off are remembered: any other
    seat endpoint is new. While `softphone_app` is off, every endpoint seen as an app stays
    one."""
    if report is None:
        return None
    roles, named = endpoints_of(report)
    known_text = await store.get_meta(KNOWN_ENDPOINTS)
    if known_text is None and lapsed_extensions:
        known_text = json.dumps(sorted(named))
        await store.set_meta(KNOWN_ENDPOINTS, known_text)
    known = set(json.loads(known_text)) if known_text else named
    new = sorted(e for e in roles if e not in known)
    seen_apps = {e for e, role in roles.items() if role == "app"}
    if lapsed_apps:
        remembered_text = await store.get_meta(KNOWN_APPS)
        remembered = set(json.loads(remembered_text)) if remembered_text else set()
        if not seen_apps <= remembered:
            await store.set_meta(KNOWN_APPS, json.dumps(sorted(remembered | seen_apps)))
        seen_apps |= remembered & set(roles)
    apps = sorted(e for e in seen_apps if e not in new)
    phones = sorted(e for e, role in roles.items() if e not in seen_apps and e not in new)
    licence = cfg.licence
    return FeaturePolicy(
        app_endpoints=tuple(apps),
        phone_endpoints=tuple(phones),
        new_endpoints=tuple(new),
        shared_app_seats=tuple(shared_app_seats(report, roles)),
        integration_accounts=licence.integration_accounts,
        lan_subnets=licence.lan_subnets,
    )


def forget_known(conn: sqlite3.Connection) -> None:
    """Renewal: the endpoints known at the lapse start, and the apps, are forgotten."""
    with conn:
        conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (KNOWN_ENDPOINTS, KNOWN_APPS))
