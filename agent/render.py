"""Plain-text rendering of control-socket results for technicians (the JSON is for scripts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if minutes or hours or days:
        parts.append(f"{minutes}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def status(result: Mapping[str, Any], *, endpoints: bool = False) -> str:
    d = result["daemon"]
    pbx = result["pbx"]
    lines = [
        f"Daemon     running: pid {d['pid']}, up {duration(d['uptime_seconds'])}, "
        f"version {d['version']}, site {d['site_id']}",
    ]
    last = pbx.get("last_poll")
    good = pbx.get("last_good_poll")
    facts = (good or {}).get("facts")
    where = f"{pbx['driver']} at {pbx['address']}"
    if facts:
        name = f' "{facts["system_name"]}"' if facts.get("system_name") else ""
        lines.append(
            f"PBX        {where}: {facts['vendor'].capitalize()} {facts['version']}{name}, "
            f"up {duration(facts.get('uptime_seconds'))}, "
            f"last reload {facts.get('reload_time') or 'unknown'}"
        )
    else:
        lines.append(f"PBX        {where}: not reached yet")
    if last is None:
        lines.append("Last poll  none yet")
    elif last["ok"]:
        lines.append(
            f"Last poll  ok at {last['finished_at']} ({last['duration_ms']} ms), "
            f"{len(last['endpoints'])} endpoints"
        )
    else:
        lines.append(f"Last poll  FAILED at {last['finished_at']}: {last['error']}")
    counted = result.get("counting")
    if counted:
        lines.append(
            f"Users      {counted['billable']} billable (counted {counted['at']}), "
            f"{counted['stale']} stale, {counted['warnings']} warnings"
        )
    telemetry = result.get("telemetry") or {}
    if telemetry.get("enabled"):
        link = (
            "connected" if telemetry["connected"] else f"NOT connected ({telemetry['last_error']})"
        )
        lines.append(
            f"Telemetry  MQTT {telemetry['broker']} {link}, "
            f"{telemetry['outbox_depth']} messages waiting"
        )
    elif "telemetry" in result:
        lines.append("Telemetry  MQTT off (events kept locally: pbx-agent events)")
    if "tasks" in result:
        lines.append(f"Tasks      {tasks(result['tasks'])}")
    licence = result.get("licence") or {}
    if licence.get("features"):
        wanted_off = [f for f, s in licence["features"].items() if s["wanted"] == "off"]
        if wanted_off:
            wrong = licence.get("not_switched") or []
            lines.append(
                f"Features   {len(wanted_off)} wanted off ({licence['state']}); "
                + (f"NOT switched: {', '.join(wrong)}" if wrong else "all switched")
            )
    problems = sorted(k for k, v in (result.get("health") or {}).items() if v == "problem")
    if "health" in result:
        lines.append(
            f"Health     {'problems: ' + ', '.join(problems) if problems else 'no problem'}"
        )
    if endpoints and good:
        lines.append("")
        lines.append(endpoint_table(good["endpoints"]))
    return "\n".join(lines)


def tasks(states: Mapping[str, Mapping[str, Any]]) -> str:
    """Every supervised task and its state; a task not running is marked FAIL."""
    parts = []
    for name, task in states.items():
        if task["state"] == "running":
            parts.append(f"{name} running")
        else:
            parts.append(
                f"{name} FAIL {task['state']} ({task['restarts']} restarts, "
                f"last: {task['last_error']})"
            )
    return ", ".join(parts) or "none"


def endpoint_table(endpoints: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            e["name"],
            e["technology"],
            e["device_state"],
            ",".join(e.get("aors", ())),
            str(len(e.get("contacts", ()))),
        ]
        for e in endpoints
    ]
    return table(["ENDPOINT", "TECH", "STATE", "AORS", "CONTACTS"], rows)


def push_plan(plan: Mapping[str, Any]) -> str:
    """What restoring a backup onto the PBX changes: new files, changed files with diffs,
    files only on the PBX (kept)."""
    lines = [
        f"backup {plan['id']} against the PBX: {len(plan['added'])} new, "
        f"{len(plan['changed'])} changed, {plan['unchanged']} unchanged, "
        f"{len(plan['only_on_pbx'])} only on the PBX (kept)"
    ]
    lines += [f"  new      {path}" for path in plan["added"]]
    for path in plan["changed"]:
        lines.append(f"  changed  {path}")
        diff = plan["diffs"].get(path)
        lines += ["    " + line for line in diff.splitlines()] if diff else ["    (binary)"]
    lines += [f"  kept     {path}" for path in plan["only_on_pbx"]]
    return "\n".join(lines)


OFFSITE_LABELS = (  # the first word of a catalog row's off-site state -> its table label
    ("ok", "copied"),
    ("failed:", "MISSING"),
    ("queued:", "queued"),
    ("off:", "off (licence)"),
    ("not kept", "not kept"),
    ("deleting", "deleting"),
    ("orphan:", "orphan"),
)


def backup_list(rows: Sequence[Mapping[str, Any]]) -> str:
    """The catalog as a table with each backup's off-site copy; the reasons behind the
    off-site states that have one follow the table, once each."""
    table_rows, reasons = [], []
    for r in rows:
        offsite = r.get("offsite") or ""
        label = next((short for word, short in OFFSITE_LABELS if offsite.startswith(word)), "-")
        detail = offsite.split(":", 1)[1].strip() if ":" in offsite else ""
        if detail and label != "copied" and (label, detail) not in reasons:
            reasons.append((label, detail))
        table_rows.append(
            [
                r["id"],
                r["status"],
                str(r["files"] or "-"),
                str(r["size"] or "-"),
                {1: "changed", 0: "unchanged"}.get(r["changed"], "-"),
                label,
                (r["error"] or "")[:60],
            ]
        )
    headers = ["ID", "STATUS", "FILES", "BYTES", "CONTENT", "OFFSITE", "ERROR"]
    lines = [table(headers, table_rows)]
    lines += [f"off-site {label}: {detail}" for label, detail in reasons]
    return "\n".join(lines)


def event_line(event: Mapping[str, Any]) -> str:
    """One health event: time, severity, kind, check[/subject], summary."""
    check = event.get("check", "?")
    if event.get("subject"):
        check = f"{check}/{event['subject']}"
    return (
        f"{event.get('ts', '?')}  {event.get('severity', '?'):<8} "
        f"{event.get('kind', '?'):<8} {check}: {event.get('summary', '')}"
    )


def licence(result: Mapping[str, Any]) -> str:
    """The licence state in a few lines, then each feature: wanted and actual on the PBX."""
    lines = [f"Licence    {result['state']}: {result['reason']}"]
    token = result.get("licence")
    if token:
        lines.append(
            f"Token      serial {token['serial']}, subscription {token['subscription_id']}, "
            f"expires {token['expires_at']}, max {token['max_users']} users"
        )
    if result.get("last_error"):
        lines.append(f"Server     last check failed: {result['last_error']}")
    enforcement = result.get("enforcement")
    if enforcement:
        lines.append("Features   wanted and actual on the PBX:")
        for name, state in enforcement["features"].items():
            lines.append(f"  {name:<17} wanted {state['wanted']:<3}  actual {state['actual']}")
    else:
        off = [name for name, on in result["features"].items() if not on]
        lines.append(f"Features   wanted {'off: ' + ', '.join(off) if off else 'all on'}")
    return "\n".join(lines)


def features(rows: Sequence[Mapping[str, Any]]) -> str:
    """`pbx-agent features`: wanted and actual per feature and how it is switched; below the
    table, each feature that is not as wanted with its reason (and what it left out, by name)."""
    short = {"not_switched": "NOT SWITCHED", "pending": "pending"}
    table_rows = [
        [r["feature"], r["wanted"], short.get(r["state"], r["actual"]), r["how"]] for r in rows
    ]
    lines = [table(["FEATURE", "WANTED", "ACTUAL", "HOW"], table_rows)]
    for row in rows:
        if row["state"] in short:
            lines.append(f"{row['feature']}: {row['actual']}")
    if rows:
        lines.append(rows[0]["why"])
    return "\n".join(lines)


def inventory(inv: Mapping[str, Any]) -> str:
    """The endpoints with their devices, then each endpoint's effective options, then the
    counts and the warnings (live/file differences among them)."""
    by_aor: dict[str, list[Mapping[str, Any]]] = {}
    for contact in inv["contacts"]:
        by_aor.setdefault(contact["aor"], []).append(contact)
    rows = []
    for e in inv["endpoints"]:
        contacts = [c for aor in e["aors"] for c in by_aor.get(aor, [])]
        agents = "; ".join(c["user_agent"][:30] or c["uri"][:30] for c in contacts) or "-"
        cid = e["callerid_number"] or "-"
        rows.append([e["name"], e["technology"], cid, ",".join(e["aors"]) or "-", agents])
    lines = [table(["ENDPOINT", "TECH", "CID", "AORS", "DEVICES"], rows), ""]
    lines.append("Effective options (as Asterisk applies them; (+) additions included):")
    for e in inv["endpoints"]:
        options = " ".join(f"{k}={v}" for k, v in e.get("options", ())) or "(none read)"
        lines.append(f"  {e['name']} ({e['technology']}): {options}")
    lines.append(
        f"\n{len(inv['endpoints'])} endpoints, {len(inv['contacts'])} registered "
        f"contacts, {len(inv['mailboxes'])} mailboxes, {len(inv['queues'])} queues, "
        f"{len(inv['dialplan'])} dialplan objects"
    )
    lines += [f"WARNING {w}" for w in inv["warnings"]]
    return "\n".join(lines)
