"""Health checks fed by real polls of the AMI simulator: flap damping (one bad poll raises
nothing, N raise one problem, recovery one resolution), state kept across a restart, trunk
and restart checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.config.schema import AgentConfig
from agent.daemon import create_driver
from agent.health.monitor import HealthMonitor
from agent.pbx_poller import PbxPoller
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from drivers.asterisk.simulator import Simulator
from drivers.base import Driver
from tests.integration.daemon_harness import write_config


@dataclass
class Rig:
    cfg: AgentConfig
    store: StateStore
    driver: Driver
    telemetry: Telemetry
    monitor: HealthMonitor
    poller: PbxPoller

    async def events(self, check: str | None = None) -> list[dict[str, Any]]:
        rows = await self.telemetry.events(0, 1000)
        return [r for r in rows if check is None or r["check"] == check]

    async def poll(self, times: int = 1) -> None:
        for _ in range(times):
            await self.poller.poll_once()


async def make_rig(cfg: AgentConfig, store: StateStore) -> Rig:
    driver = create_driver(cfg)
    telemetry = Telemetry(store, cfg)
    monitor = HealthMonitor(store, cfg, telemetry)
    await monitor.open()
    poller = PbxPoller(driver, store, interval=3600, cycle_timeout=0.4)
    poller.listeners.append(monitor.on_poll)
    return Rig(cfg, store, driver, telemetry, monitor, poller)


@pytest.fixture
async def rig(ami_simulator: Simulator, tmp_path: Path) -> AsyncIterator[Rig]:
    extra = "[health]\nflap_count = 3\n"
    cfg = load_config(write_config(tmp_path, ami_simulator.port, extra=extra))
    store = await StateStore.open(cfg.state.dir / "state.db")
    built = await make_rig(cfg, store)
    try:
        yield built
    finally:
        await built.driver.close()
        await store.close()


async def test_flap_damping_one_problem_one_resolution(rig: Rig, ami_simulator: Simulator) -> None:
    await rig.poll()
    ami_simulator.faults.stall = True
    await rig.poll()  # one bad poll: nothing
    ami_simulator.faults.stall = False
    await rig.poll()
    assert await rig.events("pbx_reachable") == []

    ami_simulator.faults.stall = True
    await rig.poll(5)  # N = 3 bad polls raise one problem; more raise nothing
    problems = await rig.events("pbx_reachable")
    assert [(e["kind"], e["severity"]) for e in problems] == [("problem", "critical")]

    ami_simulator.faults.stall = False
    await rig.poll(2)
    assert len(await rig.events("pbx_reachable")) == 1, "two good polls are not yet N"
    await rig.poll(3)
    events = await rig.events("pbx_reachable")
    assert [e["kind"] for e in events] == ["problem", "resolved"]
    assert events[1]["problem_id"] == events[0]["id"]


async def test_a_problem_is_not_raised_again_after_a_restart(
    rig: Rig, ami_simulator: Simulator
) -> None:
    ami_simulator.faults.stall = True
    await rig.poll(3)
    await rig.driver.close()
    again = await make_rig(rig.cfg, rig.store)  # the agent restarted; the PBX is still down
    try:
        await again.poll(4)
        ami_simulator.faults.stall = False
        await again.poll(3)
    finally:
        await again.driver.close()
    events = await rig.events("pbx_reachable")
    assert [e["kind"] for e in events] == ["problem", "resolved"]
    assert events[1]["problem_id"] == events[0]["id"]


async def test_trunks_and_pbx_restart(rig: Rig, ami_simulator: Simulator) -> None:
    ami_simulator.ctx.live.started_at -= 3600  # the PBX has been up for an hour
    ami_simulator.ctx.live.reloaded_at -= 3600
    await rig.poll(3)
    trunks = await rig.events("trunk")
    # The fixture office's two trunk registrations are rejected: one problem each, and both
    # down at once is a total outage for outside calls.
    assert sorted(e["subject"] for e in trunks) == ["trunk-backup-reg", "trunk-provider-reg"]
    assert [e["severity"] for e in await rig.events("trunks_all")] == ["critical"]
    await ami_simulator.restart()
    deadline = asyncio.get_running_loop().time() + 15
    while not (await rig.poller.poll_once()).ok:  # the driver reconnects with back-off
        assert asyncio.get_running_loop().time() < deadline, "the PBX never came back"
        await asyncio.sleep(0.2)
    restarted = await rig.events("pbx_restarted")
    assert len(restarted) == 1 and restarted[0]["kind"] == "notice"
