"""FreeSWITCH feature switching beyond the contract suite, on the ESL simulator: the
failed-reloadxml trap (fact 22), FusionPBX's database directory, a hook shared with another
customer's domain, the customer's own ACLs, Call-IDs that would flush others, edits and
CRLF files, a crash between writing and reloading, and a vanilla FreeSWITCH layout
(``$${domain}``, one file per user)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.config_files import LocalConfigFiles
from drivers.freeswitch.driver import FreeswitchDriver
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.sim.office import Device, load_office
from drivers.freeswitch.simulator import Simulator
from drivers.freeswitch.switching import source
from drivers.models import FeaturePolicy, SeatRef, Switch, SwitchKind, SwitchPlan, SwitchState
from tests.conftest import FIXTURES

OFFICE = FIXTURES / "offices" / "bayside-coastal.toml"
PASSWORD = "Fake-Esl-Pass-2024"
BAYSIDE = "directory/bayside.example.xml"
COASTAL = "directory/coastal.example.xml"
APPS = ("1003-app@bayside.example", "1010@bayside.example", "2004@coastal.example")
PHONES = (
    "1001@bayside.example",
    "1002@bayside.example",
    "1003@bayside.example",
    "1004@bayside.example",
    "1005@bayside.example",
    "1090@bayside.example",
    "2001@coastal.example",
    "2002@coastal.example",
    "2003@coastal.example",
)
POLICY = FeaturePolicy(
    app_endpoints=APPS,
    phone_endpoints=PHONES,
    shared_app_seats=((SeatRef("1002@bayside.example", "Dr Priya Patel"), "1002@bayside.example"),),
    lan_subnets=("127.0.8.0/24",),
)
LUA_CONF = """<configuration name="lua.conf" description="FusionPBX">
  <settings>
    <param name="xml-handler-script" value="app.lua xml_handler"/>
    <param name="xml-handler-bindings" value="configuration,dialplan,directory"/>
  </settings>
</configuration>
"""


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def office_variant(tmp: Path, extra: str) -> Path:
    """The fixture office with `extra` TOML appended (its config tree found from `tmp`)."""
    text = OFFICE.read_text().replace('config_dir = "../', f'config_dir = "{OFFICE.parent}/../')
    path = tmp / "office.toml"
    path.write_text(text + extra)
    return path


async def started(office: Path = OFFICE) -> Simulator:
    sim = Simulator(load_office(office), scheduler=False)
    await sim.start()
    return sim


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = await started()
    yield simulator
    await simulator.stop()


async def connected(
    sim: Simulator, *, domains: tuple[str, ...] = (), password: str = PASSWORD
) -> FreeswitchDriver:
    driver = FreeswitchDriver(EslSettings("127.0.0.1", sim.port, password, domains=domains))
    await driver.connect()
    driver.use_config_files(LocalConfigFiles(sim.state.conf_dir))
    return driver


async def apply(driver: FreeswitchDriver, plan: SwitchPlan) -> list[tuple[Switch, str]]:
    config = [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
    cuts = [s for s in plan.switches if s.kind is SwitchKind.CUT]
    applied = []
    for group in (config, cuts):
        if group:
            priors = await driver.read_priors(group)
            outcomes = await driver.apply_switches(group)
            assert {o.state for o in outcomes} == {SwitchState.IN_EFFECT}, [
                o.detail for o in outcomes
            ]
            applied += list(zip(group, priors, strict=True))
    return applied


def accepted(sim: Simulator, address: str) -> dict[str, bool]:
    return {ip: code == 200 for ip, code in sim.state.refresh(address).items()}


async def test_a_failed_reloadxml_is_caught_and_nothing_is_left_half_done(sim: Simulator) -> None:
    """The customer left a broken file: reloadxml answers +OK [error ...] and keeps its old
    tree. The agent puts its own file back, cuts no device, and says why; once the file is
    fixed the switch is made."""
    driver = await connected(sim)
    root = sim.state.conf_dir
    broken = root / "dialplan" / "zz-half-edited.xml"
    broken.write_text("<context name='x'>\n<extension>\n</context>\n")
    before = digests(root)
    plan = await driver.plan_switches("offsite_devices", POLICY)
    config = [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
    cuts = [s for s in plan.switches if s.kind is SwitchKind.CUT]
    await driver.read_priors(plan.switches)
    outcomes = await driver.apply_switches(config)
    assert [o.state for o in outcomes] == [SwitchState.FAILED]
    assert "reloadxml did not load the configuration (+OK [[error near line" in outcomes[0].detail
    assert digests(root) == before, "the agent's file is put back"
    cut = await driver.apply_switches(cuts)
    assert {o.state for o in cut} == {SwitchState.FAILED}
    assert all("would accept" in o.detail for o in cut), "no device cut for nothing"
    assert sim.state.find_registration("1-8215@127.0.9.23") is not None
    assert accepted(sim, "2003@coastal.example") == {"127.0.9.23": True}

    broken.unlink()
    plan = await driver.plan_switches("offsite_devices", POLICY)
    applied = await apply(driver, plan)
    assert accepted(sim, "2003@coastal.example") == {"127.0.9.23": False}
    undone = await driver.undo_switches(list(reversed(applied)))
    assert {o.state for o in undone} == {SwitchState.ABSENT}
    assert digests(root) == {k: v for k, v in before.items() if "zz-half" not in k}
    await driver.close()


async def test_fusionpbx_database_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    """bayside.example comes from FusionPBX's database (Lua xml_handler), not from files:
    what lives there is named with the fix, coastal.example (in files) is switched."""
    sim = await started(office_variant(tmp_path, '\n[directory]\ndatabase = ["bayside.example"]\n'))
    try:
        root = sim.state.conf_dir
        (root / "autoload_configs" / "lua.conf.xml").write_text(LUA_CONF)
        (root / BAYSIDE).unlink()  # FusionPBX keeps no file for it
        assert sim.state.reloadxml() == "+OK [Success]\n"
        driver = await connected(sim)
        plan = await driver.plan_switches("offsite_devices", POLICY)
        left_out = {u.target: u.reason for u in plan.unswitchable}
        assert list(left_out) == ["domain bayside.example"]
        assert "FusionPBX's database" in left_out["domain bayside.example"]
        assert "fix:" in left_out["domain bayside.example"]
        assert [s.target for s in plan.switches if s.kind is SwitchKind.CONFIG] == [
            "domain coastal.example"
        ], "the shared hook is not used: the other domain it feeds is not the agent's to switch"
        apps = await driver.plan_switches("softphone_app", POLICY)
        assert [u.target for u in apps.unswitchable] == [
            "seat 1002@bayside.example (Dr Priya Patel)",
            "user 1003-app@bayside.example",
            "user 1010@bayside.example",
        ]
        portal = await driver.plan_switches("remote_portal", POLICY)
        assert portal.refused and "nginx" in portal.refused
        applied = await apply(driver, plan)
        assert accepted(sim, "2003@coastal.example") == {"127.0.9.23": False}
        assert accepted(sim, "1010@bayside.example") == {"127.0.9.10": True}, "never claimed"
        await driver.undo_switches(list(reversed(applied)))
        await driver.close()
    finally:
        await sim.stop()


async def test_a_change_the_served_directory_does_not_show_is_put_back(tmp_path: Path) -> None:
    """Files that FreeSWITCH no longer reads for a domain (its binding answers first): the
    reload succeeds, the proof does not, the change is taken out again."""
    sim = await started(office_variant(tmp_path, '\n[directory]\ndatabase = ["bayside.example"]\n'))
    try:
        driver = await connected(sim, domains=("bayside.example",))
        root = sim.state.conf_dir
        before = digests(root)
        policy = FeaturePolicy(
            app_endpoints=("1010@bayside.example",), lan_subnets=("127.0.8.0/24",)
        )
        plan = await driver.plan_switches("softphone_app", policy)
        config = [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
        await driver.read_priors(config)
        outcomes = await driver.apply_switches(config)
        assert [o.state for o in outcomes] == [SwitchState.FAILED]
        assert "put back" in outcomes[0].detail
        assert digests(root) == before
        await driver.close()
    finally:
        await sim.stop()


async def test_a_hook_shared_with_another_customer_is_not_used(sim: Simulator) -> None:
    """This agent counts bayside.example only: lockdown/ also feeds coastal.example, so the
    line goes in bayside's own params, first; coastal's off-site phone is untouched."""
    driver = await connected(sim, domains=("bayside.example",))
    root = sim.state.conf_dir
    before = digests(root)
    policy = FeaturePolicy(
        phone_endpoints=tuple(p for p in PHONES if "bayside" in p),
        app_endpoints=tuple(a for a in APPS if "bayside" in a),
        lan_subnets=("127.0.8.0/24",),
    )
    plan = await driver.plan_switches("offsite_devices", policy)
    config = [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
    assert [(s.target, s.place) for s in config] == [("domain bayside.example", BAYSIDE)]
    assert [s.target for s in plan.switches if s.kind is SwitchKind.CUT] == [
        "device 1010@bayside.example at 127.0.9.10:50632"
    ]
    applied = await apply(driver, plan)
    text = (root / BAYSIDE).read_text()
    assert text.index('name="auth-acl"') < text.index('name="dial-string"'), "first in params"
    assert accepted(sim, "1010@bayside.example") == {"127.0.9.10": False}
    assert accepted(sim, "2003@coastal.example") == {"127.0.9.23": True}
    assert accepted(sim, "1001@bayside.example") == {"127.0.8.11": True}
    await driver.undo_switches(list(reversed(applied)))
    assert digests(root) == before
    await driver.close()


async def test_the_customers_own_acls_are_kept_and_named(sim: Simulator) -> None:
    root = sim.state.conf_dir
    path = root / COASTAL
    text = path.read_text()
    own = '<param name="password" value="fake-2002-Coast"/>'
    text = text.replace(own, own + '\n            <param name="auth-acl" value="trunks"/>')
    own = '<param name="password" value="fake-2001-Coast"/>'
    text = text.replace(own, own + '\n            <param name="auth-acl" value="127.0.8.21/32"/>')
    path.write_text(text)
    assert sim.state.reloadxml() == "+OK [Success]\n"
    driver = await connected(sim)
    plan = await driver.plan_switches("offsite_devices", POLICY)
    assert [u.target for u in plan.unswitchable] == ["user 2002@coastal.example"]
    assert "auth-acl of its own (trunks)" in plan.unswitchable[0].reason
    await apply(driver, plan)
    assert accepted(sim, "2001@coastal.example") == {"127.0.8.21": True}, "its own ACL stands"
    await driver.close()


async def test_a_call_id_that_would_flush_another_user_is_not_used(sim: Simulator) -> None:
    """flush_inbound_reg reads a Call-ID user@host as that user too (sofia_reg.c)."""
    odd = Device(
        "1010@bayside.example",
        "sip:1010@127.0.9.11:5062;transport=udp",
        "Bria Android release 6.24.2 stamp 119457",
        "1001@bayside.example",
    )
    assert sim.state.add_device(odd) == 200
    driver = await connected(sim)
    plan = await driver.plan_switches("softphone_app", POLICY)
    left_out = {u.target: u.reason for u in plan.unswitchable}
    assert "would also drop 1001@bayside.example" in left_out[
        "device 1010@bayside.example at 127.0.9.11:5062"
    ]
    await apply(driver, plan)
    assert len(sim.state.registered("1001@bayside.example")) == 1, "1001's phone kept"
    await driver.close()


async def test_an_edited_line_is_left_alone_and_crlf_files_stay_byte_exact(sim: Simulator) -> None:
    root = sim.state.conf_dir
    for name in (BAYSIDE, COASTAL):  # the customer edits on Windows
        data = (root / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        (root / name).write_bytes(data)
    assert sim.state.reloadxml() == "+OK [Success]\n"
    before = digests(root)
    driver = await connected(sim)
    plan = await driver.plan_switches("softphone_app", POLICY)
    applied = await apply(driver, plan)
    assert b"\r\n            <param name=\"auth-acl\"" in (root / BAYSIDE).read_bytes()
    text = (root / COASTAL).read_bytes()
    (root / COASTAL).write_bytes(text.replace(b"refuse-all", b"refuse-every"))
    undone = await driver.undo_switches(list(reversed(applied)))
    states = {o.switch.target: o.state for o in undone}
    assert states["user 2004@coastal.example"] is SwitchState.CONFLICT
    assert states["user 1010@bayside.example"] is SwitchState.ABSENT
    after = digests(root)
    assert after[BAYSIDE] == before[BAYSIDE], "CRLF kept byte for byte"
    assert after[COASTAL] != before[COASTAL], "the edited line is the customer's now"
    await driver.close()


async def test_a_crash_between_writing_and_reloading_converges(sim: Simulator) -> None:
    driver = await connected(sim)
    root = sim.state.conf_dir
    before = digests(root)
    plan = await driver.plan_switches("softphone_app", POLICY)
    config = [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
    priors = await driver.read_priors(config)
    for switch in config:  # what apply wrote before the process died, without reloadxml
        path = root / switch.place
        text = path.read_text()
        at = text.index("</params>", text.index(f'<user id="{switch.target[5:].split("@")[0]}"'))
        at = text.rfind("\n", 0, at)
        path.write_text(text[:at] + switch.value + text[at:])
    assert accepted(sim, "1010@bayside.example") == {"127.0.9.10": True}, "not loaded yet"
    checks = await driver.check_switches(config, thorough=False)
    assert {c.state for c in checks} == {SwitchState.ABSENT}
    outcomes = await driver.apply_switches(config)
    assert {o.state for o in outcomes} == {SwitchState.IN_EFFECT}
    assert accepted(sim, "1010@bayside.example") == {"127.0.9.10": False}
    for switch in config:  # renewal removed the lines, then the process died again
        path = root / switch.place
        path.write_text(path.read_text().replace(switch.value, ""))
    assert digests(root) == before
    undone = await driver.undo_switches(list(reversed(list(zip(config, priors, strict=True)))))
    assert {o.state for o in undone} == {SwitchState.ABSENT}
    assert accepted(sim, "1010@bayside.example") == {"127.0.9.10": True}, "reloaded"
    await driver.close()


async def test_a_rewrite_is_seen_at_the_next_poll_without_a_restart(sim: Simulator) -> None:
    """FreeSWITCH keeps no time of its last reloadxml: every poll looks."""
    driver = await connected(sim)
    applied = await apply(driver, await driver.plan_switches("offsite_devices", POLICY))
    config = [s for s, _ in applied if s.kind is SwitchKind.CONFIG]
    (sim.state.conf_dir / config[0].place).unlink()
    assert sim.state.reloadxml() == "+OK [Success]\n"
    checks = await driver.check_switches(config, thorough=False)
    assert [c.state for c in checks] == [SwitchState.ABSENT]
    await driver.close()


VANILLA = {
    "freeswitch.xml": """<?xml version="1.0"?>
<document type="freeswitch/xml">
  <X-PRE-PROCESS cmd="include" data="vars.xml"/>
  <section name="configuration" description="Various Configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>
  <section name="directory" description="User Directory">
    <X-PRE-PROCESS cmd="include" data="directory/*.xml"/>
  </section>
</document>
""",
    "vars.xml": """<include>
  <X-PRE-PROCESS cmd="set" data="domain=$${local_ip_v4}"/>
  <X-PRE-PROCESS cmd="set" data="default_password=1234"/>
</include>
""",
    "autoload_configs/event_socket.conf.xml": """<configuration name="event_socket.conf">
  <settings>
    <param name="password" value="ClueCon"/>
  </settings>
</configuration>
""",
    "autoload_configs/sofia.conf.xml": """<configuration name="sofia.conf">
  <profiles>
    <profile name="internal">
      <settings>
        <param name="sip-ip" value="127.0.5.1"/>
      </settings>
    </profile>
  </profiles>
</configuration>
""",
    "directory/default.xml": """<include>
  <!--
  <X-PRE-PROCESS cmd="include" data="nowhere/*.xml"/>
  -->
  <domain name="$${domain}">
    <params>
      <param name="dial-string" value="{presence_id=${dialed_user}@${dialed_domain}}"/>
    </params>
    <groups>
      <group name="default">
        <users>
          <X-PRE-PROCESS cmd="include" data="default/*.xml"/>
        </users>
      </group>
    </groups>
  </domain>
</include>
""",
    "directory/default/1000.xml": """<include>
  <user id="1000">
    <params>
      <param name="password" value="$${default_password}"/>
    </params>
  </user>
</include>
""",
    "directory/default/1001.xml": """<include>
  <user id="1001"><params><param name="password" value="$${default_password}"/></params></user>
</include>
""",
}


async def test_a_vanilla_layout_one_file_per_user(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    for name, text in VANILLA.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(text)
    office = tmp_path / "vanilla.toml"
    office.write_text(
        f'name = "vanilla"\nconfig_dir = "{conf}"\n[pbx]\nversion = "1.10.12-release"\n'
        '[globals]\nhostname = "pbx"\nlocal_ip_v4 = "192.0.2.7"\n'
        "[[registrations]]\n"
        'user = "1000@192.0.2.7"\ncontact = "sip:1000@10.9.9.9:5060"\n'
        'agent = "Zoiper rv2.10.20.3"\ncall_id = "a1b2c3"\n'
        "[[registrations]]\n"
        'user = "1001@192.0.2.7"\ncontact = "sip:1001@192.0.2.50:5060"\n'
        'agent = "Yealink SIP-T54W 96.86.0.100"\ncall_id = "d4e5f6"\n'
    )
    sim = await started(office)
    try:
        driver = await connected(sim, password="ClueCon")
        root = sim.state.conf_dir
        before = digests(root)
        policy = FeaturePolicy(
            app_endpoints=("1000@192.0.2.7",),
            phone_endpoints=("1001@192.0.2.7",),
            lan_subnets=("192.0.2.0/24",),
        )
        apps = await driver.plan_switches("softphone_app", policy)
        assert [(s.target, s.place) for s in apps.switches if s.kind is SwitchKind.CONFIG] == [
            ("user 1000@192.0.2.7", "directory/default/1000.xml")
        ]
        offsite = await driver.plan_switches("offsite_devices", policy)
        assert [(s.target, s.place) for s in offsite.switches] == [
            ("domain 192.0.2.7", "directory/default.xml"),
            ("device 1000@192.0.2.7 at 10.9.9.9:5060", "sofia profile internal"),
        ]
        applied = await apply(driver, apps)
        applied += await apply(driver, await driver.plan_switches("offsite_devices", policy))
        assert accepted(sim, "1000@192.0.2.7") == {"10.9.9.9": False}
        assert accepted(sim, "1001@192.0.2.7") == {"192.0.2.50": True}
        await driver.undo_switches(list(reversed(applied)))
        assert digests(root) == before
        await driver.close()
    finally:
        await sim.stop()


def test_the_outline_reads_files_as_the_preprocessor_does(tmp_path: Path) -> None:
    for name, text in VANILLA.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    files = LocalConfigFiles(tmp_path)
    outline, missing = source.read_outline(files, {}.get, "/etc/freeswitch")
    assert missing == {"local_ip_v4", "domain"}, "asked of FreeSWITCH; no secret one ever is"
    outline, _ = source.read_outline(files, {"local_ip_v4": "192.0.2.7"}.get, "/etc/freeswitch")
    domain = outline.domain("192.0.2.7")
    assert domain is not None and sorted(domain.users) == ["1000", "1001"]
    assert domain.users["1001"].params is not None
    assert domain.params is not None and domain.params.includes == []
    assert outline.notes == [], "a commented-out include is not followed"
    (tmp_path / "directory/default/1001.xml").write_text("<include>\n<user id='1001'>\n</include>")
    with pytest.raises(source.SourceError, match=r"closes nothing open|never closed"):
        source.read_outline(files, {}.get, "/etc/freeswitch")
    shutil.rmtree(tmp_path / "directory")
    outline, _ = source.read_outline(files, {}.get, "/etc/freeswitch")
    assert outline.domains == {}
