"""The driver contract: what every driver must do, checked for each vendor folder against its
simulator over TCP and its expected.json. A new driver passes by adding a folder.

Feature switching (switch, exact undo, crash convergence) is in test_features.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import pyrage
import pytest
from structlog.testing import capture_logs

from agent.backup.service import BackupService
from agent.counting.explain import explain
from agent.counting.rules import History
from agent.counting.tenants import count_inventory
from agent.health.monitor import HealthMonitor
from agent.pbx_poller import PbxPoller
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from drivers.errors import DriverAuthError, DriverConnectionError, DriverError, DriverTimeout
from drivers.models import Capability
from drivers.registry import driver_class
from tests.contract.conftest import Rig, eventually

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def test_driver_is_built_from_its_own_settings_table(rig: Rig) -> None:
    cls = driver_class(rig.harness.driver)
    assert cls.settings_table and cls.default_config_dir.startswith("/etc/")
    driver = rig.driver()
    assert type(driver) is cls
    assert {Capability.FACTS, Capability.INVENTORY} <= driver.capabilities
    cfg = rig.config()
    assert cfg.backup.path == cls.default_config_dir, "backups copy the driver's config folder"
    assert rig.harness.secret not in repr(cfg) and rig.harness.secret not in repr(driver.__dict__)


async def test_facts(rig: Rig) -> None:
    driver = rig.driver()
    await driver.connect()
    first = await driver.facts()
    for key, value in rig.expected["facts"].items():
        assert getattr(first, key) == value, key
    assert first.startup_time is not None and first.uptime_seconds is not None
    await asyncio.sleep(1.1)
    again = await driver.facts()
    assert again.startup_time == first.startup_time, "a start time that moves is a false restart"


async def test_declared_operations_answer(rig: Rig) -> None:
    driver = rig.driver()
    await driver.connect()
    if driver.supports(Capability.ENDPOINTS):
        endpoints = await driver.endpoints()
        assert endpoints and all(e.name and e.device_state for e in endpoints)
        if rig.expected.get("phones") is not None:
            assert len(endpoints) == rig.expected["phones"]
    if driver.supports(Capability.REGISTRATIONS):
        names = sorted(r.name for r in await driver.registrations())
        assert set(rig.expected["trunks_down"]) <= set(names)


async def test_counting_acceptance_office(rig: Rig) -> None:
    """The acceptance office counts as its README says: the billable total, each tenant,
    every seat with its merge rule, every object that is not a user with its reason."""
    driver = rig.driver()
    await driver.connect()
    inventory = await driver.inventory()
    report = count_inventory(
        inventory, rig.config().counting, History(NOW, {}), site_id="contract", now=NOW
    )
    expected = rig.expected
    assert report.billable == expected["billable"]
    assert {t.tenant: t.billable for t in report.tenants} == expected["tenants"]
    seats = {s.extension: s for s in report.seats}
    assert sorted(seats) == sorted(expected["seats"])
    for extension, want in expected["seats"].items():
        seat = seats[extension]
        merged = {e.endpoint: e.rule for e in seat.endpoints[1:]}
        assert merged == want.get("merged", {}), extension
        for also in want.get("also", []):
            assert all(also in e.also for e in seat.endpoints[1:]), extension
        if "kind" in want:
            assert seat.kind == want["kind"], extension
        if "devices" in want:
            assert len(seat.devices) == want["devices"], extension
    excluded = {x.name: x for x in report.excluded}
    for name in expected["not_counted"]:
        assert name in excluded and excluded[name].reason, f"{name} is not explained"
    schema = json.loads(
        resources.files("agent").joinpath("schemas/count-report.schema.json").read_text()
    )
    jsonschema.validate(json.loads(json.dumps(report.to_json())), schema)
    text = explain(report.to_json())
    assert f"Billable users (seats): {expected['billable']}" in text
    for tenant, seats_count in expected["tenants"].items():
        assert f"Tenant {tenant}: {seats_count} seats" in text


async def _health(rig: Rig) -> tuple[PbxPoller, Telemetry, StateStore]:
    cfg = rig.config(extra="[health]\nflap_count = 1\n")
    store = await StateStore.open(cfg.state.dir / "state.db")
    telemetry = Telemetry(store, cfg)
    monitor = HealthMonitor(store, cfg, telemetry)
    await monitor.open()
    driver = rig.driver()
    poller = PbxPoller(driver, store, interval=3600, cycle_timeout=3.0)
    poller.listeners.append(monitor.on_poll)
    return poller, telemetry, store


async def _events(telemetry: Telemetry, check: str) -> list[dict[str, Any]]:
    return [e for e in await telemetry.events(0, 1000) if e["check"] == check]


async def test_health_events(rig: Rig) -> None:
    """Trunks that do not register, a PBX that shuts down and a restart are the same health
    events on every vendor."""
    poller, telemetry, store = await _health(rig)
    try:
        assert (await poller.poll_once()).ok
        trunks = await _events(telemetry, "trunk")
        assert sorted(e["subject"] for e in trunks) == sorted(rig.expected["trunks_down"])
        assert [e["severity"] for e in await _events(telemetry, "trunks_all")] == ["critical"]

        await rig.harness.shutdown()
        result = await poller.poll_once()
        assert not result.ok and result.error
        down = await _events(telemetry, "pbx_reachable")
        assert [(e["kind"], e["severity"]) for e in down] == [("problem", "critical")]

        await rig.harness.restart()

        async def back() -> None:
            assert (await poller.poll_once()).ok

        await eventually(back, 15)
        kinds = [e["kind"] for e in await _events(telemetry, "pbx_reachable")]
        assert kinds == ["problem", "resolved"]
        assert len(await _events(telemetry, "pbx_restarted")) == 1
    finally:
        await store.close()


async def test_wrong_secret_is_refused_clearly(rig: Rig) -> None:
    driver = rig.driver(secret="not-the-secret")
    with capture_logs() as logs, pytest.raises(DriverAuthError):
        await driver.connect()
    assert "not-the-secret" not in repr(logs)


async def test_refused_connection(rig: Rig) -> None:
    rig.harness.faults.refuse_connections = True
    driver = rig.driver()
    with pytest.raises(DriverConnectionError):
        await driver.connect()


async def test_hostile_answers(rig: Rig) -> None:
    """Garbage, a peer that stops answering and an answer cut mid-way: an error with a
    reason, within the time limit, never a hang; then the driver works again."""
    driver = rig.driver()
    await driver.connect()
    rig.harness.faults.garbage = b"\x00\xffnot a PBX protocol\r\n\n\n" * 3
    with pytest.raises(DriverError):
        await asyncio.wait_for(driver.facts(), 10)

    async def recovered() -> None:
        await driver.facts()

    await eventually(recovered)

    rig.harness.faults.stall = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DriverTimeout):
        await asyncio.wait_for(driver.facts(), 10)
    assert loop.time() - started < 6, "the action timeout (2 s) bounds a silent PBX"
    rig.harness.faults.stall = False
    await eventually(recovered)

    rig.harness.faults.drop_mid_list = True
    with pytest.raises(DriverError):
        await asyncio.wait_for(driver.inventory(), 10)
    await eventually(recovered)


async def test_reconnects_after_a_restart(rig: Rig) -> None:
    driver = rig.driver()
    await driver.connect()
    before = await driver.facts()
    await rig.harness.restart()

    async def facts_again() -> Any:
        return await driver.facts()

    after = await eventually(facts_again, 15)
    assert after.startup_time != before.startup_time


async def test_backup_of_the_pbx_configuration(rig: Rig) -> None:
    """The existing backup sources take the driver's configuration folder as it is."""
    recipient = pyrage.x25519.Identity.generate().to_public()
    tree = rig.harness.config_tree()
    cfg = rig.config(
        extra=f'[backup]\nenabled = true\nsource = "local"\npath = "{tree}"\n'
        f'recipients = ["{recipient}"]\n'
    )
    store = await StateStore.open(cfg.state.dir / "state.db")
    try:
        row = await BackupService(store, cfg).backup_now()
    finally:
        await store.close()
    assert row["status"] == "ok", row.get("error")
    assert row["files"] == sum(1 for p in tree.rglob("*") if p.is_file())
    assert (tree / rig.expected["config_file"]).is_file()
