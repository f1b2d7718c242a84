"""FreeSWITCH in the contract suite: the ESL simulator serving the two-tenant fixture office
(tests/fixtures/freeswitch-esl/, offices/bayside-coastal.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.simulator import Simulator
from drivers.sim_faults import Faults
from tests.conftest import FIXTURES


class Harness:
    driver = "freeswitch"
    secret = "Fake-Esl-Pass-2024"

    def __init__(self) -> None:
        self.simulator = Simulator(load_office(FIXTURES / "offices" / "bayside-coastal.toml"))
        self.faults: Faults = self.simulator.faults

    async def start(self) -> None:
        await self.simulator.start()

    async def stop(self) -> None:
        await self.simulator.stop()

    async def restart(self) -> None:
        await self.simulator.restart()

    async def shutdown(self) -> None:
        await self.simulator.shutdown()

    def config_tree(self) -> Path:
        return self.simulator.state.conf_dir

    def table(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.simulator.port}
