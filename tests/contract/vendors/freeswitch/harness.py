"""FreeSWITCH in the contract suite: the ESL simulator serving the two-tenant fixture office
(tests/fixtures/freeswitch-esl/, offices/bayside-coastal.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES
from tests.contract.harness import SimulatorHarness


class Harness(SimulatorHarness):
    driver = "freeswitch"
    secret = "Fake-Esl-Pass-2024"

    def __init__(self) -> None:
        self.esl = Simulator(load_office(FIXTURES / "offices" / "bayside-coastal.toml"))
        super().__init__(self.esl)

    def config_tree(self) -> Path:
        return self.esl.state.conf_dir

    def table(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.esl.port}
