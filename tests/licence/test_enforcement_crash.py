"""Crash safety of enforcement, on both captured offices: a process that lapses and renews over
and over (the licence server alternates lapsed and renewed tokens) is killed with SIGKILL at
many points, during switching off and during restoring. After each kill the PBX files hold each
agent block at most once and the journal no duplicate change; a final run on an active licence
converges to the PBX exactly as it was: every file byte-identical, maintenance mode off."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import load_config
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.asterisk.switching import blocks
from tests.enforcement_rig import active_journal, alternate_lapses, run_child
from tests.integration.daemon_harness import write_config
from tests.licence.test_enforcement import OFFICES, licence_extra
from tests.licence_server import LicenceServer, now

KILLS = 12


def agent_blocks(root: Path) -> list[tuple[str, str, str]]:
    """(file, feature, category) of every agent block in the office's files."""
    return [
        (path.name, feature, category)
        for path in sorted(root.iterdir())
        for feature, category, _ in blocks.find(path.read_text())
    ]


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
    until = now() + timedelta(days=300)
    flips = alternate_lapses(server, until)
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
