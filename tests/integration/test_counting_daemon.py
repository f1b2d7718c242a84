"""`pbx-agent count`, `inventory`, `keys` and `usage` against the running daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)


async def test_count_keys_and_a_verifiable_usage_chain(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "the daemon")
        counted = await cli("count", "--config", str(config), "--json", "--report")
        assert counted.returncode == 0, counted.stderr
        report: dict[str, Any] = json.loads(counted.stdout)
        assert report["billable"] == 11 and report["schema"] == "pbx-agent/count-report/1"
        # piped, the report is printed as the daemon encoded it: one compact line, keys sorted
        compact = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert counted.stdout == compact + "\n"

        explained = await cli("count", "--config", str(config), "--explain", "--report")
        assert explained.returncode == 0
        assert "SEAT 103 'Carol White'" in explained.stdout
        assert "NOT COUNTED trunk trunk-provider" in explained.stdout

        inventory = await cli("inventory", "--config", str(config), "--json")
        assert len(json.loads(inventory.stdout)["endpoints"]) == 17  # 16 PJSIP + 1 IAX2
        assert "nwT3st" not in inventory.stdout, "no password leaves the agent"
        shown = await cli("inventory", "--config", str(config))
        assert shown.returncode == 0 and "Effective options" in shown.stdout
        assert any(line.startswith("  104 (PJSIP): ") for line in shown.stdout.splitlines())
        assert "nwT3st" not in shown.stdout

        keys = json.loads((await cli("keys", "--config", str(config), "--json")).stdout)
        key_file = tmp_path / "state" / "agent-ed25519.pem"
        assert key_file.stat().st_mode & 0o777 == 0o600

        exported = tmp_path / "usage.jsonl"
        assert (
            await cli("usage", "export", "--config", str(config), str(exported))
        ).returncode == 0
        lines = exported.read_text().splitlines()
        assert len(lines) >= 3, "one signed report per recorded count (the daemon's, --report)"
        ok = await cli("usage", "verify", str(exported), "--public-key", keys["public_key"])
        assert ok.returncode == 0 and "chain intact" in ok.stdout

        tampered = tmp_path / "tampered.jsonl"
        tampered.write_text(exported.read_text().replace('"billable": 11', '"billable": 10', 1))
        bad = await cli("usage", "verify", str(tampered), "--public-key", keys["public_key"])
        assert bad.returncode == 1 and "TAMPERED" in bad.stderr

        dropped = tmp_path / "dropped.jsonl"
        dropped.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
        gap = await cli("usage", "verify", str(dropped), "--public-key", keys["public_key"])
        assert gap.returncode == 1 and "prev_sha256" in gap.stderr
    finally:
        code, out, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
    assert "nwT3st" not in out + err


async def test_count_says_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    result = await cli("count", "--socket", str(tmp_path / "nothing.sock"))
    assert result.returncode == 1 and "not running" in result.stderr
