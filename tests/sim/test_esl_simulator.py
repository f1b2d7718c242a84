"""The ESL simulator beyond the replay: FreeSWITCH's configuration loading, the licence-lapse
mechanics of the fixtures (an auth-acl drop-in plus reloadxml refuses off-site REGISTERs,
flush_inbound_reg removes rows at once, fact 22 and the README's lapse test), event filters,
restarts, bad office files, and `pbx-agent simulate freeswitch`."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.sim import xmldoc
from drivers.freeswitch.sim.events import SimEvent
from drivers.freeswitch.sim.office import OfficeError, load_office
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES

FS = FIXTURES / "freeswitch-esl"
OFFICE = FIXTURES / "offices" / "bayside-coastal.toml"
LOCKDOWN = "directory/lockdown/remote-access-off.xml"


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(load_office(OFFICE), scheduler=False)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def test_configuration_is_read_as_freeswitch_reads_it() -> None:
    """The pre-processed document is the one FreeSWITCH wrote at its last load."""
    office = load_office(OFFICE)
    processor = xmldoc.Preprocessor(dict(office.globals))
    text = processor.run(office.config_dir / "freeswitch.xml")
    assert text == (FS / "fs-config/var/log/freeswitch/freeswitch.xml.fsxml").read_text()
    assert processor.variables["esl_password"] == "Fake-Esl-Pass-2024"
    with pytest.raises(
        xmldoc.XmlError, match=r"\[error near line 3\]: unexpected closing tag </a>"
    ):
        xmldoc.parse("<a>\n<b>\n</a>")
    with pytest.raises(xmldoc.XmlError, match=r"unclosed tag <b>"):
        xmldoc.parse("<a>\n<b>\n")


def _register(sim: Simulator, user: str, domain: str, ip: str, call_id: str) -> int:
    return sim.state.register(
        user=user,
        domain=domain,
        uri=f"sip:{user}@{ip}:5062;transport=udp",
        call_id=call_id,
        agent="Yealink SIP-T33G 124.86.0.75",
        expires=60,
        ip=ip,
        port="5062",
    )


async def test_the_licence_lapse_mechanics(simulator: Simulator) -> None:
    state = simulator.state
    failures: list[SimEvent] = []
    state.fired_hooks.append(
        lambda e: failures.append(e) if e.subclass == "sofia::register_failure" else None
    )
    drop_in = state.conf_dir / LOCKDOWN
    drop_in.write_bytes((FS / "fs-config/licence-lapse/remote-access-off.xml").read_bytes())
    assert state.reloadxml() == "+OK [Success]\n"
    # Next REGISTER: refused off-site, accepted on the LAN (office_lan = 127.0.8.0/24).
    assert _register(simulator, "2003", "coastal.example", "127.0.9.23", "1-8215@127.0.9.23") == 403
    assert _register(simulator, "2001", "coastal.example", "127.0.8.21", "1-8211@127.0.8.21") == 200
    assert [e.get("to-user") for e in failures] == ["2003"]
    # A refusal does not remove the row; flush_inbound_reg by user removes every device.
    assert state.find_registration("1-8215@127.0.9.23") is not None
    state.flush("internal", "1002@bayside.example")
    assert not [r for r in state.registrations.values() if r.user == "1002"]
    # Undo: the drop-in removed and reloadxml; the off-site phone is accepted again.
    drop_in.unlink()
    assert state.reloadxml() == "+OK [Success]\n"
    assert _register(simulator, "2003", "coastal.example", "127.0.9.23", "1-8215@127.0.9.23") == 200


async def test_disabled_and_passwordless_users_are_refused(simulator: Simulator) -> None:
    assert _register(simulator, "1006", "bayside.example", "127.0.8.16", "probe-1006") == 403
    assert _register(simulator, "1099", "bayside.example", "127.0.8.99", "probe-1099") == 403
    assert _register(simulator, "9999", "bayside.example", "127.0.8.98", "probe-9999") == 403


async def test_event_filters_and_restarts(simulator: Simulator) -> None:
    seen = []
    client = EslClient(
        EslSettings("127.0.0.1", simulator.port, "Fake-Esl-Pass-2024"),
        on_event=seen.append,
        events=("CUSTOM", "sofia::register", "sofia::expire"),
    )
    await client.connect()
    try:
        reply = await client.command("filter Event-Subclass sofia::expire")
        assert reply == "+OK filter added. [Event-Subclass]=[sofia::expire]"
        _register(simulator, "2001", "coastal.example", "127.0.8.21", "1-8211@127.0.8.21")
        simulator.state.expire("1-8213@127.0.8.22")
        assert await client.api("hostname") == "vm"
        assert [e.name for e in seen] == ["sofia::expire"]
        before = simulator.state.core_uuid
        rows = len(simulator.state.registrations)
        await simulator.restart()
        assert simulator.state.core_uuid != before
        assert len(simulator.state.registrations) == rows  # fact 26
    finally:
        await client.close()


def test_bad_office_files_name_the_key(tmp_path: Path) -> None:
    office = tmp_path / "office.toml"
    with pytest.raises(OfficeError, match="not found"):
        load_office(office)
    office.write_text('name = "x"\nconfig_dir = "nowhere"\n[pbx]\nversion = "1.10.12-release"\n')
    with pytest.raises(OfficeError, match="config_dir"):
        load_office(office)
    text = OFFICE.read_text().replace('user = "1001@bayside.example"', 'user = "1001"')
    text = text.replace('config_dir = "../', f'config_dir = "{OFFICE.parent}/../')
    office.write_text(text)
    with pytest.raises(OfficeError, match=r"registrations\[0\].user: expected id@domain"):
        load_office(office)


def test_simulate_freeswitch_command_serves_the_office() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "simulate",
            "freeswitch",
            "--office",
            str(OFFICE),
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))  # type: ignore[union-attr]

        async def ask() -> str:
            client = EslClient(EslSettings("127.0.0.1", port, "Fake-Esl-Pass-2024"))
            await client.connect()
            try:
                return await client.api("domain_exists bayside.example")
            finally:
                await client.close()

        assert asyncio.run(ask()) == "true"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


async def test_params_merge_flush_and_modules_as_freeswitch_does(simulator: Simulator) -> None:
    """What switching relies on, from the 1.10.12 source: a user's own params kept whole
    and first, a domain's added only under a new name (switch_xml.c do_merge); the last
    auth-acl counts, any true sip-forbid-register refuses (sofia_reg.c); flush_inbound_reg
    matches a Call-ID, user@host, or a bare host; module_exists knows modules.conf."""
    state = simulator.state
    path = state.conf_dir / "directory" / "coastal.example.xml"
    text = path.read_text()
    own = '<param name="password" value="fake-2001-Coast"/>'
    text = text.replace(
        own,
        own
        + '\n<param name="auth-acl" value="127.0.9.0/24"/>'
        + '\n<param name="auth-acl" value="127.0.8.0/24"/>'
        + '\n<param name="sip-forbid-register" value="true"/>'
        + '\n<param name="sip-forbid-register" value="false"/>',
    )
    text = text.replace(
        '<param name="allow-empty-password" value="false"/>',
        '<param name="allow-empty-password" value="false"/>\n'
        '<param name="auth-acl" value="127.0.9.0/24"/>',
    )
    path.write_text(text)
    assert state.reloadxml() == "+OK [Success]\n"
    user = state.user("2001", "coastal.example")
    assert user is not None and user.param("auth-acl") == "127.0.8.0/24"
    assert user.flag("sip-forbid-register")
    assert _register(simulator, "2001", "coastal.example", "127.0.8.21", "1-8211@127.0.8.21") == 403
    other = state.user("2002", "coastal.example")
    assert other is not None and other.param("auth-acl") == "127.0.9.0/24", "the domain's"

    state.flush("internal", "coastal.example")  # a bare host: every row of that host
    assert not [r for r in state.registrations.values() if r.realm == "coastal.example"]
    assert [r.user for r in state.registrations.values()].count("1002") == 2

    client = EslClient(EslSettings("127.0.0.1", simulator.port, "Fake-Esl-Pass-2024"))
    await client.connect()
    try:
        assert await client.api("module_exists mod_lua") == "false"
        modules = state.conf_dir / "autoload_configs" / "modules.conf.xml"
        modules.write_text(
            modules.read_text().replace("</modules>", '<load module="mod_lua"/>\n</modules>')
        )
        await simulator.restart()
        await client.close()
        client = EslClient(EslSettings("127.0.0.1", simulator.port, "Fake-Esl-Pass-2024"))
        await client.connect()
        assert await client.api("module_exists mod_lua") == "true"
        assert await client.api("module_exists mod_verto") == "false"
    finally:
        await client.close()


async def test_a_database_directory_answers_as_the_office_started(tmp_path: Path) -> None:
    """FusionPBX: domains its Lua handler serves from the database keep answering as they
    were, whatever the files say after."""
    text = OFFICE.read_text().replace('config_dir = "../', f'config_dir = "{OFFICE.parent}/../')
    office = tmp_path / "office.toml"
    office.write_text(text + '\n[directory]\ndatabase = ["bayside.example"]\n')
    sim = Simulator(load_office(office), scheduler=False)
    await sim.start()
    try:
        (sim.state.conf_dir / "directory" / "bayside.example.xml").unlink()
        assert sim.state.reloadxml() == "+OK [Success]\n"
        assert sim.state.user("1001", "bayside.example") is not None
        assert sim.state.refresh("1001@bayside.example") == {"127.0.8.11": 200}
        assert sim.state.refresh("1010@bayside.example") == {"127.0.9.10": 200}
    finally:
        await sim.stop()
