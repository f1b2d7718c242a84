"""Issue 14, defect 6: a record and its MQTT message are one transaction. The daemon (a real
process, a real Mosquitto, the AMI simulator, the licence double) is killed with SIGKILL at the
exact point between a record's SQL and its outbox row (`tests/kill_hooks.py`), and right
after the commit; after a normal restart every record the state store holds has its message at
the broker: usage reports, backup results, health events and licence messages. (Before, the
record was committed on its own: usage report 44 of 43-45 never arrived.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pyrage

from agent.control import request
from agent.errors import ControlError
from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    DaemonProcess,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.test_telemetry_daemon import mqtt_section
from tests.licence_server import LicenceServer, now, sign
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher

ROOT = Path(__file__).resolve().parents[2]


def start_hooked(config: Path, hook: str, mark: Path) -> DaemonProcess:
    """The daemon with a kill point (it SIGKILLs itself there, after writing `mark`)."""
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop_daemon
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = DaemonProcess(
        [sys.executable, "-m", "tests.kill_hooks", hook, "run", "--config", str(config)],
        stdout=output,
        stderr=errors,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PBX_AGENT_KILL_MARK": str(mark)},
    )
    proc.output, proc.errors = output, errors
    return proc


async def killed_at(config: Path, hook: str, mark: Path, ask: str | None = None) -> None:
    """Start with `hook` (and send the control request `ask` once the daemon answers) and
    wait until the daemon killed itself there."""
    proc = start_hooked(config, hook, mark)
    sock = config.parent / "state" / "control.sock"
    try:
        if ask is not None:  # once the start's count is recorded (the report after the kill)
            await asyncio.to_thread(
                wait_for, status_when(sock, lambda r: r.get("counting")), 60, "the first count"
            )
            with contextlib.suppress(ControlError):
                await asyncio.to_thread(request, sock, ask, {}, timeout=30)
        code = await asyncio.to_thread(proc.wait, 60)
    except (subprocess.TimeoutExpired, AssertionError) as exc:
        proc.kill()
        proc.wait(10)
        proc.errors.seek(0)
        log = proc.errors.read()[-3000:]
        why = "the daemon never reached it" if isinstance(exc, subprocess.TimeoutExpired) else exc
        raise AssertionError(f"{hook}: {why}; the daemon's log:\n{log}") from exc
    finally:
        for stream in (proc.output, proc.errors):
            stream.close()
    assert code == -9, f"{hook}: exited {code}, not killed"
    assert fired(mark), f"{hook}: the kill point was not reached"


def fired(mark: Path) -> str:
    """Which kill point fired (cleared for the next start)."""
    text = mark.read_text().strip() if mark.exists() else ""
    mark.unlink(missing_ok=True)
    return text


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


async def test_no_record_loses_its_message_when_killed_in_between(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    server = LicenceServer().start()
    server.serve_token(sign(server.payload(expires_at=now() + timedelta(days=200)), server.key))
    tree = tmp_path / "pbx-etc"
    tree.mkdir()
    (tree / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    backup = f"""
[backup]
enabled = true
source = "local"
path = "{tree}"
recipients = ["{pyrage.x25519.Identity.generate().to_public()}"]
"""
    # Backups off for the first kill points: with none taken yet, each start would begin with a
    # catch-up backup, and a kill landing between its archive's rename and its row leaves an
    # orphan file (no backup result, so no message) instead of the kill the test is about.
    config = write_config(
        tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto) + server.config()
    )
    db, mark = tmp_path / "state" / "state.db", tmp_path / "killed"
    sock = tmp_path / "state" / "control.sock"
    try:
        async with Watcher(mosquitto, identifier="defect-6-watcher") as watcher:
            # Each kill point in turn (the licence's first: its state changes at the first
            # start only); every later start carries on from what the kill left.
            for hook in ("licence-inside", "usage-queued", "usage-inside", "usage-committed"):
                await killed_at(config, hook, mark)
            # Backups on: a start without a kill point takes the catch-up backup, so the next
            # start has none to catch up and the backup it is asked for is the one killed.
            write_config(
                tmp_path,
                ami_simulator.port,
                extra=mqtt_section(mosquitto) + backup + server.config(),
            )
            proc = start_daemon(config)
            try:
                await asyncio.to_thread(
                    wait_for,
                    status_when(sock, lambda r: r["backup"]["last_good"]),
                    60,
                    "the catch-up backup",
                )
            finally:
                code, _, err = await asyncio.to_thread(stop_daemon, proc)
            assert code == 0, err[-2000:]
            await killed_at(config, "backup-inside", mark, ask="backup-now")
            await ami_simulator.stop()  # the PBX goes away: a health problem to record
            await killed_at(config, "event-inside", mark)
            proc = start_daemon(config)
            try:
                await asyncio.to_thread(
                    wait_for,
                    status_when(sock, lambda r: r["health"].get("pbx_reachable") == "problem"),
                    60,
                    "the PBX reported unreachable",
                )
                await asyncio.to_thread(
                    wait_for,
                    status_when(sock, lambda r: r["telemetry"]["outbox_depth"] == 0),
                    60,
                    "the outbox drained",
                )
                usage_ids = {
                    json.loads(e)["payload"]["id"]
                    for (e,) in rows(db, "SELECT envelope FROM usage_reports")
                }
                backups = {b for (b,) in rows(db, "SELECT id FROM backups")}
                events = {json.loads(b)["id"] for (b,) in rows(db, "SELECT body FROM events")}
                problem = rows(
                    db, "SELECT problem_id FROM health_checks WHERE key = 'pbx_reachable'"
                )
                state = rows(db, "SELECT value FROM meta WHERE key = 'licence_state'")
                await watcher.wait_for(
                    lambda w: (
                        usage_ids <= {m["payload"]["id"] for m in w.on("usage")}
                        and backups <= {m["backup_id"] for m in w.on("backup")}
                        and events <= {m["id"] for m in w.on("event")}
                    ),
                    30,
                    "every stored record's message",
                )
            finally:
                code, _, err = await asyncio.to_thread(stop_daemon, proc)
            assert code == 0, err[-2000:]
    finally:
        server.stop()
    assert len(usage_ids) >= 2, "the committed report and the one after"
    assert backups, "a backup was recorded"
    assert problem and problem[0][0] in {m["id"] for m in watcher.on("event")}
    assert state == [("active",)]
    assert "active" in {m["state"] for m in watcher.on("licence") if m["action"] == "state"}
    # Each message once per id at most a resend: the same id, never two records for one.
    sent = [m["payload"]["id"] for m in watcher.on("usage")]
    assert set(sent) == usage_ids
