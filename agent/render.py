"""Plain-text rendering of control-socket results for technicians (the JSON is for scripts)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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


def size(nbytes: float | None) -> str:
    """A byte count for people: 512 B, 12.3 kB, 4.1 MB, 1.2 GB (powers of 1000, as `ls -h
    --si` and rich's columns)."""
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration_short(seconds: float | None) -> str:
    """About how long, in the largest sensible unit: 45 s, 12 min, 3 h 5 min, 2 days."""
    if seconds is None:
        return "unknown"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{s // 86400} days"


def when(
    ts: str | datetime | None, *, now: datetime | None = None, relative: bool = True
) -> str:
    """A moment for people, in one format everywhere: local time to the second and how long
    ago, e.g. ``2026-11-25 02:30:05 (12 min ago)``. Machine output (--json, logs) keeps ISO
    8601 UTC."""
    if ts is None or ts == "":
        return "never"
    try:
        moment = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
    except ValueError:
        return str(ts)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if not relative:
        return local
    ago = ((now or datetime.now(UTC)) - moment).total_seconds()
    ago_text = f"{duration_short(ago)} ago" if ago >= 0 else f"in {duration_short(-ago)}"
    return f"{local} ({ago_text})"


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, with an ellipsis when something was cut (so a cut
    firmware version is never read as a whole one)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def json_line(value: Any) -> str:
    """One JSON Lines record (--jsonl)."""
    return json.dumps(value, sort_keys=True, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def status(
    result: Mapping[str, Any], *, endpoints: bool = False, now: datetime | None = None
) -> str:
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
        reload = when(facts["reload_time"], now=now) if facts.get("reload_time") else "unknown"
        lines.append(
            f"PBX        {where}: {facts['vendor'].capitalize()} {facts['version']}{name}, "
            f"up {duration(facts.get('uptime_seconds'))}, last reload {reload}"
        )
    else:
        lines.append(f"PBX        {where}: not reached yet")
    if last is None:
        lines.append("Last poll  none yet")
    elif last["ok"]:
        lines.append(
            f"Last poll  ok {when(last['finished_at'], now=now)}, {last['duration_ms']} ms, "
            f"{len(last['endpoints'])} endpoints"
        )
    else:
        lines.append(f"Last poll  FAILED {when(last['finished_at'], now=now)}: {last['error']}")
    counted = result.get("counting")
    if counted:
        lines.append(
            f"Users      {counted['billable']} billable, {counted['stale']} stale, "
            f"{counted['warnings']} warnings; counted {when(counted['at'], now=now)}"
        )
    if "backup" in result:
        lines.append(f"Backups    {backup_line(result['backup'], now=now)}")
    if "licence" in result:
        lines.append(f"Licence    {licence_line(result['licence'], now=now)}")
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
    if "problems" in result:
        lines += problem_lines(result["problems"], now=now)
    if endpoints and good:
        lines.append("")
        lines.append(endpoint_table(good["endpoints"]))
    return "\n".join(lines)


def backup_line(backup: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """The newest backup, and the newest good one when the newest failed."""
    last, good = backup.get("last"), backup.get("last_good")
    off = "" if backup.get("enabled") else "scheduled backups off; "
    if last is None:
        return "off ([backup] enabled = false)" if off else "none yet"
    if last["status"] == "ok":
        return (
            f"{off}last {last['id']} ok {when(last['finished_at'], now=now)}, "
            f"{last['files']} files, {size(last['size'])}"
        )
    text = f"{off}last {last['id']} FAILED {when(last['finished_at'], now=now)}: {last['error']}"
    if good is not None:
        text += f"; last good {when(good['finished_at'], now=now)}"
    return text


def licence_line(licence: Mapping[str, Any], *, now: datetime | None = None) -> str:
    if not licence.get("enabled", True):
        return "no licence server configured (nothing is switched)"
    text = f"{licence['state']}: {licence['reason']}"
    if licence.get("last_checked"):
        text += f" (checked {when(licence['last_checked'], now=now)})"
    if licence.get("last_error"):
        text += f"; last check failed: {licence['last_error']}"
    return text


def problem_lines(
    problems: Sequence[Mapping[str, Any]], *, now: datetime | None = None
) -> list[str]:
    """Open health problems, oldest first: severity, check, since when, what."""
    if not problems:
        return ["Health     no open problem"]
    lines = [f"Health     {len(problems)} open problem{'s' if len(problems) > 1 else ''}:"]
    for p in problems:
        severity = str(p.get("severity") or "warning").upper()
        lines.append(
            f"  {severity:<8} {p['key']} since {when(p['since'], now=now)}: "
            f"{p.get('summary') or ''}".rstrip()
        )
    return lines


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
                size(r["size"]) if r["size"] else "-",
                {1: "changed", 0: "unchanged"}.get(r["changed"], "-"),
                label,
                clip(r["error"] or "", 60),
            ]
        )
    headers = ["ID", "STATUS", "FILES", "SIZE", "CONTENT", "OFFSITE", "ERROR"]
    lines = [table(headers, table_rows)]
    lines += [f"off-site {label}: {detail}" for label, detail in reasons]
    return "\n".join(lines)


def event_line(event: Mapping[str, Any]) -> str:
    """One health event: time, severity, kind, check[/subject], summary."""
    check = event.get("check", "?")
    if event.get("subject"):
        check = f"{check}/{event['subject']}"
    return (
        f"{when(event.get('ts'), relative=False)}  {event.get('severity', '?'):<8} "
        f"{event.get('kind', '?'):<8} {check}: {event.get('summary', '')}"
    )


def licence(result: Mapping[str, Any]) -> str:
    """The licence state in a few lines, then each feature: wanted and actual on the PBX."""
    lines = [f"Licence    {result['state']}: {result['reason']}"]
    token = result.get("licence")
    if token:
        lines.append(
            f"Token      serial {token['serial']}, subscription {token['subscription_id']}, "
            f"expires {when(token['expires_at'])}, max {token['max_users']} users"
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
        agents = "; ".join(clip(c["user_agent"] or c["uri"], 40) for c in contacts) or "-"
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
