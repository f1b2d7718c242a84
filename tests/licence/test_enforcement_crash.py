"""Crash safety of enforcement, on both captured offices: a process that lapses and renews over
and over (the licence server alternates lapsed and renewed tokens) is killed with SIGKILL at
many points, during switching off and during restoring. After each kill the PBX files hold each
agent block at most once and the journal no duplicate change; a final run on an active licence
converges to the PBX exactly as it was: every file byte-identical, maintenance mode off."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import load_config
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.asterisk.switching import blocks
from tests.integration.daemon_harness import write_config
from tests.licence.test_enforcement import OFFICES, licence_extra
from tests.licence_server import LicenceServer, now, sign

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
    print("done", flush=True)

asyncio.run(main())
"""
KILLS = 12
REPO = str(Path(__file__).resolve().parents[2])


def agent_blocks(root: Path) -> list[tuple[str, str, str]]:
    """(file, feature, category) of every agent block in the office's files."""
    return [
        (path.name, feature, category)
        for path in sorted(root.iterdir())
        for feature, category, _ in blocks.find(path.read_text())
    ]


def active_journal(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT feature, kind, target, place, value FROM "
            "enforcement_switches WHERE state IN ('applying', 'applied', 'undoing')"
        ).fetchall()
    return [tuple(r) for r in rows]


async def run_child(config: Path, refreshes: int, kill_after: float | None) -> None:
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


@pytest.mark.parametrize("office", sorted(OFFICES))
async def test_sigkill_during_enforcement_and_restoration_converges(
    office: str, tmp_path: Path
) -> None:
    path, lan = OFFICES[office]
    ami_simulator = Simulator(load_office(path))
    await ami_simulator.start()
    server = LicenceServer().start()
    root = ami_simulator.ctx.config.root
    original = {p.name: p.read_bytes() for p in root.iterdir()}
    flips = {"n": 0}
    until = now() + timedelta(days=300)

    def alternate() -> bytes:
        flips["n"] += 1
        status = "lapsed" if flips["n"] % 2 else "active"
        token = sign(server.payload(expires_at=until, status=status), server.key)
        return json.dumps({"token": token}).encode()

    server.on_request = alternate
    try:
        backup = f'[backup]\nsource = "local"\npath = "{root}"\n'
        config = write_config(
            tmp_path, ami_simulator.port, extra=server.config(**licence_extra(lan)) + backup
        )
        db = load_config(config).state.dir / "state.db"
        started = time.monotonic()
        for kill in range(KILLS):
            await run_child(config, 1000, kill_after=0.05 + 0.07 * kill)
            found = agent_blocks(root)
            assert len(found) == len(set(found)), f"kill {kill}: an agent block twice"
            journal = active_journal(db)
            assert len(journal) == len(set(journal)), f"kill {kill}: a journal change twice"
        assert flips["n"] > KILLS, "the kills landed while lapsing and renewing"

        server.on_request = None
        server.issue(expires_at=until)
        await run_child(config, 1, kill_after=None)
        assert agent_blocks(root) == []
        for name, data in original.items():
            assert (root / name).read_bytes() == data, name
        assert ami_simulator.ctx.live.maintenance == set()
        assert active_journal(db) == []
        assert time.monotonic() - started < 120
    finally:
        server.stop()
        await ami_simulator.stop()
