"""The Asterisk driver switching features on the simulated PBXs of both captures, through the
vendor-neutral contract (plan, priors, apply, check, undo): each switch proven on the live
objects, the agent's lines only in places the PBX's tooling never writes, the customer's files
byte-identical after undoing, live registrations cut and their next REGISTER refused, and what
cannot be switched refused with the reason and nothing changed."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.config_files import LocalConfigFiles
from drivers.models import FeaturePolicy, SeatRef, SwitchKind, SwitchPlan, SwitchState
from tests.conftest import AGENT_SECRET, CRM_SECRET, FIXTURES
from tests.drivers.test_ami_client import eventually

FREEPBX = FIXTURES / "offices" / "northwind-freepbx.toml"
PLAIN = FIXTURES / "offices" / "northwind.toml"
PHONES = ("100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111")
GENERATED = (
    "pjsip.conf",
    "pjsip.endpoint.conf",
    "pjsip.aor.conf",
    "pjsip.auth.conf",
    "manager.conf",
    "manager_additional.conf",
)


def digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


async def start(office: Path) -> Simulator:
    simulator = Simulator(load_office(office))
    await simulator.start()
    return simulator


@pytest.fixture
async def freepbx() -> AsyncIterator[Simulator]:
    simulator = await start(FREEPBX)
    yield simulator
    await simulator.stop()


@pytest.fixture
async def plain() -> AsyncIterator[Simulator]:
    simulator = await start(PLAIN)
    yield simulator
    await simulator.stop()


async def connected(simulator: Simulator, *, files: bool = True) -> AsteriskDriver:
    driver = AsteriskDriver(AmiSettings("127.0.0.1", simulator.port, "agent", AGENT_SECRET))
    await driver.connect()
    if files:
        driver.use_config_files(LocalConfigFiles(simulator.ctx.config.root))
    return driver


async def reconnected(driver: AsteriskDriver) -> None:
    """Wait (with a deadline) for the client's reconnect loop after a PBX restart."""
    await eventually(lambda: driver.ami.connected, within=10)


async def switch_off(driver: AsteriskDriver, plan: SwitchPlan) -> list[SwitchState]:
    priors = await driver.read_priors(plan.switches)
    assert priors, "a plan with switches"
    outcomes = await driver.apply_switches(plan.switches)
    return [o.state for o in outcomes]


POLICY = FeaturePolicy(
    app_endpoints=("102-app", "8103"),
    phone_endpoints=PHONES,
    shared_app_seats=((SeatRef("101", "Alice Nguyen"), "101"),),
    integration_accounts=("crm",),
    lan_subnets=("127.0.5.0/24",),
)


async def test_freepbx_apps_go_into_maintenance_their_contacts_are_cut(freepbx: Simulator) -> None:
    driver = await connected(freepbx)
    before = digests(freepbx.ctx.config.root)
    plan = await driver.plan_switches("softphone_app", POLICY)
    assert "maintenance mode" in plan.how
    kinds = {(s.kind, s.target) for s in plan.switches}
    assert (SwitchKind.RUNTIME, "endpoint 102-app") in kinds
    assert (SwitchKind.RUNTIME, "endpoint 8103") in kinds
    assert (SwitchKind.CUT, "contact 102-app;@24ff485eb5d4cb8dd3a07bfb833567cf") in kinds
    assert [u.target for u in plan.unswitchable] == ["seat 101 (Alice Nguyen)"]
    assert "cannot tell them apart" in plan.unswitchable[0].reason

    priors = await driver.read_priors(plan.switches)
    assert priors[:2] == ["disabled", "disabled"]
    assert '"user_agent":"Bria iOS' in priors[2], "the cut contact's exact AstDB value"
    assert set(await switch_off(driver, plan)) == {SwitchState.IN_EFFECT}
    assert freepbx.ctx.live.maintenance == {"102-app", "8103"}
    assert not freepbx.ctx.live.contacts_of("102-app"), "the app's contact is gone at once"
    assert freepbx.refresh("102-app") == "503", "and its next REGISTER is refused"
    assert digests(freepbx.ctx.config.root) == before, "maintenance touches no file"

    checks = await driver.check_switches(plan.switches[:2], thorough=False)
    assert {c.state for c in checks} == {SwitchState.IN_EFFECT}
    await freepbx.restart()
    await reconnected(driver)
    checks = await driver.check_switches(plan.switches[:2], thorough=True)
    assert {c.state for c in checks} == {SwitchState.ABSENT}, "a restart loses maintenance"

    undone = await driver.undo_switches(list(zip(plan.switches, priors, strict=True)))
    assert {o.state for o in undone} == {SwitchState.ABSENT}
    assert freepbx.ctx.live.maintenance == set()
    assert freepbx.refresh("102-app") == "200", "the app registers again after renewal"
    await driver.close()


async def test_freepbx_offsite_and_integrations_in_custom_files_only(freepbx: Simulator) -> None:
    root = freepbx.ctx.config.root
    # Erin's desk phone registers from outside the site's networks.
    away = Contact("105", "sip:105@198.18.5.2:5060", "Yealink SIP-T46U 108.86.0.90", "Reachable")
    assert freepbx.register(away) == "200"
    driver = await connected(freepbx)
    before = digests(root)
    offsite = await driver.plan_switches("offsite_devices", POLICY)
    integrations = await driver.plan_switches("integrations", POLICY)
    assert {s.place for s in offsite.switches if s.kind is SwitchKind.CONFIG} == {
        "pjsip.endpoint_custom_post.conf"
    }
    assert [s.target for s in offsite.switches if s.kind is SwitchKind.CUT] == [
        "contact 105;@3237130fe44cf8ee93cd2fe6f506c6c3"
    ], "only the off-site registration is cut"
    assert {s.place for s in integrations.switches} == {"manager_custom.conf"}
    switches = [*offsite.switches, *integrations.switches]
    priors = await driver.read_priors(switches)
    assert set(await switch_off(driver, offsite)) == {SwitchState.IN_EFFECT}
    assert set(await switch_off(driver, integrations)) == {SwitchState.IN_EFFECT}

    after = digests(root)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"pjsip.endpoint_custom_post.conf", "manager_custom.conf"}
    text = (root / "pjsip.endpoint_custom_post.conf").read_text()
    assert text.startswith(
        (
            FIXTURES / "asterisk-ami-freepbx/pbx-config-freepbx/pjsip.endpoint_custom_post.conf"
        ).read_text()
    )
    assert "[104](+type=endpoint)\ndeny = 0.0.0.0/0" in text
    ami = driver.ami
    detail = await ami.list_action("PJSIPShowEndpoint", Endpoint="104")
    assert ("Acl", "deny/permit") in detail[1]
    assert ("RtpKeepalive", "15") in detail[1], "the customer's own (+) line still applies"
    assert freepbx.refresh("105") == "401", "the off-site phone cannot come back"
    assert freepbx.refresh("100") == "200", "an on-site phone refreshes as usual"
    rules = await ami.command("manager show user crm")
    assert rules[-2:] == ["  2:  deny - 0.0.0.0/0.0.0.0", "  3:  deny - ::/::"]

    thorough = await driver.check_switches(switches, thorough=True)
    assert {c.state for c in thorough} == {SwitchState.IN_EFFECT}

    undone = await driver.undo_switches(list(reversed(list(zip(switches, priors, strict=True)))))
    assert {o.state for o in undone} == {SwitchState.ABSENT}
    assert digests(root) == before, "renewal leaves every file byte-identical"
    detail = await ami.list_action("PJSIPShowEndpoint", Endpoint="104")
    assert ("Acl", "") in detail[1]
    await driver.close()


async def test_plain_office_without_maintenance_uses_acl_blocks_in_pjsip_conf(
    plain: Simulator,
) -> None:
    root = plain.ctx.config.root
    original = (root / "pjsip.conf").read_bytes()
    driver = await connected(plain)
    plan = await driver.plan_switches("softphone_app", POLICY)
    assert "ACL denying every address" in plan.how and "no maintenance mode" in plan.how
    assert {s.place for s in plan.switches if s.kind is SwitchKind.CONFIG} == {"pjsip.conf"}
    priors = await driver.read_priors(plan.switches)
    assert set(await switch_off(driver, plan)) == {SwitchState.IN_EFFECT}
    text = (root / "pjsip.conf").read_bytes()
    assert text.startswith(original), "the customer's sections are byte-identical"
    assert plain.refresh("102-app") == "401"
    assert not plain.ctx.live.contacts_of("102-app")
    await driver.undo_switches(list(zip(plan.switches, priors, strict=True)))
    assert (root / "pjsip.conf").read_bytes() == original
    await driver.close()


async def test_an_admin_edit_of_an_agent_block_is_a_conflict_left_alone(
    plain: Simulator,
) -> None:
    root = plain.ctx.config.root
    driver = await connected(plain)
    plan = await driver.plan_switches("integrations", POLICY)
    priors = await driver.read_priors(plan.switches)
    await switch_off(driver, plan)
    manager = root / "manager.conf"
    manager.write_text(manager.read_text().replace("deny = ::/0\n", "deny = 10.0.0.0/8\n"))
    undone = await driver.undo_switches(list(zip(plan.switches, priors, strict=True)))
    assert [o.state for o in undone] == [SwitchState.CONFLICT]
    assert "deny = 10.0.0.0/8" in manager.read_text()
    await driver.close()


async def test_what_cannot_be_switched_is_refused_and_changes_nothing(
    plain: Simulator, tmp_path: Path
) -> None:
    root = plain.ctx.config.root
    before = digests(root)
    no_files = await connected(plain, files=False)
    plan = await no_files.plan_switches("softphone_app", POLICY)
    assert plan.refused is not None
    assert "no maintenance mode" in plan.refused and "[backup]" in plan.refused
    for feature in ("offsite_devices", "integrations"):
        assert "no access to the PBX's config files" in (
            (await no_files.plan_switches(feature, POLICY)).refused or ""
        )
    assert (await no_files.plan_switches("remote_portal", POLICY)).applicable is False
    await no_files.close()

    class ReadOnly(LocalConfigFiles):
        def _write(self, name: str, text: str) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

    read_only = await connected(plain, files=False)
    read_only.use_config_files(ReadOnly(root))
    plan = await read_only.plan_switches("integrations", POLICY)
    outcomes = await read_only.apply_switches(plan.switches)
    assert [o.state for o in outcomes] == [SwitchState.FAILED]
    assert "ReadWritePaths=-/etc/asterisk" in outcomes[0].detail
    await read_only.close()

    manager = root / "manager.conf"
    manager.write_text(manager.read_text() + "\n[dialer]\nsecret = x\nsetvar = A=1\n")
    driver = await connected(plain)
    await driver.ami.action("Reload", Module="manager")
    refused = await driver.plan_switches("integrations", POLICY)
    assert refused.refused is not None and "setvar" in refused.refused
    await driver.close()
    manager.write_bytes((FIXTURES / "asterisk-ami/pbx-config/manager.conf").read_bytes())
    assert digests(root) == before


async def test_a_block_asterisk_could_not_read_is_put_back_the_others_applied(
    freepbx: Simulator,
) -> None:
    """An endpoint defined after pjsip.endpoint_custom_post.conf is included cannot take a
    `(+)` block there: the whole include tree would not parse (fact 22). That one is put back
    with the reason; the other phones are switched."""
    root = freepbx.ctx.config.root
    late = root / "pjsip_custom_post.conf"
    late.write_text(
        "[199]\ntype = endpoint\ncontext = from-internal\naors = 199\n\n"
        "[199]\ntype = aor\nmax_contacts = 1\n"
    )
    driver = await connected(freepbx)
    await driver.ami.action("Reload", Module="res_pjsip.so")
    policy = FeaturePolicy(phone_endpoints=("100", "199"), lan_subnets=("127.0.5.0/24",))
    plan = await driver.plan_switches("offsite_devices", policy)
    outcomes = await driver.apply_switches(
        [s for s in plan.switches if s.kind is SwitchKind.CONFIG]
    )
    states = {o.switch.target: (o.state, o.detail) for o in outcomes}
    assert states["endpoint 100"][0] is SwitchState.IN_EFFECT
    assert states["endpoint 199"][0] is SwitchState.FAILED
    assert "cannot read pjsip.conf" in states["endpoint 199"][1]
    assert "[199](+type=endpoint)" not in (root / "pjsip.endpoint_custom_post.conf").read_text()
    await driver.close()


async def test_a_crm_session_already_logged_in_is_named(freepbx: Simulator) -> None:
    from drivers.asterisk.ami import AmiClient

    crm = AmiClient(AmiSettings("127.0.0.1", freepbx.port, "crm", CRM_SECRET))
    await crm.connect()
    driver = await connected(freepbx)
    plan = await driver.plan_switches("integrations", POLICY)
    assert [u.target for u in plan.unswitchable] == ["manager user crm"]
    assert "logged in now" in plan.unswitchable[0].reason
    await crm.close()
    await driver.close()


async def test_a_non_pjsip_phone_is_named_not_switchable_and_nothing_is_planned_for_it(
    plain: Simulator,
) -> None:
    """Counting includes IAX2 phones (capture 2's `120`); the agent switches PJSIP endpoints
    only, so such a phone is named as not switchable instead of getting a `(+)` block that
    would break pjsip.conf's load (fact 22) or being skipped without a word."""
    driver = await connected(plain)
    try:
        policy = FeaturePolicy(
            app_endpoints=("102-app", "120"),
            phone_endpoints=("100", "120"),
            new_endpoints=("120",),
            lan_subnets=("127.0.0.0/8",),
        )
        for feature in ("offsite_devices", "softphone_app", "add_extensions"):
            plan = await driver.plan_switches(feature, policy)
            assert plan.refused is None, plan
            assert not any("120" in s.target for s in plan.switches), plan.switches
            named = [u for u in plan.unswitchable if u.target == "endpoint 120"]
            assert len(named) == 1 and "not a PJSIP endpoint" in named[0].reason, plan
        plan = await driver.plan_switches("offsite_devices", policy)
        assert any(s.target == "endpoint 100" for s in plan.switches), plan.switches
    finally:
        await driver.close()
