"""Enforcement as reconciliation: for each subscription feature, what the licence wants (on or
off) against what is actually on the PBX.

On every licence change and count, each feature the licence wants off is planned by the driver
(`plan_switches`): the switches not yet made are journalled with their prior values, then
applied and proven; switches no longer wanted are undone; the live registrations the plan
names are cut. A feature wanted on has every journalled switch undone exactly (in reverse
order), leaving what someone else changed meanwhile as a conflict.

After every poll the applied switches are checked (`check`): maintenance mode always, config
blocks when the PBX restarted or reloaded since. A switch the PBX lost (restart, FreePBX Apply
Config, an admin) is applied again, with a `licence` message. New endpoints seen by the poll
trigger a count, so one added during the lapse is switched off within a poll.

Each feature's actual state is truthful: `off` only when every switch is proven in effect and
nothing it covers was left out; otherwise `not switched` with the reason. A feature wanted off
that is not off is a critical health problem (`feature_switch/<feature>`).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.config.schema import AgentConfig
from agent.counting.service import CountingService
from agent.health.monitor import HealthMonitor
from agent.licence import journal
from agent.licence.policy import forget_known, policy
from agent.licence.state import Evaluation
from agent.licence.status import (
    AGENT_SWITCHED,
    FeatureStatus,
    health_findings,
    licence_message,
    targets,
)
from agent.licence.token import FEATURES
from agent.pbx_poller import PollResult
from agent.state import StateStore
from agent.telemetry.outbox import Write
from agent.telemetry.service import Outgoing, Telemetry, nothing
from drivers.base import Driver
from drivers.errors import DriverConnectionError, DriverError
from drivers.models import (
    Capability,
    FeaturePolicy,
    Switch,
    SwitchKind,
    SwitchOutcome,
    SwitchState,
    Unswitchable,
)

log = structlog.get_logger(__name__)

# Config switches are checked on the live objects when the PBX restarted or reloaded, and at
# least every this many polls (two reloads within one second look the same).
THOROUGH_EVERY = 10


@dataclass
class _Run:
    """One reconciliation's findings for one feature."""

    failed: list[Unswitchable] = field(default_factory=list)


class Enforcement:
    def __init__(
        self,
        store: StateStore,
        cfg: AgentConfig,
        driver: Driver,
        telemetry: Telemetry,
        counting: CountingService,
        health: HealthMonitor | None = None,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._driver = driver
        self._telemetry = telemetry
        self._counting = counting
        self._health = health
        self._lock = asyncio.Lock()
        self.last: Evaluation | None = None
        self.status: dict[str, FeatureStatus] = {}
        self.retry = False  # the last run could not finish: try again after the next poll
        self._stamp: tuple[str | None, str | None] | None = None  # PBX start/reload last proven
        self._light_checks = 0  # polls since the last thorough check

    # -- triggers ----------------------------------------------------------------------------

    async def on_licence(self, evaluation: Evaluation) -> None:
        self.last = evaluation
        await self.reconcile()

    async def on_count(self, _usage: Any) -> None:
        if self.last is not None:
            await self.reconcile()

    async def on_poll(self, result: PollResult) -> None:
        """After a good poll: finish an interrupted run, check the applied switches, count
        when endpoints appeared (a new extension during a lapse)."""
        if not result.ok or self.last is None or self.last.state == "unknown":
            return
        if self.retry:
            await self.reconcile()
            return
        if not all(self.last.features.values()):
            await self.check(result)

    # -- reconciliation ----------------------------------------------------------------------

    def _driver_switches(self) -> bool:
        return self._driver.supports(Capability.FEATURES)

    async def reconcile(self) -> None:
        evaluation = self.last
        if evaluation is None or evaluation.state == "unknown":
            return
        async with self._lock:
            self.retry = False
            try:
                await self._driver.connect()  # idempotent; the first run may precede any poll
            except DriverError as exc:
                self._pending_all(evaluation, f"PBX unreachable: {exc}")
                self.retry = True
                return
            report = self._counting.last["report"] if self._counting.last else None
            current = await policy(
                self._store,
                self._cfg,
                report,
                not evaluation.features["add_extensions"],
                not evaluation.features["softphone_app"],
            )
            for feature in FEATURES:
                await self._reconcile_feature(feature, evaluation, current)
            if all(evaluation.features.values()):
                await self._store.call(forget_known)
            await self._report_health(evaluation)

    def _pending_all(self, evaluation: Evaluation, reason: str) -> None:
        for feature in FEATURES:
            if feature not in AGENT_SWITCHED and not evaluation.features[feature]:
                self.status[feature] = FeatureStatus("pending", reason=reason)

    async def _reconcile_feature(
        self, feature: str, evaluation: Evaluation, current: FeaturePolicy | None
    ) -> None:
        wanted_on = evaluation.features[feature]
        if feature in AGENT_SWITCHED:
            how = AGENT_SWITCHED[feature]
            self.status[feature] = FeatureStatus("on" if wanted_on else "off", how)
            return
        if not self._driver_switches():
            self.status[feature] = (
                FeatureStatus("on")
                if wanted_on
                else FeatureStatus(
                    "not_switched",
                    reason=f"the {self._driver.name} driver cannot switch features",
                )
            )
            return
        try:
            if wanted_on:
                await self._restore(feature)
            elif current is None:
                self.status[feature] = FeatureStatus(
                    "pending", reason="waiting for the first user count"
                )
            else:
                await self._switch_off(feature, current)
        except DriverConnectionError as exc:
            self.retry = True
            self.status[feature] = FeatureStatus("pending", reason=f"PBX unreachable: {exc}")
        except DriverError as exc:
            self.status[feature] = FeatureStatus("not_switched", reason=str(exc))

    async def _active(self, feature: str) -> list[journal.Entry]:
        rows = await self._store.call(journal.entries, feature)
        return [e for e in rows if e.state in journal.ACTIVE]

    async def _switch_off(self, feature: str, current: FeaturePolicy) -> None:
        plan = await self._driver.plan_switches(feature, current)
        active = await self._active(feature)
        if not plan.applicable:
            if active:
                await self._undo(feature, active)
            self.status[feature] = FeatureStatus("n/a", plan.how)
            return
        if plan.refused is not None:
            previous = self.status.get(feature)
            self.status[feature] = FeatureStatus(
                "not_switched", plan.how, plan.refused, fix=plan.refused
            )
            if previous is None or previous.reason != plan.refused:
                await self._message(
                    "not-switched", feature, f"{feature}: not switched: {plan.refused}"
                )
            return
        desired = [s for s in plan.switches if s.kind is not SwitchKind.CUT]
        stale = [e for e in active if e.switch not in desired]
        if stale:
            await self._undo(feature, stale)
        kept = [e for e in active if e.switch in desired]
        made = {e.switch for e in kept}
        run = _Run()
        new = [s for s in desired if s not in made]
        redo = [e for e in kept if e.state != "applied"]
        await self._apply(feature, new, redo, run)
        cuts = [s for s in plan.switches if s.kind is SwitchKind.CUT]
        if cuts:
            await self._cut(feature, cuts, run)
        left_out = (*plan.unswitchable, *run.failed)
        if left_out:
            reason = "; ".join(f"{u.target}: {u.reason}" for u in left_out)
            self.status[feature] = FeatureStatus("not_switched", plan.how, reason, left_out)
        else:
            self.status[feature] = FeatureStatus("off", plan.how)

    async def _apply(
        self, feature: str, new: Sequence[Switch], redo: Sequence[journal.Entry], run: _Run
    ) -> None:
        rows: list[tuple[Switch, int, str | None]] = []
        if new:
            priors = await self._driver.read_priors(new)
            seqs = await self._store.call(journal.begin, new, priors)
            rows += [(s, seq, None) for s, seq in zip(new, seqs, strict=True)]
        if redo:
            await self._store.call(journal.set_state, [e.seq for e in redo], "applying")
            rows += [(e.switch, e.seq, e.reason or "interrupted") for e in redo]
        if not rows:
            return
        outcomes = await self._driver.apply_switches([s for s, _, _ in rows])
        made = [
            (row, o)
            for row, o in zip(rows, outcomes, strict=True)
            if o.state is SwitchState.IN_EFFECT
        ]
        failed = [
            (row, o)
            for row, o in zip(rows, outcomes, strict=True)
            if o.state is not SwitchState.IN_EFFECT
        ]
        await self._store.call(journal.forget, [row[1] for row, _ in failed])
        run.failed += [Unswitchable(o.switch.target, o.detail) for _, o in failed]
        fresh = [(row[1], o) for row, o in made if row[2] is None]
        again = [(row[1], row[2], o) for row, o in made if row[2] is not None]
        if fresh:
            outs = [o for _, o in fresh]
            await self._message(
                "switch-off",
                feature,
                f"{feature} switched off: {targets(outs)}",
                outs,
                write=_marking([seq for seq, _ in fresh], "applied"),
            )
        if again:
            why = "; ".join(sorted({str(reason) for _, reason, _ in again}))
            outs = [o for _, _, o in again]
            await self._message(
                "re-applied",
                feature,
                f"{feature}: switched off again on {targets(outs)} (the PBX had lost it: {why})",
                outs,
                write=_marking([seq for seq, _, _ in again], "applied"),
            )
        if failed:
            await self._message(
                "not-switched",
                feature,
                f"{feature}: could not switch {targets([o for _, o in failed])}",
                [o for _, o in failed],
            )

    async def _cut(self, feature: str, cuts: Sequence[Switch], run: _Run) -> None:
        priors = await self._driver.read_priors(cuts)
        seqs = await self._store.call(journal.begin, cuts, priors)
        outcomes = await self._driver.apply_switches(cuts)
        done = [
            seq for seq, o in zip(seqs, outcomes, strict=True) if o.state is SwitchState.IN_EFFECT
        ]
        await self._store.call(journal.forget, [s for s in seqs if s not in done])
        cut = [o for o in outcomes if o.state is SwitchState.IN_EFFECT]
        run.failed += [
            Unswitchable(o.switch.target, f"registration not cut: {o.detail}")
            for o in outcomes
            if o.state is not SwitchState.IN_EFFECT
        ]
        if cut:
            await self._message(
                "cut",
                feature,
                f"{feature}: {len(cut)} live registration(s) cut",
                cut,
                write=_marking(done, "done"),
            )

    # -- switching back on -----------------------------------------------------------------

    async def _restore(self, feature: str) -> None:
        active = await self._active(feature)
        if active:
            failed = await self._undo(feature, active)
            if failed:
                self.status[feature] = FeatureStatus(
                    "not_switched",
                    reason="not restored: "
                    + "; ".join(f"{o.switch.target}: {o.detail}" for o in failed),
                )
                self.retry = True
                return
        self.status[feature] = FeatureStatus("on")

    async def _undo(self, feature: str, active: Sequence[journal.Entry]) -> list[SwitchOutcome]:
        """Undo in reverse order; the outcomes that failed (to retry)."""
        ordered = sorted(active, key=lambda e: e.seq, reverse=True)
        await self._store.call(journal.set_state, [e.seq for e in ordered], "undoing")
        outcomes = await self._driver.undo_switches([(e.switch, e.prior) for e in ordered])
        undone = [
            e for e, o in zip(ordered, outcomes, strict=True) if o.state is SwitchState.ABSENT
        ]
        conflicts = [
            (e, o)
            for e, o in zip(ordered, outcomes, strict=True)
            if o.state is SwitchState.CONFLICT
        ]
        failed = [o for o in outcomes if o.state not in (SwitchState.ABSENT, SwitchState.CONFLICT)]
        if conflicts:
            events = [
                Outgoing(
                    "event",
                    self._telemetry.event_message(
                        "notice",
                        "enforcement_conflict",
                        "warning",
                        f"{feature}: {entry.switch.target} in {entry.switch.place} was changed "
                        "by someone else since the agent switched it; the agent left it",
                        details=entry.to_json(),
                    ),
                    "warning",
                )
                for entry, _ in conflicts
            ]

            def mark_conflicts(conn: sqlite3.Connection) -> None:
                for entry, outcome in conflicts:
                    journal.mark(conn, [entry.seq], "conflict", outcome.detail)

            await self._message(
                "conflict",
                feature,
                f"{feature}: {len(conflicts)} conflict(s)",
                [o for _, o in conflicts],
                write=mark_conflicts,
                events=events,
            )
        if undone:
            restored = [o for o in outcomes if o.state is SwitchState.ABSENT]
            await self._message(
                "restore",
                feature,
                f"{feature} restored: {targets(restored)}",
                restored,
                write=_marking([e.seq for e in undone], "undone"),
            )
        return failed

    # -- after every poll --------------------------------------------------------------------

    async def check(self, result: PollResult) -> None:
        """Are the applied switches still in effect? Lost ones are applied again."""
        facts = result.facts
        stamp = (
            facts.startup_time.isoformat() if facts and facts.startup_time else None,
            facts.reload_time.isoformat() if facts and facts.reload_time else None,
        )
        thorough = stamp != self._stamp or self._light_checks >= THOROUGH_EVERY
        self._light_checks = 0 if thorough else self._light_checks + 1
        async with self._lock:
            rows = await self._store.call(journal.entries, None)
            applied = [e for e in rows if e.state == "applied"]
            if not applied:
                self._stamp = stamp
                lost = False
            else:
                try:
                    outcomes = await self._driver.check_switches(
                        [e.switch for e in applied], thorough=thorough
                    )
                except DriverConnectionError:
                    return
                gone = [
                    (e, o)
                    for e, o in zip(applied, outcomes, strict=True)
                    if o.state is not SwitchState.IN_EFFECT
                ]
                for entry, outcome in gone:
                    await self._store.call(
                        journal.set_state, [entry.seq], "applying", f"lost: {outcome.detail}"
                    )
                lost = bool(gone)
                self._stamp = stamp
        new_endpoints = self._unseen(result)
        if new_endpoints:
            await self._counting.count_now()  # -> on_count -> reconcile
        elif lost or thorough:
            await self.reconcile()

    def _unseen(self, result: PollResult) -> bool:
        last = self._counting.last
        if last is None:
            return False
        report = last["report"]
        named = {m["endpoint"] for s in report["seats"] for m in s["endpoints"]}
        named |= {x["name"] for x in report.get("excluded", ())}
        return any(e.name not in named for e in result.endpoints)

    # -- reporting ---------------------------------------------------------------------------

    async def _report_health(self, evaluation: Evaluation) -> None:
        if self._health is None:
            return
        for finding in health_findings(evaluation, self.status):
            await self._health.observe(finding)

    async def _message(
        self,
        action: str,
        feature: str,
        summary: str,
        outcomes: Sequence[SwitchOutcome] = (),
        *,
        write: Write[Any] = nothing,
        events: Sequence[Outgoing] = (),
    ) -> None:
        """The `licence` message (and `events`), in one transaction with `write`, the journal
        change it tells of."""
        log.info("enforcement " + action, feature=feature, summary=summary)
        state = self.last.state if self.last else "unknown"
        body = licence_message(state, action, feature, summary, outcomes)
        message = Outgoing("licence", self._telemetry.message("licence", body))
        await self._telemetry.commit(write, *events, message)

    async def journal(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in await self._store.call(journal.entries, None)]


def _marking(seqs: Sequence[int], state: str) -> Write[None]:
    """A journal state change to commit with the message that tells of it."""
    return functools.partial(journal.mark, seqs=seqs, state=state)
