"""Asterisk in the contract suite: the AMI simulator serving the Northwind fixture office
(tests/fixtures/asterisk-ami/, offices/northwind.toml)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from drivers.asterisk.sim import registrar
from drivers.asterisk.sim.core_actions import reload_module
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.config_files import ConfigFiles, LocalConfigFiles
from tests.conftest import AGENT_SECRET, FIXTURES
from tests.contract.harness import SimulatorHarness

NEW_EXTENSION = (
    "\n[112]\ntype=endpoint\ntransport=transport-udp\ncontext=from-internal\n"
    'callerid="Hank Ito" <112>\nauth=112\naors=112\n'
    "\n[112]\ntype=aor\nmax_contacts=1\n"
    "\n[112]\ntype=auth\nauth_type=userpass\nusername=112\npassword=x112\n"
)


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

    def config_files(self) -> ConfigFiles:
        return LocalConfigFiles(self.config_tree())

    def prepare_lapse(self) -> None:
        # The captured office has every phone on site: 104 also registers from a home office.
        away = Contact("104", "sip:104@198.18.5.2:5060", "Yealink SIP-T46U 108.86.0.90")
        assert self.ami.register(away) == registrar.ACCEPTED

    def refresh(self, endpoint: str) -> dict[str, bool]:
        ctx = self.ami.ctx
        return {
            device.via[0]: registrar.register(ctx, device) == registrar.ACCEPTED
            for device in list(ctx.live.devices)
            if device.aor == endpoint
        }

    def registered(self, endpoint: str) -> list[str]:
        return [c.via[0] for c in self.ami.ctx.live.contacts_of(endpoint)]

    async def add_extension(self) -> str:
        path = self.config_tree() / "pjsip.conf"
        text = path.read_text()
        at = text.find("\n; pbx-agent:")  # an admin's sections go before the agent's blocks
        at = len(text) if at < 0 else at
        path.write_text(text[:at] + NEW_EXTENSION + text[at:])
        reload_module(self.ami.ctx, "res_pjsip.so")
        phone = Contact("112", "sip:112@127.0.0.30:5060", "Yealink SIP-T46U 108.86.0.90")
        assert self.ami.register(phone) == registrar.ACCEPTED
        return "112"

    async def pbx_undoes(self) -> None:
        for original in self.ami.office.config_dir.iterdir():
            shutil.copyfile(original, self.config_tree() / original.name)
        reload_module(self.ami.ctx, "All")

    def runtime_switched(self) -> set[str]:
        return set(self.ami.ctx.live.maintenance)
