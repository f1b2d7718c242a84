"""The simulator's runtime model behind capture 2: maintenance exists only where the PBX
version and modules have it, a deleted contact returns at the phone's next accepted refresh,
maintenance and ACLs refuse refreshes without touching existing bindings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.base import Session, SimContext
from drivers.asterisk.sim.dispatch import dispatch
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from tests.conftest import FIXTURES

OFFICE = FIXTURES / "offices" / "northwind-freepbx.toml"
AGENT = Session(
    username="agent",
    read=frozenset({"system", "config", "reporting", "command"}),
    write=frozenset({"system", "config", "reporting", "command"}),
)


@pytest.fixture
def simulator() -> Simulator:
    simulator = Simulator(load_office(OFFICE))
    simulator.ctx.load_all()  # what start() does: the PBX reads its files at start
    return simulator


def ask(ctx: SimContext, action: str, **headers: str) -> list[wire.Message]:
    return dispatch(ctx, AGENT, [("Action", action), *headers.items()]).messages


def contact_names(ctx: SimContext) -> list[str]:
    return [wire.get(m, "ObjectName") or "" for m in ask(ctx, "PJSIPShowContacts")[1:-1]]


def test_an_asterisk_without_res_pjsip_maintenance_has_no_maintenance_actions(
    tmp_path: Path,
) -> None:
    office = tmp_path / "old.toml"
    text = OFFICE.read_text().replace('version = "22.10.1"', 'version = "22.5.2"')
    folder = OFFICE.parent.parent / "asterisk-ami-freepbx"
    office.write_text(text.replace("../asterisk-ami-freepbx", str(folder)))
    ctx = Simulator(load_office(office)).ctx
    listed = ask(ctx, "ListCommands")[0]
    assert not any(k.startswith("PJSIP") and "Maintenance" in k for k, _ in listed)
    answer = ask(ctx, "PJSIPSetMaintenance", Endpoint="102-app", State="on")[0]
    assert wire.get(answer, "Message", "").startswith("Invalid/unknown command")


def test_noload_in_modules_conf_removes_maintenance(simulator: Simulator) -> None:
    ctx = simulator.ctx
    modules = ctx.config.root / "modules.conf"
    modules.write_text(modules.read_text() + "noload => res_pjsip_maintenance.so\n")
    ctx.restarted()
    answer = ask(ctx, "PJSIPShowMaintenance")[0]
    assert wire.get(answer, "Response") == "Error"


def test_a_deleted_contact_returns_at_the_next_accepted_refresh(simulator: Simulator) -> None:
    ctx = simulator.ctx
    key = "contact/102-app;@24ff485eb5d4cb8dd3a07bfb833567cf"
    assert wire.get(ask(ctx, "DBDel", Family="registrar", Key=key)[0], "Response") == "Success"
    assert "102-app;@24ff485eb5d4cb8dd3a07bfb833567cf" not in contact_names(ctx)
    ask(ctx, "PJSIPSetMaintenance", Endpoint="102-app", State="on")
    assert simulator.refresh("102-app") == "503"
    assert "102-app;@24ff485eb5d4cb8dd3a07bfb833567cf" not in contact_names(ctx)
    ask(ctx, "PJSIPSetMaintenance", Endpoint="102-app", State="off")
    assert simulator.refresh("102-app") == "200"
    assert "102-app;@24ff485eb5d4cb8dd3a07bfb833567cf" in contact_names(ctx)


def test_an_endpoint_acl_refuses_the_refresh_of_an_offsite_phone(simulator: Simulator) -> None:
    ctx = simulator.ctx
    custom = ctx.config.root / "pjsip.endpoint_custom_post.conf"
    acl = "\n[101](+type=endpoint)\ndeny = 0.0.0.0/0\npermit = 10.0.0.0/8\n"
    custom.write_text(custom.read_text() + acl)
    assert simulator.refresh("101") == "200", "not reloaded yet"
    ask(ctx, "Reload", Module="res_pjsip.so")
    assert simulator.refresh("101") == "401"
    assert len([n for n in contact_names(ctx) if n.startswith("101;")]) == 2  # fact 47
    shutil.copyfile(simulator.office.config_dir / custom.name, custom)
    ask(ctx, "Reload", Module="res_pjsip.so")
    assert simulator.refresh("101") == "200"
