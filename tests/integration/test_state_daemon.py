"""Issue 14, defect 5, with the daemon and the CLI as processes: an emptied or damaged state.db
is refused at start with the recovery command (never a silent fresh start); `pbx-agent state
recover` keeps the old file, saves what it can, and the daemon starts again with its own key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.asterisk.simulator import Simulator
from tests.agent.test_state_integrity import garble
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)


async def run_until_first_poll(config: Path) -> str:
    """Start the daemon, wait for its first poll, stop it; its public key."""
    sock = config.parent / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: r["pbx"]["last_poll"]), 30, "the first poll"
        )
        shown = await cli("keys", "--config", str(config), "--json")
        assert shown.returncode == 0, shown.stderr
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]
    return shown.stdout


async def refused_at_start(config: Path) -> str:
    proc = start_daemon(config)
    await asyncio.to_thread(proc.wait, 30)
    code, _, err = stop_daemon(proc)
    assert code == 1, err[-2000:]
    assert f"pbx-agent state recover --config {config}" in err
    return err


@pytest.mark.parametrize("damage", ["emptied", "garbled"])
async def test_a_damaged_state_store_is_refused_until_recovered(
    ami_simulator: Simulator, tmp_path: Path, damage: str
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    key = await run_until_first_poll(config)
    db = tmp_path / "state" / "state.db"
    if damage == "emptied":
        db.write_bytes(b"")
    else:
        garble(db)
    before = db.read_bytes()

    err = await refused_at_start(config)
    assert {
        "emptied": "is empty (0 bytes), but the agent has run here before",
        "garbled": "is damaged (",
    }[damage] in err
    assert db.read_bytes() == before, "the refused file is left as it was"

    recovered = await cli("state", "recover", "--config", str(config), "--yes")
    assert recovered.returncode == 0, recovered.stderr
    assert "old file kept as" in recovered.stdout
    kept = list(db.parent.glob("state.db.damaged-*"))
    assert [p.read_bytes() for p in kept if not p.name.endswith(("-wal", "-shm"))] == [before]

    assert await run_until_first_poll(config) == key, "the agent keeps its identity"


async def test_recover_refuses_while_the_daemon_runs_and_leaves_a_whole_store(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 30, "the daemon")
        refused = await cli("state", "recover", "--config", str(config), "--yes")
        assert refused.returncode == 1 and "the daemon is running" in refused.stderr
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]
    whole = await cli("state", "recover", "--config", str(config), "--yes")
    assert whole.returncode == 0 and "nothing to recover" in whole.stdout
    assert not list((tmp_path / "state").glob("state.db.damaged-*"))
