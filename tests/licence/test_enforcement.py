"""The full licence cycle against the AMI simulator, with the licence test double and a clock
the test moves: active -> expiring -> lapse (exactly the listed features off, every other
object's effective options unchanged) -> renewal (every object as before the lapse), an
extension added during the lapse refused, and an admin's edit kept as a conflict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.counting.service import CountingService
from agent.daemon import create_driver
from agent.health.monitor import HealthMonitor
from agent.licence.enforcement import Enforcement
from agent.licence.features import feature_rows
from agent.licence.service import LicenceService
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from agent.usage import keys
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.enforce import AsteriskEnforcer
from drivers.asterisk.simulator import Simulator
from drivers.config_files import LocalConfigFiles
from tests.integration.daemon_harness import write_config
from tests.licence.test_licence_service import Clock
from tests.licence_server import LicenceServer

LICENCE_EXTRA = {"integration_accounts": '["crm"]', "lan_subnets": '["127.0.0.0/24"]'}


@dataclass
class Site:
    simulator: Simulator
    server: LicenceServer
    clock: Clock
    driver: AsteriskDriver
    counting: CountingService
    licence: LicenceService
    enforcement: Enforcement
    telemetry: Telemetry
    root: Path

    async def effective(self) -> dict[str, Any]:
        """Every object's effective options in both files the agent may change, and every
        endpoint's PJSIPShowEndpoint detail (without ActionIDs)."""
        reader = AsteriskEnforcer(self.driver.ami, LocalConfigFiles(self.root))
        state: dict[str, Any] = {}
        for filename in ("pjsip.conf", "manager.conf"):
            for name, kind, options in await reader.effective(filename):
                state[f"{filename} [{name}] {kind}"] = options
        for endpoint in await self.driver.endpoints():
            answer = await self.driver.ami.list_action("PJSIPShowEndpoint", Endpoint=endpoint.name)
            state[f"endpoint {endpoint.name}"] = [
                [(k, v) for k, v in m if k != "ActionID"] for m in answer
            ]
        return state

    async def rows(self) -> dict[str, dict[str, Any]]:
        journal = await self.enforcement.journal()
        rows = feature_rows(
            self.licence.evaluation,
            self.driver.feature_switches(),
            self.enforcement.status,
            journal,
        )
        return {r["feature"]: r for r in rows}


@pytest.fixture
async def site(ami_simulator: Simulator, tmp_path: Path) -> AsyncIterator[Site]:
    server = LicenceServer().start()
    root = ami_simulator.ctx.config.root
    backup = f'[backup]\nsource = "local"\npath = "{root}"\n'
    cfg = load_config(
        write_config(tmp_path, ami_simulator.port, extra=server.config(**LICENCE_EXTRA) + backup)
    )
    store = await StateStore.open(cfg.state.dir / "state.db")
    driver = create_driver(cfg)
    assert isinstance(driver, AsteriskDriver)
    driver.use_config_files(LocalConfigFiles(root))
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    key = keys.load_or_create(cfg.state.dir)
    counting = CountingService(driver, store, cfg, key)
    clock = Clock()
    licence = LicenceService(store, cfg, telemetry, health, clock=clock)
    enforcement = Enforcement(store, cfg, driver, telemetry, counting)
    licence.listeners.append(enforcement.on_licence)
    counting.listeners.append(enforcement.on_count)
    await licence.open()
    try:
        yield Site(
            ami_simulator, server, clock, driver, counting, licence, enforcement, telemetry, root
        )
    finally:
        server.stop()
        await driver.close()
        await store.close()


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys_ = sorted(set(before) | set(after))
    return {k: (before.get(k), after.get(k)) for k in keys_ if before.get(k) != after.get(k)}


async def test_lapse_switches_exactly_the_listed_features_and_renewal_restores(
    site: Site,
) -> None:
    expires = site.clock.at + timedelta(days=90)
    site.server.issue(expires_at=expires)
    await site.licence.refresh()
    await site.counting.count_now()
    assert site.licence.state == "active"
    pristine = await site.effective()
    files = {n: (site.root / n).read_bytes() for n in ("pjsip.conf", "manager.conf")}

    site.clock.at = expires - timedelta(days=10)
    await site.licence.refresh()
    assert site.licence.state == "expiring"
    assert await site.effective() == pristine, "expiring changes nothing"

    site.clock.at = expires + timedelta(hours=1)
    await site.licence.refresh()  # the server still serves the expired token: lapse now
    assert site.licence.state == "lapsed"
    lapsed = await site.effective()
    changed = differences(pristine, lapsed)
    app_endpoints = {"102-app"}
    phones = {e for e in (k.split()[1] for k in pristine if k.startswith("endpoint "))}
    expected = {f"pjsip.conf [{e}] endpoint" for e in phones - {"trunk-provider", "trunk-backup"}}
    expected |= {f"endpoint {e}" for e in phones - {"trunk-provider", "trunk-backup"}}
    expected |= {"manager.conf [crm] "}
    assert set(changed) <= expected, sorted(set(changed) - expected)
    assert "manager.conf [crm] " in changed and "pjsip.conf [102-app] endpoint" in changed
    assert not any("aor" in k or "auth" in k for k in changed), "only endpoint sections"
    for key in (k for k in changed if k.startswith("endpoint ")):
        before, after = changed[key]
        diff = [(a, b) for a, b in zip(before[1], after[1], strict=True) if a != b]
        assert [k for (k, _), _ in diff] == ["Acl"], (key, diff)  # only the ACL, nothing else
    rows = await site.rows()
    assert {f for f, r in rows.items() if r["wanted"] == "off"} == set(rows)
    assert not rows["remote_portal"]["enforced"] and not rows["software_updates"]["enforced"]
    for feature in ("softphone_app", "offsite_devices", "integrations"):
        assert rows[feature]["enforced"] and rows[feature]["journal"], feature
    assert all(e["state"] == "applied" for r in rows.values() for e in r["journal"])
    assert app_endpoints <= {e["section"] for e in rows["softphone_app"]["journal"]}

    # Another refresh or count while lapsed applies nothing twice.
    journal_before = await site.enforcement.journal()
    await site.licence.refresh()
    await site.counting.count_now()
    assert await site.enforcement.journal() == journal_before
    assert await site.effective() == lapsed

    site.server.issue(expires_at=expires + timedelta(days=365), issued_at=site.clock.at)
    await site.licence.refresh()
    assert site.licence.state == "active"
    assert await site.effective() == pristine, "renewal restores every object exactly"
    for name, data in files.items():
        assert (site.root / name).read_bytes() == data, name
    journal_after = await site.enforcement.journal()
    assert {e["state"] for e in journal_after} == {"undone"}


async def test_extension_added_during_a_lapse_is_refused_and_admin_edit_is_a_conflict(
    site: Site,
) -> None:
    site.server.issue(expires_at=site.clock.at + timedelta(days=200))
    await site.licence.refresh()
    await site.counting.count_now()
    site.server.issue(expires_at=site.clock.at + timedelta(days=200), status="lapsed")
    await site.licence.refresh()
    assert site.licence.state == "lapsed"

    pjsip = site.root / "pjsip.conf"
    pjsip.write_text(
        pjsip.read_text()
        + '\n[120](tpl-endpoint-phone)\ncallerid = "New Hire" <120>\nauth = 120\naors = 120\n'
        + "\n[120](tpl-aor-phone)\n"
    )
    await site.driver.ami.action("Reload", Module="res_pjsip.so")
    await site.counting.count_now()
    rows = await site.rows()
    assert {e["section"] for e in rows["add_extensions"]["journal"]} == {"120"}

    text = pjsip.read_text()
    edited = text.replace(
        "permit = 127.0.0.0/24 ;pbx-agent:offsite_devices",
        "permit = 10.9.0.0/16 ;pbx-agent:offsite_devices",
        1,
    )
    assert edited != text
    pjsip.write_text(edited)
    site.server.issue(expires_at=site.clock.at + timedelta(days=365), issued_at=site.clock.at)
    await site.licence.refresh()
    assert site.licence.state == "active"
    after = pjsip.read_text()
    assert after.count(";pbx-agent:") == 1, "only the admin-edited line stays"
    assert "permit = 10.9.0.0/16 ;pbx-agent:offsite_devices" in after
    conflicts = [
        e for e in await site.telemetry.events(0, 500) if e["check"] == "enforcement_conflict"
    ]
    assert len(conflicts) == 1 and "left it" in conflicts[0]["summary"]
    journal = await site.enforcement.journal()
    assert [e["state"] for e in journal].count("conflict") == 1
