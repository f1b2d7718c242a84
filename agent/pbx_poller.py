"""Polls the PBX through its driver on an interval: facts and endpoint list, kept for `status`
and recorded in the state store. Logs once when the PBX becomes unreachable, once on recovery."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.listeners import Listener, notify
from agent.state import StateStore
from drivers.base import Driver
from drivers.errors import DriverAuthError, DriverError
from drivers.models import Capability, EndpointSummary, PbxFacts, Registration

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of one poll cycle."""

    finished_at: datetime
    ok: bool
    duration_ms: int
    facts: PbxFacts | None = None
    endpoints: tuple[EndpointSummary, ...] = ()
    registrations: tuple[Registration, ...] = ()
    error: str | None = None
    # Why it failed: "login_refused" (the PBX answered and refused our credentials),
    # "unreachable" (no answer, a timeout, the connection lost) or "error" (anything else).
    error_kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "finished_at": self.finished_at.isoformat(),
            "ok": self.ok,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "error_kind": self.error_kind,
            "facts": asdict(self.facts) if self.facts else None,
            "endpoints": [asdict(e) for e in self.endpoints],
        }


class PbxPoller:
    """Runs one poll cycle every `interval` seconds until `stop()`.

    `cycle_timeout` bounds a whole cycle, so a PBX that accepts the connection and then never
    answers cannot stall the loop whatever the driver does.
    """

    def __init__(
        self, driver: Driver, store: StateStore, interval: float, cycle_timeout: float
    ) -> None:
        self._driver = driver
        self._store = store
        self._interval = interval
        self._cycle_timeout = cycle_timeout
        self._failing = False
        self._wake = asyncio.Event()
        self.last: PollResult | None = None
        self.last_good: PollResult | None = None
        self.cycles = 0
        self.cycle_done = asyncio.Event()
        # Called after every cycle (e.g. the health checks); a failing listener is logged.
        self.listeners: list[Listener[PollResult]] = []

    async def run(self) -> None:
        while True:
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    def poll_now(self) -> None:
        """Start the next cycle without waiting for the interval."""
        self._wake.set()

    async def poll_once(self) -> PollResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._cycle_timeout):
                facts, endpoints, registrations = await self._collect()
        except (DriverError, TimeoutError) as exc:
            result = PollResult(
                finished_at=datetime.now(UTC),
                ok=False,
                duration_ms=_ms_since(started),
                error=_describe(exc, self._cycle_timeout),
                error_kind=_kind(exc),
            )
            if not self._failing:
                log.warning("PBX poll failed", error=result.error)
                self._failing = True
        else:
            result = PollResult(
                finished_at=datetime.now(UTC),
                ok=True,
                duration_ms=_ms_since(started),
                facts=facts,
                endpoints=endpoints,
                registrations=registrations,
            )
            if self._failing:
                log.info("PBX poll recovered", endpoints=len(endpoints))
                self._failing = False
            elif self.cycles == 0:
                log.info("PBX poll ok", version=facts.version, endpoints=len(endpoints))
            self.last_good = result
        self.last = result
        self.cycles += 1
        await self._store.record_poll(
            ts=result.finished_at.isoformat(),
            ok=result.ok,
            duration_ms=result.duration_ms,
            facts=asdict(result.facts) if result.facts else None,
            endpoints=[asdict(e) for e in result.endpoints],
            error=result.error,
        )
        self.cycle_done.set()
        await notify(self.listeners, result, "poll")
        return result

    async def _collect(
        self,
    ) -> tuple[PbxFacts, tuple[EndpointSummary, ...], tuple[Registration, ...]]:
        await self._driver.connect()  # idempotent: the driver reconnects by itself once up
        facts = await self._driver.facts()
        endpoints: tuple[EndpointSummary, ...] = ()
        registrations: tuple[Registration, ...] = ()
        if self._driver.supports(Capability.ENDPOINTS):
            endpoints = await self._driver.endpoints()
        if self._driver.supports(Capability.REGISTRATIONS):
            registrations = await self._driver.registrations()
        return facts, endpoints, registrations


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: BaseException, timeout: float) -> str:
    """What went wrong, in words (the driver's message names the PBX and the cause)."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, DriverError):
        return f"poll did not finish within {timeout:g} s"
    if isinstance(exc, DriverAuthError):
        return f"the PBX refused the agent's login: {exc}"
    return str(exc) or "the PBX connection failed"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, DriverAuthError):
        return "login_refused"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "unreachable"
    return "error"
