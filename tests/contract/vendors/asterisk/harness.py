"""Asterisk in the contract suite: the AMI simulator serving the Northwind fixture office
(tests/fixtures/asterisk-ami/, offices/northwind.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.sim_faults import Faults
from tests.conftest import AGENT_SECRET, FIXTURES


class Harness:
    driver = "asterisk"
    secret = AGENT_SECRET

    def __init__(self) -> None:
        self.simulator = Simulator(load_office(FIXTURES / "offices" / "northwind.toml"))
        self.faults: Faults = self.simulator.faults

    async def start(self) -> None:
        await self.simulator.start()
        live = self.simulator.ctx.live
        live.started_at -= 3600  # up for an hour: a restart shows as a new start time
        live.reloaded_at -= 3600

    async def stop(self) -> None:
        await self.simulator.stop()

    async def restart(self) -> None:
        await self.simulator.restart()

    async def shutdown(self) -> None:
        await self.simulator.shutdown()

    def config_tree(self) -> Path:
        return self.simulator.ctx.config.root

    def table(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.simulator.port, "username": "agent"}
