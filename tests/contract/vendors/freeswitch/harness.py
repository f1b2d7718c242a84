"""FreeSWITCH in the contract suite: the ESL simulator serving the two-tenant fixture office
(tests/fixtures/freeswitch-esl/, offices/bayside-coastal.toml)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from drivers.config_files import ConfigFiles, LocalConfigFiles
from drivers.freeswitch.sim.office import Device, load_office
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES
from tests.contract.harness import SimulatorHarness

NEW_USER = """
        <user id="1011">
          <params>
            <param name="password" value="fake-1011-New"/>
          </params>
          <variables>
            <variable name="effective_caller_id_name" value="New Physio"/>
            <variable name="effective_caller_id_number" value="1011"/>
          </variables>
        </user>
"""


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

    def config_files(self) -> ConfigFiles:
        return LocalConfigFiles(self.config_tree())

    def refresh(self, endpoint: str) -> dict[str, bool]:
        return {ip: code == 200 for ip, code in self.esl.state.refresh(endpoint).items()}

    def registered(self, endpoint: str) -> list[str]:
        return [row.ip for row in self.esl.state.registered(endpoint)]

    async def add_extension(self) -> str:
        """A new user as FusionPBX-style tooling writes it: in the domain's file, then
        reloadxml; a desk phone on the LAN registers to it."""
        path = self.config_tree() / "directory" / "bayside.example.xml"
        text = path.read_text()
        at = text.rfind("      </users>")
        path.write_text(text[:at] + NEW_USER.lstrip("\n") + text[at:])
        assert self.esl.state.reloadxml() == "+OK [Success]\n"
        phone = Device(
            "1011@bayside.example",
            "sip:1011@127.0.8.31:5062;transport=udp",
            "Yealink SIP-T54W 96.86.0.100",
            "1-9011@127.0.8.31",
        )
        assert self.esl.state.add_device(phone) == 200
        return "1011@bayside.example"

    async def pbx_undoes(self) -> None:
        root = self.config_tree()
        shutil.rmtree(root)
        shutil.copytree(self.esl.office.config_dir, root)
        assert self.esl.state.reloadxml() == "+OK [Success]\n"

    def runtime_switched(self) -> set[str]:
        return set()  # FreeSWITCH's switches are all in its configuration
