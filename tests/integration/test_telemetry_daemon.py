"""The daemon's telemetry end to end, against a real Mosquitto and a real subscriber that
validates every message against its JSON Schema: status, heartbeat, usage, health events,
backup results, signed commands with replies, `pbx-agent events`, and a SIGKILL while a
backlog drains (nothing lost)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.state import StateStore
from agent.telemetry.messages import envelope
from agent.telemetry.outbox import Outbox
from agent.usage.keys import public_b64
from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher, client_for
from tests.telemetry.test_commands import signed

BASE = "pbx-agent/v1/test-site"


def mqtt_section(broker: Broker, central: Ed25519PrivateKey | None = None) -> str:
    keys = f'command_keys = {{ central = "{public_b64(central)}" }}' if central else ""
    return f"""
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
heartbeat_interval = 5
reconnect_initial = 0.1
reconnect_max = 0.5
{keys}
[health]
flap_count = 1
"""


async def test_daemon_publishes_everything_and_answers_signed_commands(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    central = Ed25519PrivateKey.generate()
    tree = tmp_path / "pbx-etc"
    tree.mkdir()
    (tree / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    identity = pyrage.x25519.Identity.generate()
    backup = f"""
[backup]
enabled = true
source = "local"
path = "{tree}"
recipients = ["{identity.to_public()}"]
"""
    config = write_config(
        tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto, central) + backup
    )
    sock = tmp_path / "state" / "control.sock"
    async with Watcher(mosquitto) as watcher:
        proc = start_daemon(config)
        try:
            await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "the daemon")
            await watcher.wait_for(lambda w: w.on("status"), 20, "status online")
            assert watcher.on("status")[0]["state"] == "online"
            await watcher.wait_for(lambda w: w.on("heartbeat"), 20, "a heartbeat")
            await watcher.wait_for(lambda w: w.on("usage"), 30, "the usage report")
            usage = watcher.on("usage")[0]
            assert usage["payload"]["billable"] == 11
            assert usage["id"] == usage["payload"]["id"]
            await watcher.wait_for(
                lambda w: {e["check"] for e in w.on("event")} >= {"trunk", "trunks_all"},
                30,
                "trunk problems (the fixture office's trunks are rejected)",
            )
            await watcher.wait_for(lambda w: w.on("backup"), 30, "the catch-up backup result")
            assert watcher.on("backup")[0]["status"] == "ok"

            async with client_for(mosquitto) as central_client:
                await central_client.publish(
                    f"{BASE}/cmd/count-now", signed(central, "count-now"), qos=1
                )
                await central_client.publish(
                    f"{BASE}/cmd/count-now",
                    signed(Ed25519PrivateKey.generate(), "count-now"),
                    qos=1,
                )
            reply = await watcher.wait_for(
                lambda w: [r for r in w.received if r.topic.startswith("reply/")],
                30,
                "the reply to count-now",
            )
            assert reply[0].message["ok"] and reply[0].message["result"]["billable"] == 11

            shown = await cli("events", "--config", str(config), "--json")
            assert shown.returncode == 0, shown.stderr
            local = json.loads(shown.stdout)
            published = {e["id"] for e in watcher.on("event")}
            assert {e["id"] for e in local} >= published and published
            text = await cli("events", "--config", str(config))
            assert "trunks_all: no trunk is registered" in text.stdout
            status = await cli("status", "--config", str(config), "--json")
            telemetry = json.loads(status.stdout)["telemetry"]
            assert telemetry["connected"] and telemetry["commands_refused"] == 1
        finally:
            code, _, err = await asyncio.to_thread(stop_daemon, proc)
        assert code == 0, err
        await watcher.wait_for(
            lambda w: w.on("status")[-1]["state"] == "offline", 10, "status offline on stop"
        )


async def fill_outbox(state_dir: Path, count: int) -> list[dict[str, Any]]:
    """A backlog left by an earlier outage: `count` events already in the daemon's outbox."""
    store = await StateStore.open(state_dir / "state.db")
    outbox = Outbox(store, max_messages=200_000, max_bytes=1 << 30)
    await outbox.open()
    sent = [
        envelope(
            "event",
            "test-site",
            {"kind": "notice", "check": "backlog", "severity": "info", "summary": f"#{n}"},
        )
        for n in range(count)
    ]
    await asyncio.gather(*(outbox.put("event", m) for m in sent))
    await store.close()
    return sent


async def test_sigkill_while_draining_a_backlog_loses_nothing(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto))
    (tmp_path / "state").mkdir()
    sent = await fill_outbox(tmp_path / "state", 8000)
    wanted = {m["id"] for m in sent}

    def arrived(w: Watcher) -> set[str]:
        return {m["id"] for m in w.on("event") if m["id"] in wanted}

    async with Watcher(mosquitto) as watcher:
        proc = start_daemon(config)
        await watcher.wait_for(lambda w: len(arrived(w)) >= 1000, 60, "the drain under way")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        stop_daemon(proc)
        partial = len(arrived(watcher))
        assert partial < len(sent), "killed before the backlog was drained"
        await watcher.wait_for(
            lambda w: w.on("status")[-1]["state"] == "offline", 30, "the Last Will (offline)"
        )
        proc = start_daemon(config)
        try:
            # The restarted daemon is up (its own `online`) before it is stopped: the killed
            # one may have published the whole backlog before the watcher saw it.
            await watcher.wait_for(
                lambda w: w.on("status")[-1]["state"] == "online", 60, "the daemon back online"
            )
            await watcher.wait_for(
                lambda w: arrived(w) == wanted, 120, "every backlog event after the restart"
            )
        finally:
            code, _, err = await asyncio.to_thread(stop_daemon, proc)
        assert code == 0, err
