"""The agent's enforcement wired as the daemon wires it (licence service, count, journal,
poller; the licence test double answering), for tests that switch a simulated PBX: in this
process with a clock the test moves (`start_agent`), or in a child process a test kills with
SIGKILL (`run_child`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.config.schema import AgentConfig
from agent.counting.service import CountingService
from agent.health.monitor import HealthMonitor
from agent.licence.enforcement import Enforcement
from agent.licence.features import feature_rows
from agent.licence.service import LicenceService
from agent.pbx_poller import PbxPoller
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from agent.usage import keys
from drivers.base import Driver
from tests.licence.test_licence_service import Clock
from tests.licence_server import LicenceServer, sign

REPO = str(Path(__file__).resolve().parents[1])


@dataclass
class Agent:
    server: LicenceServer
    clock: Clock
    driver: Driver
    counting: CountingService
    licence: LicenceService
    enforcement: Enforcement
    telemetry: Telemetry
    poller: PbxPoller
    store: StateStore

    async def rows(self) -> dict[str, dict[str, Any]]:
        rows = feature_rows(
            self.licence.evaluation,
            self.driver.feature_switches(),
            self.enforcement.status,
            await self.enforcement.journal(),
        )
        return {r["feature"]: r for r in rows}

    async def feature_events(self) -> dict[str, dict[str, Any]]:
        """feature -> its newest `feature_switch` event."""
        found: dict[str, dict[str, Any]] = {}
        for event in await self.telemetry.events(0, 1000):
            if event["check"] == "feature_switch":
                found[event["subject"]] = event
        return found

    async def problems(self) -> dict[str, str]:
        """feature -> kind of the newest `feature_switch` event."""
        return {f: e["kind"] for f, e in (await self.feature_events()).items()}

    async def lapse(self) -> None:
        self.server.issue(expires_at=self.clock.at + timedelta(days=200), status="lapsed")
        await self.licence.refresh()
        assert self.licence.state == "lapsed"

    async def renew(self) -> None:
        self.server.issue(expires_at=self.clock.at + timedelta(days=365), issued_at=self.clock.at)
        await self.licence.refresh()
        assert self.licence.state == "active"

    async def close(self) -> None:
        self.server.stop()
        await self.driver.close()
        await self.store.close()


async def start_agent(cfg: AgentConfig, driver: Driver, server: LicenceServer) -> Agent:
    """The enforcement around `driver`, on an active licence, after a first count and poll."""
    store = await StateStore.open(cfg.state.dir / "state.db")
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    counting = CountingService(driver, store, cfg, keys.load_or_create(cfg.state.dir))
    clock = Clock()
    licence = LicenceService(store, cfg, telemetry, health, clock=clock)
    enforcement = Enforcement(store, cfg, driver, telemetry, counting, health)
    licence.listeners.append(enforcement.on_licence)
    counting.listeners.append(enforcement.on_count)
    poller = PbxPoller(driver, store, interval=60, cycle_timeout=30)
    poller.listeners.append(enforcement.on_poll)
    await licence.open()
    server.issue(expires_at=clock.at + timedelta(days=200))
    await licence.refresh()
    await counting.count_now()
    await poller.poll_once()
    return Agent(server, clock, driver, counting, licence, enforcement, telemetry, poller, store)


# -- a child process to kill -----------------------------------------------------------------


def alternate_lapses(server: LicenceServer, until: datetime) -> dict[str, int]:
    """The licence server answers lapsed, active, lapsed... in turn (valid until `until`);
    ``["n"]`` counts its answers."""
    flips = {"n": 0}

    def answer() -> bytes:
        flips["n"] += 1
        status = "lapsed" if flips["n"] % 2 else "active"
        token = sign(server.payload(expires_at=until, status=status), server.key)
        return json.dumps({"token": token}).encode()

    server.on_request = answer
    return flips


CHILD = r"""
import asyncio, sys
from pathlib import Path
import structlog
from agent.config import load_config
from agent.counting.service import CountingService
from agent.daemon import create_driver
from agent.health.monitor import HealthMonitor
from agent.licence.enforcement import Enforcement
from agent.licence.service import LicenceService
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from agent.usage import keys
from drivers.config_files import LocalConfigFiles

async def main():
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # quiet: stdout is ours
    cfg = load_config(Path(sys.argv[1]))
    store = await StateStore.open(cfg.state.dir / "state.db")
    driver = create_driver(cfg)
    driver.use_config_files(LocalConfigFiles(Path(cfg.backup.path)))
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    counting = CountingService(driver, store, cfg, keys.load_or_create(cfg.state.dir))
    licence = LicenceService(store, cfg, telemetry, health)
    enforcement = Enforcement(store, cfg, driver, telemetry, counting)
    licence.listeners.append(enforcement.on_licence)
    await licence.open()
    await counting.count_now()
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        await licence.refresh()
    for _ in range(20):  # as the daemon retries after its next poll (a slow PBX timed out)
        if not enforcement.retry:
            break
        await asyncio.sleep(0.5)
        await enforcement.reconcile()
    print("done", flush=True)

asyncio.run(main())
"""


async def run_child(config: Path, refreshes: int, kill_after: float | None) -> None:
    """An agent that counts, then asks the licence server `refreshes` times, enforcing each
    answer: killed with SIGKILL `kill_after` seconds after it is ready, or run to the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(config),
        str(refreshes),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert ready.strip() == b"ready"
    if kill_after is None:
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"done"
        await proc.wait()
        return
    await asyncio.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


def active_journal(db: Path) -> list[tuple[str, ...]]:
    """The journal's changes not undone: (feature, kind, target, place, value)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT feature, kind, target, place, value FROM "
            "enforcement_switches WHERE state IN ('applying', 'applied', 'undoing')"
        ).fetchall()
    return [tuple(r) for r in rows]
