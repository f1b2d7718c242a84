"""Asterisk in the contract suite: the AMI simulator serving the Northwind fixture office
(tests/fixtures/asterisk-ami/, offices/northwind.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from tests.conftest import AGENT_SECRET, FIXTURES
from tests.contract.harness import SimulatorHarness


class Harness(SimulatorHarness):
    driver = "asterisk"
    secret = AGENT_SECRET

    def __init__(self) -> None:
        self.ami = Simulator(load_office(FIXTURES / "offices" / "northwind.toml"))
        super().__init__(self.ami)

    async def start(self) -> None:
        await super().start()
        live = self.ami.ctx.live
        live.started_at -= 3600  # up for an hour: a restart shows as a new start time
        live.reloaded_at -= 3600

    def config_tree(self) -> Path:
        return self.ami.ctx.config.root

    def table(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.ami.port, "username": "agent"}
