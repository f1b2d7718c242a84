"""The licence through the daemon: `licence refresh|status`, `features`, licence messages on
MQTT (schema-checked by the watcher), over-allocation, and a lapse stopping the off-site copy."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.test_telemetry_daemon import mqtt_section
from tests.licence_server import LicenceServer, now
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher


async def test_licence_cycle_through_the_daemon(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    server = LicenceServer().start()
    try:
        server.issue(expires_at=now() + timedelta(days=200), max_users=5)
        root = ami_simulator.ctx.config.root
        pristine = (root / "pjsip.conf").read_bytes()
        pbx_files = f'[backup]\nsource = "local"\npath = "{root}"\n'
        extra = server.config(lan_subnets='["127.0.0.0/24"]') + pbx_files
        config = write_config(tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto) + extra)
        sock = tmp_path / "state" / "control.sock"
        async with Watcher(mosquitto) as watcher:
            proc = start_daemon(config)
            try:
                await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "daemon")
                shown = await cli("licence", "refresh", "--config", str(config), "--json")
                assert shown.returncode == 0, shown.stderr
                assert json.loads(shown.stdout)["state"] == "active"
                await watcher.wait_for(
                    lambda w: [m for m in w.on("licence") if m["state"] == "active"],
                    20,
                    "the licence message",
                )
                await watcher.wait_for(
                    lambda w: [e for e in w.on("event") if e["check"] == "over_allocation"],
                    30,
                    "over-allocation warning (11 users, 5 licensed)",
                )
                features = json.loads(
                    (await cli("features", "--config", str(config), "--json")).stdout
                )
                assert {f["feature"]: f["wanted"] for f in features}["softphone_app"] == "on"

                server.issue(expires_at=now() + timedelta(days=200), status="lapsed")
                lapsed = await cli("licence", "refresh", "--config", str(config))
                assert "Licence    lapsed: the licence server says lapsed" in lapsed.stdout
                text = (await cli("features", "--config", str(config))).stdout
                assert "config_archive" in text and "off" in text
                rows = json.loads((await cli("features", "--config", str(config), "--json")).stdout)
                assert all(r["wanted"] == "off" for r in rows)
                unswitched = [r["feature"] for r in rows if not r["enforced"]]
                assert unswitched == ["remote_portal", "software_updates"]  # no such setting
                assert ";pbx-agent:softphone_app" in (root / "pjsip.conf").read_text()
                await watcher.wait_for(
                    lambda w: [m for m in w.on("licence") if m["action"] == "switch-off"],
                    20,
                    "the switch-off messages",
                )
                await watcher.wait_for(
                    lambda w: [m for m in w.on("licence") if m["state"] == "lapsed"],
                    20,
                    "the lapse message",
                )
                status = await cli("status", "--config", str(config), "--json")
                assert json.loads(status.stdout)["licence"]["state"] == "lapsed"
                server.issue(expires_at=now() + timedelta(days=400), issued_at=now())
                renewed = await cli("licence", "refresh", "--config", str(config), "--json")
                assert json.loads(renewed.stdout)["state"] == "active"
                assert (root / "pjsip.conf").read_bytes() == pristine
                await watcher.wait_for(
                    lambda w: [m for m in w.on("licence") if m["action"] == "restore"],
                    20,
                    "the restore messages",
                )
            finally:
                code, _, err = await asyncio.to_thread(stop_daemon, proc)
            assert code == 0, err
    finally:
        server.stop()
