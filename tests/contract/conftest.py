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
from tests.integration.daemon_harness import write_config

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

    def config(self, *, secret: str | None = None, extra: str = "") -> AgentConfig:
        """A config file for this vendor's driver, loaded by the agent's own loader."""
        name = driver_class(self.harness.driver).settings_table
        keys = "".join(f"{k} = {_toml(v)}\n" for k, v in self.harness.table().items())
        pbx = f'[pbx]\ndriver = "{self.harness.driver}"\n[pbx.{name}]\n{keys}'
        pbx += 'secret_file = "pbx-secret"\n'
        secret = self.harness.secret if secret is None else secret
        return load_config(write_config(self.tmp, 0, secret=secret, extra=extra, pbx=pbx))

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
