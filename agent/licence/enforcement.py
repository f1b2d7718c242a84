"""Enforcement as reconciliation: from the licence's wanted features and what the agent knows
of the PBX (counting roles, endpoints), the driver is asked for the lines that switch each
feature off; lines are journalled, then applied; renewal removes them in reverse order where
they are still as the agent wrote them, and reports the others as conflicts, left alone.

Runs on every licence change and after every count (endpoints added during a lapse, crash
recovery). `unknown` (never a valid token) changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog

from agent.config.schema import AgentConfig
from agent.counting.service import CountingService
from agent.licence import journal
from agent.licence.state import Evaluation
from agent.licence.token import FEATURES
from agent.pbx_poller import PollResult
from agent.state import StateStore
from agent.telemetry.outbox import Write
from agent.telemetry.service import Outgoing, Telemetry, nothing
from drivers.base import Driver
from drivers.errors import DriverConnectionError, DriverError, UnsafeChange
from drivers.models import AgentLine, FeaturePolicy

log = structlog.get_logger(__name__)

KNOWN_ENDPOINTS = "enforcement_known_endpoints"


class Enforcement:
    def __init__(
        self,
        store: StateStore,
        cfg: AgentConfig,
        driver: Driver,
        telemetry: Telemetry,
        counting: CountingService,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._driver = driver
        self._telemetry = telemetry
        self._counting = counting
        self._lock = asyncio.Lock()
        self.last: Evaluation | None = None
        # feature -> {"state": on|off|refused|pending, "note": str}
        self.status: dict[str, dict[str, str]] = {}
        self.retry = False  # the last run could not finish: try again after the next poll

    async def on_licence(self, evaluation: Evaluation) -> None:
        self.last = evaluation
        await self.reconcile()

    async def on_count(self, _usage: Any) -> None:
        if self.last is not None:
            await self.reconcile()

    async def on_poll(self, result: PollResult) -> None:
        """After a good poll, finish what an unreachable PBX interrupted."""
        if self.retry and result.ok:
            await self.reconcile()

    async def reconcile(self) -> None:
        evaluation = self.last
        if evaluation is None or evaluation.state == "unknown":
            return
        async with self._lock:
            self.retry = False
            switches = self._driver.feature_switches()
            try:
                await self._driver.connect()  # idempotent; the first run may precede any poll
            except DriverError as exc:
                self.retry = True
                for feature in switches:
                    self.status[feature] = {"state": "pending", "note": f"PBX unreachable: {exc}"}
                return
            policy = await self._policy(evaluation)
            if policy is None:
                self.retry = True
            for feature in FEATURES:
                if feature not in switches:
                    continue
                active = [
                    e
                    for e in await self._store.call(journal.entries, feature)
                    if e.state in journal.ACTIVE
                ]
                try:
                    if evaluation.features[feature]:
                        if active:
                            await self._undo(feature, active)
                        self.status[feature] = {"state": "on", "note": ""}
                    elif policy is None:
                        self.status[feature] = {
                            "state": "pending",
                            "note": "waiting for the first user count",
                        }
                    else:
                        await self._apply(feature, policy, active)
                except DriverConnectionError as exc:
                    self.retry = True
                    self.status[feature] = {"state": "pending", "note": f"PBX unreachable: {exc}"}
                except DriverError as exc:
                    self.status[feature] = {"state": "refused", "note": str(exc)}
                    await self._message("refused", feature, f"{feature}: not switched: {exc}")

    # -- switching off ---------------------------------------------------------------------

    async def _policy(self, evaluation: Evaluation) -> FeaturePolicy | None:
        last = self._counting.last
        if last is None:
            return None
        seats = last["report"]["seats"]
        roles: dict[str, list[str]] = {"app": [], "phone": []}
        for seat in seats:
            for endpoint in seat["endpoints"]:
                roles[endpoint["role"]].append(endpoint["endpoint"])
        current = sorted({*roles["app"], *roles["phone"]})
        known_text = await self._store.get_meta(KNOWN_ENDPOINTS)
        if known_text is None and not evaluation.features["add_extensions"]:
            await self._store.set_meta(KNOWN_ENDPOINTS, json.dumps(current))
            known_text = json.dumps(current)
        known = set(json.loads(known_text)) if known_text else set(current)
        licence = self._cfg.licence
        return FeaturePolicy(
            app_endpoints=tuple(sorted(roles["app"])),
            phone_endpoints=tuple(sorted(roles["phone"])),
            new_endpoints=tuple(e for e in current if e not in known),
            integration_accounts=licence.integration_accounts,
            lan_subnets=licence.lan_subnets,
        )

    async def _apply(
        self, feature: str, policy: FeaturePolicy, active: Sequence[journal.Entry]
    ) -> None:
        lines = await self._driver.feature_lines(feature, policy)
        present = {e.line for e in active}
        new = [line for line in lines if line not in present]
        if new:
            await self._store.call(journal.begin_apply, new)
        # A restore a crash interrupted (`undoing`) of a line wanted again: make sure it is
        # there, under the same journal row.
        wanted = set(lines)
        interrupted = [e.seq for e in active if e.state == "undoing" and e.line in wanted]
        await self._store.call(journal.set_state, interrupted, "applying")
        pending = [
            e for e in await self._store.call(journal.entries, feature) if e.state == "applying"
        ]
        if pending:
            try:
                await self._driver.switch_lines(add=[e.line for e in pending])
            except UnsafeChange:
                # Nothing was changed on the PBX. (After a lost connection the rows stay
                # `applying`: the change may have happened, the next run finds out.)
                await self._store.call(journal.forget, [e.seq for e in pending])
                raise
            await self._message(
                "switch-off",
                feature,
                f"{feature} switched off: {len(pending)} line(s) added on the PBX",
                pending,
                write=functools.partial(
                    journal.mark, seqs=[e.seq for e in pending], state="applied"
                ),
            )
        self.status[feature] = {
            "state": "off",
            "note": f"{len(present) + len(new)} agent line(s) on the PBX",
        }

    # -- switching back on -----------------------------------------------------------------

    async def _undo(self, feature: str, active: Sequence[journal.Entry]) -> None:
        # Lines a crash left `applying` or `undoing` may or may not be on the PBX: one that is
        # not there is simply done, not a conflict.
        resumed = {e.line for e in active if e.state in ("applying", "undoing")}
        fresh = [e.seq for e in active if e.state != "undoing"]
        await self._store.call(journal.set_state, fresh, "undoing")
        ordered = sorted(active, key=lambda e: e.seq, reverse=True)
        conflicts = set(await self._driver.switch_lines(remove=[e.line for e in ordered]))
        real = [e for e in ordered if e.line in conflicts and e.line not in resumed]
        done = [e.seq for e in ordered if e not in real]
        if real:
            reason = "changed on the PBX since the agent set it: left as it is"
            events = [
                Outgoing(
                    "event",
                    self._telemetry.event_message(
                        "notice",
                        "enforcement_conflict",
                        "warning",
                        f"{feature}: [{entry.line.section}] {entry.line.option} = "
                        f"{entry.line.value} in {entry.line.file} was changed by someone else; "
                        "the agent left it",
                        details=entry.to_json(),
                    ),
                    "warning",
                )
                for entry in real
            ]
            await self._message(
                "conflict",
                feature,
                f"{feature}: {len(real)} conflict(s)",
                real,
                write=functools.partial(
                    journal.mark, seqs=[e.seq for e in real], state="conflict", reason=reason
                ),
                events=events,
            )
        await self._message(
            "restore",
            feature,
            f"{feature} restored: {len(done)} line(s) removed",
            ordered,
            write=functools.partial(journal.mark, seqs=done, state="undone"),
        )
        if not any(not on for on in (self.last.features if self.last else {}).values()):
            await self._store.call(_forget_known)

    async def _message(
        self,
        action: str,
        feature: str,
        summary: str,
        entries: Sequence[journal.Entry] = (),
        *,
        write: Write[Any] = nothing,
        events: Sequence[Outgoing] = (),
    ) -> None:
        """The `licence` message (and `events`), in one transaction with `write`, the journal
        change it tells of."""
        log.info("enforcement " + action, feature=feature, summary=summary)
        body = {
            "state": self.last.state if self.last else "unknown",
            "action": action,
            "summary": summary,
            "details": {
                "feature": feature,
                "lines": [_describe(e.line) for e in entries][:200],
            },
        }
        message = Outgoing("licence", self._telemetry.message("licence", body))
        await self._telemetry.commit(write, *events, message)

    async def journal(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in await self._store.call(journal.entries, None)]


def _describe(line: AgentLine) -> str:
    kind = f" ({line.section_type})" if line.section_type else ""
    return f"{line.file} [{line.section}]{kind} {line.option} = {line.value}"


def _forget_known(conn: sqlite3.Connection) -> None:
    with conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (KNOWN_ENDPOINTS,))
