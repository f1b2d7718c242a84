"""Switching features on the simulated PBX through its config files: only the agent's lines
change, every other section keeps its effective options (GetConfig, PJSIPShowEndpoint), the
removal restores the file byte for byte, conflicts are left alone, and unsafe changes
(manager reload with setvar, #include) are refused with nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.asterisk.ami import AmiClient
from drivers.asterisk.conftext import UnsafeEdit
from drivers.asterisk.enforce import AsteriskEnforcer
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.simulator import Simulator
from drivers.config_files import LocalConfigFiles
from drivers.models import AgentLine
from tests.conftest import AGENT_SECRET

APP_ACL = [
    AgentLine("pjsip.conf", "102-app", "endpoint", "deny", "0.0.0.0/0", "softphone_app"),
    AgentLine("pjsip.conf", "102-app", "endpoint", "permit", "127.0.0.0/8", "softphone_app"),
]


@pytest.fixture
async def ami(ami_simulator: Simulator) -> AsyncIterator[AmiClient]:
    client = AmiClient(AmiSettings("127.0.0.1", ami_simulator.port, "agent", AGENT_SECRET))
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


def config_dir(simulator: Simulator) -> Path:
    return simulator.ctx.config.root


async def endpoint_detail(ami: AmiClient, name: str) -> list[list[tuple[str, str]]]:
    """PJSIPShowEndpoint's answer without its ActionID."""
    answer = await ami.list_action("PJSIPShowEndpoint", Endpoint=name)
    return [[(k, v) for k, v in m if k != "ActionID"] for m in answer]


async def endpoint_acl(ami: AmiClient, name: str) -> str:
    answer = await ami.list_action("PJSIPShowEndpoint", Endpoint=name)
    return next(v for m in answer for k, v in m if k == "Acl")


async def test_app_acl_on_and_off_touches_nothing_else(
    ami: AmiClient, ami_simulator: Simulator
) -> None:
    root = config_dir(ami_simulator)
    original = (root / "pjsip.conf").read_bytes()
    enforcer = AsteriskEnforcer(ami, LocalConfigFiles(root))
    before = await enforcer.effective("pjsip.conf")
    phone_before = await endpoint_detail(ami, "107")

    assert await enforcer.change("pjsip.conf", add=APP_ACL) == []
    assert await endpoint_acl(ami, "102-app") == "deny/permit"
    after = await enforcer.effective("pjsip.conf")
    changed = [b[0:2] for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [("102-app", "endpoint")]
    text = (root / "pjsip.conf").read_text()
    assert text.count(";pbx-agent:softphone_app") == 2
    added = set(text.splitlines()) - set(original.decode().splitlines())
    assert added == {line.text() for line in APP_ACL}
    assert await endpoint_detail(ami, "107") == phone_before

    # Idempotent: asking again changes nothing.
    assert await enforcer.change("pjsip.conf", add=APP_ACL) == []
    assert (root / "pjsip.conf").read_text() == text

    assert await enforcer.change("pjsip.conf", remove=APP_ACL) == []
    assert (root / "pjsip.conf").read_bytes() == original
    assert await enforcer.effective("pjsip.conf") == before


async def test_an_admin_edit_of_an_agent_line_is_a_conflict_left_alone(
    ami: AmiClient, ami_simulator: Simulator
) -> None:
    root = config_dir(ami_simulator)
    enforcer = AsteriskEnforcer(ami, LocalConfigFiles(root))
    await enforcer.change("pjsip.conf", add=APP_ACL)
    path = root / "pjsip.conf"
    path.write_text(path.read_text().replace("deny = 0.0.0.0/0 ;", "deny = 10.0.0.0/8 ;"))
    conflicts = await enforcer.change("pjsip.conf", remove=APP_ACL)
    assert conflicts == [APP_ACL[0]]
    text = path.read_text()
    assert "deny = 10.0.0.0/8 ;pbx-agent:softphone_app" in text
    assert "permit = 127.0.0.0/8 ;pbx-agent" not in text


async def test_unsafe_changes_are_refused_and_change_nothing(
    ami: AmiClient, ami_simulator: Simulator
) -> None:
    root = config_dir(ami_simulator)
    enforcer = AsteriskEnforcer(ami, LocalConfigFiles(root))
    manager = root / "manager.conf"
    manager.write_text(manager.read_text() + "\n[dialer]\nsecret = x\nsetvar = A=1\n")
    await ami.action("Reload", Module="manager")
    before = manager.read_bytes()
    crm_off = AgentLine("manager.conf", "crm", "", "deny", "0.0.0.0/0.0.0.0", "integrations")
    with pytest.raises(UnsafeEdit, match="setvar"):
        await enforcer.change("manager.conf", add=[crm_off])
    assert manager.read_bytes() == before

    pjsip = root / "pjsip.conf"
    (root / "extra.conf").write_text("")  # a missing #include would make pjsip.conf invalid
    pjsip.write_text("#include extra.conf\n" + pjsip.read_text())
    before = pjsip.read_bytes()
    with pytest.raises(UnsafeEdit, match="#include"):
        await enforcer.change("pjsip.conf", add=APP_ACL)
    assert pjsip.read_bytes() == before
