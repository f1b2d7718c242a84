"""The agent around a contract vendor's driver, for the feature tests: the count that decides
what each feature acts on, and the agent's own enforcement (licence test double, journal,
poller) switching the vendor's simulated PBX, in this process or in a child the tests kill."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.config.schema import AgentConfig
from agent.counting.rules import History
from agent.counting.service import CountingService
from agent.counting.tenants import count_inventory
from agent.health.monitor import HealthMonitor
from agent.licence.enforcement import Enforcement
from agent.licence.features import feature_rows
from agent.licence.policy import endpoints_of, shared_app_seats
from agent.licence.service import LicenceService
from agent.pbx_poller import PbxPoller
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from agent.usage import keys
from drivers.base import Driver
from drivers.models import FeaturePolicy
from tests.contract.conftest import Rig
from tests.licence.test_licence_service import Clock
from tests.licence_server import LicenceServer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def digests(root: Path) -> dict[str, str]:
    """Every file of the PBX's configuration tree, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def policy_of(rig: Rig, driver: Driver, **changes: Any) -> FeaturePolicy:
    """What the agent would switch on this office: its count report's apps and phones, the
    site's networks and integration accounts from the vendor's expected.json."""
    inventory = await driver.inventory()
    report = count_inventory(
        inventory, rig.config().counting, History(NOW, {}), site_id="contract", now=NOW
    ).to_json()
    roles, _ = endpoints_of(report)
    want = rig.expected["features"]
    policy = FeaturePolicy(
        app_endpoints=tuple(sorted(e for e, role in roles.items() if role == "app")),
        phone_endpoints=tuple(sorted(e for e, role in roles.items() if role == "phone")),
        shared_app_seats=tuple(shared_app_seats(report, roles)),
        integration_accounts=tuple(want["integration_accounts"]),
        lan_subnets=tuple(want["lan_subnets"]),
    )
    return replace(policy, **changes)


def agent_config(rig: Rig, server: LicenceServer, *, files: bool = True) -> AgentConfig:
    """The vendor's config with the licence test double and, with `files`, the PBX's config
    folder reached locally (the way backups reach it)."""
    want = rig.expected["features"]
    accounts = ", ".join(f'"{a}"' for a in want["integration_accounts"])
    nets = ", ".join(f'"{n}"' for n in want["lan_subnets"])
    extra = server.config(integration_accounts=f"[{accounts}]", lan_subnets=f"[{nets}]")
    if files:
        extra += f'[backup]\nsource = "local"\npath = "{rig.harness.config_tree()}"\n'
    return rig.config(extra=extra)


@dataclass
class Site:
    """The agent's enforcement in this process, with a clock the test moves."""

    rig: Rig
    server: LicenceServer
    clock: Clock
    driver: Driver
    counting: CountingService
    licence: LicenceService
    enforcement: Enforcement
    telemetry: Telemetry
    poller: PbxPoller
    store: StateStore

    async def rows(self) -> dict[str, dict[str, Any]]:
        rows = feature_rows(
            self.licence.evaluation,
            self.driver.feature_switches(),
            self.enforcement.status,
            await self.enforcement.journal(),
        )
        return {r["feature"]: r for r in rows}

    async def problems(self) -> dict[str, tuple[str, str]]:
        """feature -> (kind, severity) of its newest `feature_switch` event."""
        found: dict[str, tuple[str, str]] = {}
        for event in await self.telemetry.events(0, 1000):
            if event["check"] == "feature_switch":
                found[event["subject"]] = (event["kind"], event["severity"])
        return found

    async def lapse(self) -> None:
        self.server.issue(expires_at=self.clock.at + timedelta(days=200), status="lapsed")
        await self.licence.refresh()
        assert self.licence.state == "lapsed"

    async def renew(self) -> None:
        self.server.issue(expires_at=self.clock.at + timedelta(days=365), issued_at=self.clock.at)
        await self.licence.refresh()
        assert self.licence.state == "active"

    async def close(self) -> None:
        self.server.stop()
        await self.driver.close()
        await self.store.close()


async def open_site(rig: Rig, *, files: bool = True) -> Site:
    server = LicenceServer().start()
    cfg = agent_config(rig, server, files=files)
    store = await StateStore.open(cfg.state.dir / "state.db")
    driver = rig.driver()
    if files:
        driver.use_config_files(rig.harness.config_files())
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    counting = CountingService(driver, store, cfg, keys.load_or_create(cfg.state.dir))
    clock = Clock()
    licence = LicenceService(store, cfg, telemetry, health, clock=clock)
    enforcement = Enforcement(store, cfg, driver, telemetry, counting, health)
    licence.listeners.append(enforcement.on_licence)
    counting.listeners.append(enforcement.on_count)
    poller = PbxPoller(driver, store, interval=60, cycle_timeout=30)
    poller.listeners.append(enforcement.on_poll)
    await licence.open()
    server.issue(expires_at=clock.at + timedelta(days=200))
    await licence.refresh()
    await counting.count_now()
    await poller.poll_once()
    return Site(
        rig, server, clock, driver, counting, licence, enforcement, telemetry, poller, store
    )
