"""The licence in the daemon: asks the licence server every `licence.interval` (and on
`licence refresh` or the `licence-refresh` command), keeps the last valid token in the state
store, re-evaluates the state as time passes, and tells its listeners (enforcement) the
features that must be on. Every state change and reminder is a `licence` message and an event.

Time comes from `clock` so tests can move it; nothing here sleeps on the wall clock's word.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.config.schema import AgentConfig
from agent.errors import LicenceError
from agent.health.monitor import Finding, HealthMonitor
from agent.licence.client import LicenceServerUnreachable, fetch
from agent.licence.state import Evaluation, evaluate
from agent.licence.token import Licence, TokenRejected, verify_token
from agent.listeners import Listener, notify
from agent.state import StateStore
from agent.state.store import put_meta
from agent.telemetry.service import Outgoing, Telemetry
from agent.usage.keys import public_keys

log = structlog.get_logger(__name__)

SEVERITY = {"unknown": "warning", "active": "info", "expiring": "warning", "grace": "warning"}


def utc_now() -> datetime:
    return datetime.now(UTC)


class LicenceService:
    def __init__(
        self,
        store: StateStore,
        cfg: AgentConfig,
        telemetry: Telemetry,
        health: HealthMonitor,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._telemetry = telemetry
        self._health = health
        self._clock = clock
        self._keys = public_keys(cfg.licence.keys)
        self._lock = asyncio.Lock()
        self.licence: Licence | None = None
        self.evaluation = evaluate(None, now=clock(), server_answered=False, grace_days=0)
        self.server_answered = False
        self.last_error: str | None = None
        self.last_checked: datetime | None = None
        self.server_date: str | None = None
        self._meta: dict[str, str] = {}
        self._told = False
        # Called with each evaluation whose features differ from the last one told.
        self.listeners: list[Listener[Evaluation]] = []

    @property
    def state(self) -> str:
        return self.evaluation.state

    async def open(self) -> None:
        self._meta = await self._store.meta_with_prefix("licence_")
        cached = self._meta.get("licence_token")
        if cached:
            try:
                self.licence = verify_token(cached, self._keys, self._cfg.site_id, now=None)
            except TokenRejected as exc:
                log.warning("cached licence token no longer verifies; ignored", reason=str(exc))
        await self.reevaluate()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(LicenceError):
                await self.refresh()
            await asyncio.sleep(self._cfg.licence.interval)

    # -- asking the server -----------------------------------------------------------------

    async def refresh(self) -> dict[str, Any]:
        """Ask the server now; accept a valid token, refuse anything else; re-evaluate."""
        lic = self._cfg.licence
        async with self._lock:
            self.last_checked = self._clock()
            try:
                answer = await asyncio.to_thread(
                    fetch, lic.url, self._cfg.site_id, timeout=lic.timeout, ca_file=lic.ca_file
                )
                self.server_date = answer.date
                candidate = verify_token(
                    answer.token, self._keys, self._cfg.site_id, now=self._clock()
                )
                self._check_serial(candidate)
            except LicenceServerUnreachable as exc:
                self.server_answered = False
                self._remember_error(str(exc))
            except LicenceError as exc:  # a bad or hostile answer: reported, never acted on
                self.server_answered = False
                self._remember_error(str(exc))
                await self._telemetry.event(
                    "notice", "licence_token", "warning", f"licence token refused: {exc}"
                )
            else:
                self.server_answered = True
                self.last_error = None
                await self._accept(candidate)
        await self.reevaluate()
        return self.status()

    def _remember_error(self, error: str) -> None:
        if error != self.last_error:
            log.warning("licence check failed", error=error)
        self.last_error = error

    def _check_serial(self, candidate: Licence) -> None:
        highest = int(self._meta.get("licence_max_serial", "-1"))
        if candidate.serial < highest:
            raise TokenRejected(
                f"serial {candidate.serial} is lower than {highest} already seen (replayed token)"
            )

    async def _accept(self, licence: Licence) -> None:
        newest = self._meta.get("licence_newest_issued")
        updates = {
            "licence_token": licence.raw,
            "licence_max_serial": str(licence.serial),
        }
        if newest is None or datetime.fromisoformat(newest) < licence.issued_at:
            updates["licence_newest_issued"] = licence.issued_at.isoformat()
        if self.licence is None or self.licence.raw != licence.raw:
            log.info("licence token accepted", serial=licence.serial, status=licence.status)
        self.licence = licence
        await self._save(updates)

    # -- the state over time ---------------------------------------------------------------

    async def reevaluate(self) -> Evaluation:
        now = self._clock()
        newest = self._meta.get("licence_newest_issued")
        newest_issued = datetime.fromisoformat(newest) if newest else None
        previous = self._meta.get("licence_state")
        result = evaluate(
            self.licence,
            now=now,
            server_answered=self.server_answered,
            grace_days=self._cfg.licence.grace_days,
            previous=previous,
            newest_issued_at=newest_issued,
        )
        before = self.evaluation
        self.evaluation = result
        if newest_issued is not None and now < newest_issued:
            await self._once(
                "licence_clock_warned",
                newest_issued.isoformat(),
                "clock_behind",
                f"system clock ({now.isoformat()}) is behind the newest licence issue time "
                f"({newest_issued.isoformat()})",
            )
        if result.state != previous:
            await self._state_changed(previous, result)
        await self._reminders(result, now)
        if result.features != before.features or not self._told:
            # Always once after start: enforcement converges whatever a crash left behind.
            self._told = True
            await notify(self.listeners, result, "licence")
        return result

    async def _state_changed(self, previous: str | None, result: Evaluation) -> None:
        """The new state, its `licence` message and its event: one transaction."""
        severity = SEVERITY.get(result.state, "critical")
        body = {
            "state": result.state,
            "previous": previous,
            "action": "state",
            "summary": result.reason,
            "details": self._details(result),
        }
        messages = [Outgoing("licence", self._telemetry.message("licence", body))]
        if previous is not None:
            summary = f"licence {previous} -> {result.state}: {result.reason}"
            event = self._telemetry.event_message("notice", "licence", severity, summary)
            messages.append(Outgoing("event", event, severity))
        await self._save({"licence_state": result.state}, *messages)

    async def _reminders(self, result: Evaluation, now: datetime) -> None:
        licence = self.licence
        days = result.due_reminder
        if days is not None and licence is not None:
            await self._once(
                "licence_reminded",
                f"{licence.expires_at.isoformat()}:{days}",
                "licence_expiring",
                f"the support subscription expires on {licence.expires_at.date()} "
                f"({result.days_left:.0f} days left)",
            )
        if result.state == "grace":
            await self._once(
                "licence_grace_warned",
                now.date().isoformat(),
                "licence_grace",
                f"the licence expired and the licence server cannot be reached; features stay on "
                f"until {result.grace_ends.date() if result.grace_ends else '?'}",
            )

    async def _once(self, meta_key: str, marker: str, check: str, summary: str) -> None:
        """Raise a warning notice (and a licence message) once per marker value: the marker,
        the event and the message in one transaction."""
        if self._meta.get(meta_key) == marker:
            return
        body = {
            "state": self.state,
            "action": check,
            "summary": summary,
            "details": self._details(self.evaluation),
        }
        await self._save(
            {meta_key: marker},
            Outgoing(
                "event",
                self._telemetry.event_message("notice", check, "warning", summary),
                "warning",
            ),
            Outgoing("licence", self._telemetry.message("licence", body)),
        )

    def _details(self, result: Evaluation) -> dict[str, Any]:
        licence = self.licence
        details: dict[str, Any] = {"features": result.features}
        if licence is not None:
            details |= {
                "serial": licence.serial,
                "expires_at": licence.expires_at.isoformat(),
                "max_users": licence.max_users,
            }
        if result.days_left is not None:
            details["days_left"] = round(result.days_left, 1)
        return details

    async def _save(self, updates: Mapping[str, str], *messages: Outgoing) -> None:
        """Keep `updates` (and queue `messages` in the same transaction)."""
        self._meta.update(updates)
        await self._telemetry.commit(functools.partial(put_meta, values=dict(updates)), *messages)

    # -- users against the licence ---------------------------------------------------------

    async def on_usage(self, usage: Mapping[str, Any]) -> None:
        """A count above the licence's `max_users` is a warning; it never switches anything."""
        if self.licence is None:
            return
        billable = int(usage["payload"]["billable"])
        limit = self.licence.max_users
        await self._health.observe(
            Finding(
                "over_allocation",
                billable <= limit,
                "warning",
                f"{billable} billable users, licence allows {limit}",
                {"billable": billable, "max_users": limit},
            )
        )

    def status(self) -> dict[str, Any]:
        result = self.evaluation
        return {
            "enabled": self._cfg.licence.enabled,
            "state": result.state,
            "reason": result.reason,
            "days_left": None if result.days_left is None else round(result.days_left, 1),
            "grace_ends": result.grace_ends.isoformat() if result.grace_ends else None,
            "features": result.features,
            "licence": self.licence.to_json() if self.licence else None,
            "server_answered": self.server_answered,
            "last_checked": self.last_checked.isoformat() if self.last_checked else None,
            "last_error": self.last_error,
        }
