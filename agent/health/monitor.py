"""The health checks of SPEC section 5, fed by the PBX poller (after every poll), the backup
service (after every run) and a local timer (`health.interval`), raising events through
telemetry. Check states live in SQLite, so a problem raised before a restart is not raised
again after it, and its resolution still refers to it.

Checks, by key: `pbx_reachable` (critical), `pbx_login` (critical: the PBX answers and
refuses the agent's credentials), `ami_slow`, `trunk:{name}` per outbound
registration, `trunks_all` (critical: every trunk down), `phones_unreachable`, `backup_age`,
`backup_failed`, `offsite_failed`, `outbox_backlog`, `disk_space`, `agent_task_failed:{task}`
(a long-running task of the daemon failed; raised by its supervisor), and
`feature_switch:{feature}` (critical: a feature the licence wants off is not, or one it wants
on is not restored; raised by the licence enforcement). One-off notices: PBX restarted or
reloaded, PBX version changed, system clock jumped, copies removed from the archive host by
retention (`offsite_pruned`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.backup.offsite_sync import OffsiteReport
from agent.config.schema import AgentConfig
from agent.health.checks import CheckState, Transition
from agent.pbx_poller import PollResult
from agent.state import StateStore
from agent.telemetry.service import Outgoing, Telemetry
from drivers.errors import DriverError

log = structlog.get_logger(__name__)

UNREACHABLE_STATES = {"unavailable", "unknown", "invalid"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation of one check."""

    key: str
    healthy: bool
    severity: str
    summary: str
    details: Mapping[str, Any] | None = None


class HealthMonitor:
    def __init__(self, store: StateStore, cfg: AgentConfig, telemetry: Telemetry) -> None:
        self._store = store
        self._cfg = cfg
        self._telemetry = telemetry
        self._checks: dict[str, CheckState] = {}
        self._last_facts: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        for key, state, problem_id in await self._store.call(_load_states):
            self._checks[key] = CheckState(key, self._threshold(key), state, problem_id)
        facts = await self._store.meta_with_prefix("pbx_fact_")
        self._last_facts = {k.removeprefix("pbx_fact_"): v for k, v in facts.items()}

    def states(self) -> dict[str, str]:
        return {key: check.state for key, check in sorted(self._checks.items())}

    async def open_problems(self) -> list[dict[str, Any]]:
        """The checks in `problem` now: key, since when, severity and the problem's summary."""
        return await self._store.call(_open_problems)

    def _threshold(self, key: str) -> int:
        # A failed backup or copy is one run, hours apart, and a failed agent task is one
        # crash (the supervisor damps its restarts): report them at once. So is a feature the
        # licence wants off that is not (feature_switch:NAME): it is a fact, not a flap.
        once = (
            key in ("backup_failed", "offsite_failed")
            or key.startswith("agent_task_failed:")
            or key.startswith("feature_switch:")
        )
        return 1 if once else self._cfg.health.flap_count

    async def observe(self, finding: Finding) -> None:
        async with self._lock:
            check = self._checks.get(finding.key)
            if check is None:
                check = self._checks[finding.key] = CheckState(
                    finding.key, self._threshold(finding.key)
                )
            transition = check.observe(finding.healthy)
            if transition is not None:
                await self._raise(check, transition, finding)

    async def _raise(self, check: CheckState, transition: Transition, finding: Finding) -> None:
        """One `problem` event (remembered, so its resolution can name it) or `resolved`,
        stored in one transaction with the check's new state."""
        name, _, subject = finding.key.partition(":")
        problem = transition.to == "problem"
        message = self._telemetry.event_message(
            "problem" if problem else "resolved",
            name,
            finding.severity,
            finding.summary,
            subject=subject or None,
            problem_id=None if problem else transition.problem_id,
            details=finding.details,
        )
        check.problem_id = message["id"] if problem else None
        state = functools.partial(
            _put_state, key=check.key, state=check.state, problem_id=check.problem_id
        )
        await self._telemetry.commit(state, Outgoing("event", message, finding.severity))

    async def notice(self, check: str, severity: str, summary: str, **details: Any) -> None:
        await self._telemetry.event("notice", check, severity, summary, details=details or None)

    # -- the PBX, after every poll ---------------------------------------------------------

    async def on_poll(self, result: PollResult) -> None:
        health = self._cfg.health
        if not result.ok and result.error_kind == "login_refused":
            # The PBX answered: it is reachable, and refuses the agent's credentials.
            await self.observe(Finding("pbx_reachable", True, "critical", "PBX reachable again"))
            await self.observe(
                Finding(
                    "pbx_login",
                    False,
                    "critical",
                    f"PBX refuses the agent's login (check the user and secret in "
                    f"[pbx.{self._cfg.pbx.table}]): {result.error}",
                )
            )
            return
        if not result.ok:
            await self.observe(
                Finding("pbx_reachable", False, "critical", f"PBX unreachable: {result.error}")
            )
            return
        await self.observe(Finding("pbx_reachable", True, "critical", "PBX reachable again"))
        await self.observe(Finding("pbx_login", True, "critical", "PBX accepts the agent's login"))
        slow = result.duration_ms > health.ami_slow_ms
        await self.observe(
            Finding(
                "ami_slow",
                not slow,
                "warning",
                f"PBX answers slowly: {result.duration_ms} ms for a poll "
                f"(threshold {health.ami_slow_ms} ms)"
                if slow
                else f"PBX answers in {result.duration_ms} ms again",
                {"duration_ms": result.duration_ms},
            )
        )
        await self._facts_changed(result)
        await self._trunks(result)
        await self._phones(result)

    async def _facts_changed(self, result: PollResult) -> None:
        facts = result.facts
        if facts is None:
            return
        now = {
            "version": facts.version,
            "startup": facts.startup_time.isoformat() if facts.startup_time else "",
            "reload": facts.reload_time.isoformat() if facts.reload_time else "",
        }
        before = self._last_facts
        if before:
            if before.get("version") != now["version"]:
                await self.notice(
                    "pbx_version",
                    "info",
                    f"PBX version changed from {before.get('version')} to {now['version']}",
                    before=before.get("version"),
                    after=now["version"],
                )
            if now["startup"] and before.get("startup") not in ("", now["startup"]):
                await self.notice("pbx_restarted", "warning", f"PBX restarted at {now['startup']}")
            elif now["reload"] and before.get("reload") not in ("", now["reload"]):
                await self.notice("pbx_reloaded", "info", f"PBX reloaded at {now['reload']}")
        if now != before:
            self._last_facts = now
            await self._store.set_meta_many({f"pbx_fact_{k}": v for k, v in now.items()})

    async def _trunks(self, result: PollResult) -> None:
        registrations = result.registrations
        for reg in registrations:
            up = reg.status.lower() == "registered"
            await self.observe(
                Finding(
                    f"trunk:{reg.name}",
                    up,
                    "warning",
                    f"trunk {reg.name} is {'registered' if up else 'not registered'} "
                    f"({reg.status} at {reg.server_uri})",
                    {"status": reg.status, "server": reg.server_uri},
                )
            )
        if registrations:
            down = [r.name for r in registrations if r.status.lower() != "registered"]
            await self.observe(
                Finding(
                    "trunks_all",
                    len(down) < len(registrations),
                    "critical",
                    "no trunk is registered: no outside calls"
                    if len(down) == len(registrations)
                    else "at least one trunk is registered again",
                    {"down": down},
                )
            )

    async def _phones(self, result: PollResult) -> None:
        trunks = {r.endpoint for r in result.registrations if r.endpoint}
        phones = [e for e in result.endpoints if e.name not in trunks]
        if not phones:
            return
        unreachable = [e.name for e in phones if e.device_state.lower() in UNREACHABLE_STATES]
        share = len(unreachable) / len(phones)
        limit = self._cfg.health.phones_unreachable_share
        await self.observe(
            Finding(
                "phones_unreachable",
                share <= limit,
                "warning",
                f"{len(unreachable)} of {len(phones)} phone endpoints unreachable "
                f"({share:.0%}, threshold {limit:.0%})",
                {"unreachable": unreachable[:50], "phones": len(phones)},
            )
        )

    # -- backups, after every run ----------------------------------------------------------

    async def on_backup(self, row: Mapping[str, Any]) -> None:
        ok = row.get("status") == "ok"
        await self.observe(
            Finding(
                "backup_failed",
                ok,
                "warning",
                f"backup {row.get('id')} ok" if ok else f"backup failed: {row.get('error')}",
                {"id": row.get("id")},
            )
        )

    async def on_offsite(self, report: OffsiteReport) -> None:
        """After every off-site sync. `offsite_failed` is a problem while an upload or removal
        fails, and resolved only when the archive host holds every backup retention keeps
        there; a catch-up in progress (no failure, copies still queued) changes nothing, nor
        does a licence lapse (the copies stop by policy, told as `licence` messages)."""
        if report.mode != "active":
            return
        details = {
            "wanted": report.wanted,
            "held": report.held,
            "missing": report.missing[:50],
            "pending_removals": report.pending[:50],
            "cause": report.cause,
        }
        if report.error is not None:
            what = (
                f"{len(report.missing)} of {report.wanted} backups kept off-site are missing "
                "on the archive host"
                if report.missing
                else "the archive host is not healthy"
            )
            await self.observe(
                Finding("offsite_failed", False, "warning", f"{what}: {report.error}", details)
            )
        elif report.complete:
            await self.observe(
                Finding(
                    "offsite_failed",
                    True,
                    "warning",
                    f"the archive host holds all {report.wanted} backups kept off-site",
                    details,
                )
            )
        if report.deleted:
            await self.notice(
                "offsite_pruned",
                "info",
                f"retention removed {len(report.deleted)} copies from the archive host",
                removed=report.deleted[:50],
            )

    # -- local checks, on a timer ----------------------------------------------------------

    async def run_local(
        self,
        last_good_backup: Callable[[], Awaitable[datetime | None]] | None = None,
        disk: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        """Every `health.interval`: backup age, outbox backlog, clock; the disk less often.
        `last_good_backup` is an async callable giving the newest good backup's time;
        `disk` a blocking callable giving (total, free) bytes of the PBX's disk."""
        health = self._cfg.health
        wall, mono = time.time(), time.monotonic()
        next_disk = 0.0
        while True:
            await asyncio.sleep(health.interval)
            now_wall, now_mono = time.time(), time.monotonic()
            jump = (now_wall - wall) - (now_mono - mono)
            wall, mono = now_wall, now_mono
            if abs(jump) > health.clock_jump_seconds:
                await self.notice(
                    "clock_jump",
                    "warning",
                    f"system clock jumped {'forward' if jump > 0 else 'back'} by {abs(jump):.0f} s",
                    seconds=round(jump, 1),
                )
            await self._outbox_backlog()
            if last_good_backup is not None:
                await self._backup_age(await last_good_backup())
            if disk is not None and now_mono >= next_disk:
                next_disk = now_mono + health.disk_interval
                await self._disk(disk)

    async def _outbox_backlog(self) -> None:
        outbox = self._telemetry.outbox
        if outbox is None:
            return
        limit = self._cfg.health.outbox_backlog
        await self.observe(
            Finding(
                "outbox_backlog",
                outbox.depth <= limit,
                "warning",
                f"{outbox.depth} messages waiting to be sent (threshold {limit})",
                {"depth": outbox.depth},
            )
        )

    async def _backup_age(self, last: datetime | None) -> None:
        limit = timedelta(hours=self._cfg.health.backup_max_age_hours)
        if last is None:
            return  # no backup yet: the catch-up at start is running or failed (reported)
        age = datetime.now(UTC) - last
        await self.observe(
            Finding(
                "backup_age",
                age <= limit,
                "warning",
                f"last good backup is {age.total_seconds() / 3600:.1f} h old "
                f"(allowed {self._cfg.health.backup_max_age_hours:g} h)",
                {"last_good": last.isoformat()},
            )
        )

    async def _disk(self, disk: Callable[[], tuple[int, int]]) -> None:
        try:
            total, free = await asyncio.to_thread(disk)
        except DriverError as exc:
            log.info("disk check over SSH failed", error=str(exc))
            return
        percent = 100.0 * free / total if total else 100.0
        limit = self._cfg.health.disk_min_free_percent
        await self.observe(
            Finding(
                "disk_space",
                percent >= limit,
                "warning",
                f"PBX disk {percent:.1f}% free (threshold {limit:g}%)",
                {"free_bytes": free, "total_bytes": total},
            )
        )


def _load_states(conn: sqlite3.Connection) -> list[tuple[str, Any, str | None]]:
    return [
        (str(k), s, p)
        for k, s, p in conn.execute("SELECT key, state, problem_id FROM health_checks")
    ]


def _open_problems(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT h.key, h.since, e.severity, e.body FROM health_checks h "
        "LEFT JOIN events e ON e.id = h.problem_id WHERE h.state = 'problem' ORDER BY h.since"
    ).fetchall()
    problems = []
    for key, since, severity, body in rows:
        event = json.loads(body) if body else {}
        problems.append(
            {"key": key, "since": since, "severity": severity, "summary": event.get("summary")}
        )
    return problems


def _put_state(conn: sqlite3.Connection, key: str, state: str, problem_id: str | None) -> None:
    """A check's state (inside the transaction of the event that changed it)."""
    conn.execute(
        "INSERT INTO health_checks (key, state, since, problem_id) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET state = excluded.state, since = excluded.since, "
        "problem_id = excluded.problem_id",
        (key, state, datetime.now(UTC).isoformat(), problem_id),
    )
