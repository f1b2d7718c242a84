"""`pbx-agent count --explain`: one line per seat and per excluded object, then the totals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.counting.peers import PEER_RULE


def _devices(seat: Mapping[str, Any]) -> str:
    if not seat["devices"]:
        return "no device registered"
    return ", ".join(
        f"{d['kind']} {d['user_agent'][:40] or d['uri']} on {d['endpoint']}"
        for d in seat["devices"]
    )


def _merge(seat: Mapping[str, Any]) -> str:
    rules = []
    for member in seat["endpoints"][1:]:
        also = f" (also {', '.join(member['also'])})" if member["also"] else ""
        rules.append(f"{member['endpoint']} merged by {member['rule']}{also}")
    extra = [d for d in seat["devices"] if d["rule"] == "same_aor"]
    if extra:
        rules.append(f"{len(extra)} more device(s) on the same AOR")
    rules += [e for member in seat["endpoints"] for e in member.get("evidence", ())]
    return "; ".join(rules) or "single endpoint"


def _seat_line(seat: Mapping[str, Any]) -> str:
    stale = " STALE" if seat["stale"] else ""
    name = f" {seat['name']!r}" if seat["name"] else ""
    technology = seat["endpoints"][0].get("technology", "PJSIP")
    tech = f" ({technology})" if technology != "PJSIP" else ""
    head = f"SEAT {seat['extension']}{name} [{seat['kind']}]{tech}{stale}"
    return f"{head}: {_devices(seat)}; {_merge(seat)}"


def _excluded_line(item: Mapping[str, Any]) -> str:
    return f"NOT COUNTED {item['kind']} {item['name']}: {item['reason']}"


def _has_peers(report: Mapping[str, Any]) -> bool:
    return any(
        m.get("technology", "PJSIP") != "PJSIP" for s in report["seats"] for m in s["endpoints"]
    ) or any(x["kind"] == "trunk" and " peer" in x["reason"] for x in report["excluded"])


def _by_tenant(report: Mapping[str, Any]) -> list[str]:
    """A multi-tenant PBX: each tenant's seats and objects, then what no tenant owns."""
    parts = ", ".join(f"{t['tenant']} {t['billable']}" for t in report["tenants"])
    lines = [f"Billable users (seats): {report['billable']} ({parts})"]
    for tenant in report["tenants"]:
        name = tenant["tenant"]
        lines += ["", f"Tenant {name}: {tenant['billable']} seats"]
        lines += [_seat_line(s) for s in report["seats"] if s.get("tenant") == name]
        lines += [_excluded_line(x) for x in report["excluded"] if x.get("tenant") == name]
    shared = [x for x in report["excluded"] if not x.get("tenant")]
    if shared:
        lines += ["", "Shared by every tenant:", *(_excluded_line(x) for x in shared)]
    return lines


def explain(report: Mapping[str, Any]) -> str:
    if report.get("tenants"):
        lines = _by_tenant(report)
    else:
        lines = [f"Billable users (seats): {report['billable']}", ""]
        lines += [_seat_line(seat) for seat in report["seats"]]
        lines.append("")
        lines += [_excluded_line(item) for item in report["excluded"]]
    if _has_peers(report):
        lines += ["", f"RULE {PEER_RULE}"]
    if report["warnings"]:
        lines.append("")
        lines += [f"WARNING {w}" for w in report["warnings"]]
    totals = report["totals"]
    lines += [
        "",
        f"Total: {report['billable']} seats ({totals['devices_registered']} devices registered), "
        f"{totals['excluded']} objects not counted, {totals['stale']} stale seats, "
        f"{len(report['warnings'])} warnings",
    ]
    return "\n".join(lines)


def summary(report: Mapping[str, Any]) -> str:
    stale = (
        f", {len(report['stale'])} stale ({', '.join(report['stale'])})" if report["stale"] else ""
    )
    return f"{report['billable']} billable users{stale}; {len(report['warnings'])} warnings"
