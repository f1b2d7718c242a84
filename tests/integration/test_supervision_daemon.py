"""Supervision of the daemon's tasks, end to end: the real daemon (in this process, so that a
fault can be injected into one of its tasks), a real Mosquitto, the CLI as processes. A
publisher that breaks says `offline` before its clean disconnect, is logged once with its
traceback (secret masked), raises the `agent_task_failed` problem, shows as FAIL in `status`
and `diag` while it keeps failing, and is started again with back-off; once it runs long
enough the problem is resolved."""

from __future__ import annotations

import asyncio
import io
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import daemon as daemon_module
from agent.config import load_config
from agent.daemon import Daemon
from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import AMI_SECRET, cli, write_config
from tests.integration.test_telemetry_daemon import BASE, mqtt_section
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher, client_for
from tests.telemetry.test_commands import signed


def task_events(watcher: Watcher, kind: str) -> list[dict[str, Any]]:
    return [
        e
        for e in watcher.on("event")
        if e["check"] == "agent_task_failed" and e["kind"] == kind and e["subject"] == "publisher"
    ]


async def test_a_broken_publisher_says_offline_is_reported_and_restarted(
    ami_simulator: Simulator,
    mosquitto: Broker,
    tmp_path: Path,
    json_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(daemon_module, "TASK_BACKOFF_INITIAL", 0.2)
    monkeypatch.setattr(daemon_module, "TASK_BACKOFF_MAX", 1.0)
    monkeypatch.setattr(daemon_module, "TASK_STABLE_AFTER", 2.0)
    central = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto, central))
    daemon = Daemon(load_config(config))
    broken = False
    heartbeat = daemon._heartbeat

    def faulty_heartbeat() -> dict[str, Any]:  # the injected fault: a bug in one task
        if broken:
            raise RuntimeError(f"heartbeat body failed near {AMI_SECRET}")
        return heartbeat()

    daemon._heartbeat = faulty_heartbeat  # type: ignore[method-assign]

    async with Watcher(mosquitto) as watcher:
        running = asyncio.create_task(daemon.run())
        try:
            await watcher.wait_for(lambda w: w.on("heartbeat"), 30, "the first heartbeat")
            assert [s["state"] for s in watcher.on("status")] == ["online"]
            broken = True
            await watcher.wait_for(
                lambda w: w.on("status")[-1]["state"] == "offline", 20, "offline said first"
            )
            shown = await cli("status", "--config", str(config))
            assert shown.returncode == 0, shown.stderr
            assert "publisher FAIL restarting" in shown.stdout
            assert "pbx-poller running" in shown.stdout and AMI_SECRET not in shown.stdout
            checked = await cli("diag", "--config", str(config), "--json")
            assert checked.returncode == 1
            tasks_check = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}[
                "daemon-tasks"
            ]
            assert (
                tasks_check["status"] == "FAIL" and "publisher restarting" in tasks_check["value"]
            )

            broken = False
            await watcher.wait_for(
                lambda w: task_events(w, "problem") and task_events(w, "resolved"),
                30,
                "the agent_task_failed problem, then its resolution",
            )
            problem = task_events(watcher, "problem")[0]
            assert "RuntimeError: heartbeat body failed near ***" in problem["summary"]
            assert task_events(watcher, "resolved")[0]["problem_id"] == problem["id"]
            assert watcher.on("status")[-1]["state"] == "online"
            state = daemon._tasks.states()["publisher"]
            assert state["state"] == "running" and state["restarts"] >= 2

            async with client_for(mosquitto) as central_client:
                await central_client.publish(
                    f"{BASE}/cmd/count-now", signed(central, "count-now"), qos=1
                )
            await watcher.wait_for(
                lambda w: [r for r in w.received if r.topic.startswith("reply/")],
                30,
                "commands answered again",
            )
        finally:
            daemon._request_stop(signal.SIGTERM)
            assert await asyncio.wait_for(running, 30) == 0

    text = json_log.getvalue()
    assert AMI_SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [
        line
        for line in lines
        if line["event"] == "agent task failed; restarting it" and line["task"] == "publisher"
    ]
    assert len(failed) == 1, "one log line with the traceback, not one per restart"
    assert "Traceback" in failed[0]["exception"] and "faulty_heartbeat" in failed[0]["exception"]
