"""The agent around a contract vendor's driver, for the feature tests: the count that decides
what each feature acts on, and the agent's own enforcement (tests/enforcement_rig.py)
switching the vendor's simulated PBX."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config.schema import AgentConfig
from agent.counting.rules import History
from agent.counting.tenants import count_inventory
from agent.licence.policy import endpoints_of, shared_app_seats
from drivers.base import Driver
from drivers.models import FeaturePolicy
from tests.contract.conftest import Rig
from tests.enforcement_rig import Agent, start_agent
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


async def open_site(rig: Rig, *, files: bool = True) -> Agent:
    """The agent's enforcement around the vendor's driver, in this process."""
    server = LicenceServer().start()
    cfg = agent_config(rig, server, files=files)
    driver = rig.driver()
    if files:
        driver.use_config_files(rig.harness.config_files())
    return await start_agent(cfg, driver, server)
