"""Fixtures of the driver contract suite: one run per vendor folder, each with its simulator
started on a free port, and drivers built the way the daemon builds them (a config file, the
loader, the registry)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.config.schema import AgentConfig
from agent.daemon import create_driver
from drivers.base import Driver
from drivers.registry import driver_class
from tests.contract.harness import Harness, Vendor, vendors

VENDORS = vendors()


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@dataclass
class Rig:
    vendor: Vendor
    harness: Harness
    tmp: Path
    drivers: list[Driver]

    @property
    def expected(self) -> dict[str, Any]:
        return self.vendor.expected

    def config(self, *, secret: str | None = None, extra: str = "", **table: Any) -> AgentConfig:
        """A config file for this vendor's driver, loaded by the agent's own loader."""
        secret_file = self.tmp / "pbx-secret"
        secret_file.write_text((self.harness.secret if secret is None else secret) + "\n")
        secret_file.chmod(0o600)
        keys = {
            **self.harness.table(),
            "connect_timeout": 2.0,
            "action_timeout": 2.0,
            "reconnect_initial": 0.1,
            "reconnect_max": 0.5,
            **table,
        }
        body = "\n".join(f"{k} = {_toml(v)}" for k, v in keys.items())
        name = driver_class(self.harness.driver).settings_table
        path = self.tmp / "agent.toml"
        path.write_text(
            f'site_id = "contract"\n[pbx]\ndriver = "{self.harness.driver}"\n'
            f'[pbx.{name}]\n{body}\nsecret_file = "pbx-secret"\n'
            f'[state]\ndir = "state"\n[control]\nsocket = "state/control.sock"\n{extra}\n'
        )
        return load_config(path)

    def driver(self, **kw: Any) -> Driver:
        driver = create_driver(self.config(**kw))
        self.drivers.append(driver)
        return driver


@pytest.fixture(params=VENDORS, ids=[v.name for v in VENDORS])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    vendor: Vendor = request.param
    harness = vendor.harness()
    await harness.start()
    built = Rig(vendor, harness, tmp_path, [])
    try:
        yield built
    finally:
        for driver in built.drivers:
            await driver.close()
        await harness.stop()


async def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Retry `check` (a coroutine function) until it returns without raising."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await check()
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
