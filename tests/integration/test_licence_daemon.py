"""The licence through the daemon: `licence refresh|status`, `features`, licence messages on
MQTT (schema-checked by the watcher), over-allocation, a lapse stopping the off-site copy, and
a PBX that cannot be switched: critical problems, "not switched" everywhere, `diag` FAILs."""

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
                by_name = {r["feature"]: r for r in rows}
                assert by_name["remote_portal"]["actual"] == "n/a"  # Asterisk has none
                assert by_name["offsite_devices"]["actual"] == "off"
                # Alice's app shares AOR 101 with her desk phone; crm is not named in config.
                unswitched = [r["feature"] for r in rows if not r["enforced"]]
                assert unswitched == ["softphone_app", "integrations"]
                assert by_name["integrations"]["actual"].startswith(
                    "not switched: licence.integration_accounts is empty"
                )
                assert "NOT SWITCHED" in text and "not switched: seat 101 (Alice Nguyen)" in text
                assert "; pbx-agent:softphone_app 102-app:" in (root / "pjsip.conf").read_text()
                shown = (await cli("licence", "status", "--config", str(config))).stdout
                assert "offsite_devices   wanted off  actual off" in shown
                assert "integrations      wanted off  actual not switched:" in shown
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
                plain = (await cli("status", "--config", str(config))).stdout
                assert "NOT switched: softphone_app, integrations" in plain
                assert "feature_switch:softphone_app" in plain
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


async def test_a_pbx_that_cannot_be_switched_fails_diag(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    """No access to the config files and an Asterisk without maintenance mode: nothing is
    switched, and every command says so."""
    server = LicenceServer().start()
    try:
        server.issue(expires_at=now() + timedelta(days=200), status="lapsed")
        extra = server.config(lan_subnets='["127.0.0.0/24"]', integration_accounts='["crm"]')
        config = write_config(tmp_path, ami_simulator.port, extra=extra)
        sock = tmp_path / "state" / "control.sock"
        proc = start_daemon(config)
        try:
            await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "daemon")
            await cli("licence", "refresh", "--config", str(config))
            rows = json.loads((await cli("features", "--config", str(config), "--json")).stdout)
            by_name = {r["feature"]: r for r in rows}
            for feature in ("softphone_app", "offsite_devices", "integrations", "add_extensions"):
                assert by_name[feature]["actual"].startswith("not switched: "), by_name[feature]
            assert "no maintenance mode" in by_name["softphone_app"]["actual"]
            assert not any(r["actual"] == "off" for r in rows if r["feature"] != "config_archive")
            shown = (await cli("licence", "status", "--config", str(config))).stdout
            assert "softphone_app     wanted off  actual not switched:" in shown
            listed = (await cli("events", "--config", str(config))).stdout
            assert "critical problem  feature_switch/softphone_app" in listed
            result = await cli("diag", "--config", str(config), "--json")
            assert result.returncode == 1
            checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
            assert checks["feature-softphone_app"]["status"] == "FAIL"
            assert "no maintenance mode" in checks["feature-softphone_app"]["hint"]
        finally:
            code, _, err = await asyncio.to_thread(stop_daemon, proc)
        assert code == 0, err
    finally:
        server.stop()
