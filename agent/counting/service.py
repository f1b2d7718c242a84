"""Scheduled counting in the daemon: inventory through the driver, the seat rules, history
in the state store, and a signed usage report chained to the previous one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config.schema import AgentConfig
from agent.counting import history
from agent.counting.tenants import count_inventory
from agent.listeners import Listener, notify
from agent.state import StateStore
from agent.telemetry.messages import usage_message
from agent.telemetry.service import Outgoing, Telemetry
from agent.usage.chain import GENESIS, USAGE_SCHEMA, digest, sign
from drivers.base import Driver
from drivers.errors import DriverError
from drivers.gc_pause import paused_gc

log = structlog.get_logger(__name__)


class CountingService:
    """Counts every `counting.interval` seconds and on demand; one count at a time."""

    def __init__(
        self,
        driver: Driver,
        store: StateStore,
        cfg: AgentConfig,
        key: Ed25519PrivateKey,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._driver = driver
        self._store = store
        self._telemetry = telemetry or Telemetry(store, cfg)
        self._cfg = cfg
        self._key = key
        self._lock = asyncio.Lock()
        self._failing = False
        self.last: dict[str, Any] | None = None
        # Called with each signed usage envelope, once it is stored and queued upstream.
        self.listeners: list[Listener[dict[str, Any]]] = []

    async def run(self) -> None:
        while True:
            with contextlib.suppress(DriverError):
                await self.count_now()
            await asyncio.sleep(self._cfg.counting.interval)

    async def inventory(self) -> dict[str, Any]:
        await self._driver.connect()
        return asdict(await self._driver.inventory())

    async def count_now(self, *, record: bool = True) -> dict[str, Any]:
        """Count, store, sign; return the report with the usage envelope. Without `record`
        (a technician's count) nothing is stored, signed or sent: `usage` is None."""
        async with self._lock:
            try:
                await self._driver.connect()
                with paused_gc(file_as_old=True):
                    inventory = await self._driver.inventory()
            except DriverError as exc:
                if not self._failing:
                    log.warning("user count failed", error=str(exc))
                    self._failing = True
                raise
            if self._failing:
                log.info("user count recovered")
                self._failing = False
            now = datetime.now(UTC)
            seen = await self._store.call(history.load_history, now)
            with paused_gc(file_as_old=True):  # the report and its plain form, likewise
                report = count_inventory(
                    inventory, self._cfg.counting, seen, site_id=self._cfg.site_id, now=now
                )
                del inventory
                report_json = report.to_json()  # made once: stored, signed, returned
            if not record:
                return {"report": report_json, "usage": None}
            changes = await self._store.call(history.record_count, report, now, report_json)
            envelope = await self._sign(report_json, changes, now)
            log.info(
                "users counted",
                billable=report.billable,
                added=_some(changes["added"]),
                removed=_some(changes["removed"]),
                warnings=len(report.warnings),
            )
            self.last = {"report": report_json, "usage": envelope}
            await notify(self.listeners, envelope, "usage")
            return self.last

    async def _sign(
        self, report: dict[str, Any], changes: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        seq, previous = await self._store.call(history.last_usage)
        payload = {
            "schema": USAGE_SCHEMA,
            "id": str(uuid.uuid4()),
            "site_id": self._cfg.site_id,
            "ts": now.isoformat(),
            "seq": seq + 1,
            "prev_sha256": GENESIS if previous is None else digest(previous),
            "billable": report["billable"],
            "daily_peak": changes["daily_peak"],
            "added": changes["added"],
            "removed": changes["removed"],
            "seats": [
                {
                    "extension": s["extension"],
                    "kind": s["kind"],
                    "first_seen": changes["first_seen"].get(s["extension"]),
                    **({"tenant": s["tenant"]} if s.get("tenant") else {}),
                }
                for s in report["seats"]
            ],
        }
        if report.get("tenants"):  # a multi-tenant PBX: each tenant's count (its domain)
            payload["tenants"] = [
                {"tenant": t["tenant"], "billable": t["billable"]} for t in report["tenants"]
            ]
        envelope = sign(payload, self._key)
        # The report and its `usage` message: one transaction (a crash loses neither alone).
        await self._telemetry.commit(
            functools.partial(
                history.add_usage,
                seq=seq + 1,
                ts=now.isoformat(),
                envelope=envelope,
                sha=digest(envelope),
            ),
            Outgoing("usage", usage_message(envelope)),
        )
        return envelope


LOGGED_NAMES = 20


def _some(extensions: list[str]) -> list[str]:
    """Up to LOGGED_NAMES extensions for a log line, then how many more (a first count of a
    50,000-extension office is not one 400 KB line)."""
    if len(extensions) <= LOGGED_NAMES:
        return extensions
    return [*extensions[:LOGGED_NAMES], f"... {len(extensions) - LOGGED_NAMES} more"]
