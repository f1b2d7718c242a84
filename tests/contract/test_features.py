"""Feature switching in the driver contract (SPEC section 6, drivers/base.py): one set of tests
every driver passes on its acceptance office, from its vendor folder's expected.json
``features`` (see vendors/README.md).

- each feature switched off through plan / priors / apply and proven on the PBX: the devices
  it targets are cut and their next REGISTER refused, the on-site ones keep registering;
  what the PBX cannot switch is named; undoing leaves every configuration file
  byte-identical and the devices come back;
- a switch the PBX's own tooling undid (config rewritten and reloaded, a restart) is seen
  as absent and made again, the same bytes;
- an extension added during the lapse is switched off;
- without access to the PBX's files the features that need it are refused with the fix, and
  through the agent nothing claims "off": each is a critical problem;
- the agent's whole cycle, lapse to renewal, and SIGKILL at many points while it lapses and
  renews: the PBX converges to exactly what it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from agent.licence.policy import KNOWN_APPS, KNOWN_ENDPOINTS
from agent.licence.token import FEATURES
from drivers.base import Driver
from drivers.models import FeaturePolicy, Switch, SwitchKind, SwitchPlan, SwitchState
from tests.contract.conftest import Rig, eventually
from tests.contract.site import agent_config, digests, open_site, policy_of
from tests.enforcement_rig import active_journal, alternate_lapses, run_child
from tests.licence_server import LicenceServer, now

DRIVER_FEATURES = [f for f in FEATURES if f != "config_archive"]  # config_archive: the agent's


async def lapsed(rig: Rig, *, files: bool = True) -> tuple[Driver, FeaturePolicy]:
    driver = rig.driver()
    await driver.connect()
    if files:
        driver.use_config_files(rig.harness.config_files())
    rig.harness.prepare_lapse()
    return driver, await policy_of(rig, driver)


async def switch_off(driver: Driver, plan: SwitchPlan) -> list[tuple[Switch, str]]:
    """As the agent does it: priors, the changes, then the cuts; every one proven."""
    applied: list[tuple[Switch, str]] = []
    for group in (
        [s for s in plan.switches if s.kind is not SwitchKind.CUT],
        [s for s in plan.switches if s.kind is SwitchKind.CUT],
    ):
        if not group:
            continue
        priors = await driver.read_priors(group)
        outcomes = await driver.apply_switches(group)
        assert [o.state for o in outcomes] == [SwitchState.IN_EFFECT] * len(group), [
            (o.switch.target, o.detail) for o in outcomes
        ]
        applied += zip(group, priors, strict=True)
    return applied


async def undo(driver: Driver, applied: Sequence[tuple[Switch, str]]) -> None:
    outcomes = await driver.undo_switches(list(reversed(applied)))
    assert {o.state for o in outcomes} == {SwitchState.ABSENT}, [
        (o.switch.target, o.detail) for o in outcomes if o.state is not SwitchState.ABSENT
    ]


async def test_each_feature_is_switched_proven_and_undone_exactly(rig: Rig) -> None:
    driver, policy = await lapsed(rig)
    want = rig.expected["features"]
    tree = rig.harness.config_tree()
    pristine = digests(tree)
    applied: list[tuple[Switch, str]] = []
    for feature in DRIVER_FEATURES:
        plan = await driver.plan_switches(feature, policy)
        if feature in want["not_applicable"]:
            assert not plan.applicable and not plan.switches, feature
            continue
        if feature in want["refused"]:
            assert plan.refused and want["refused"][feature] in plan.refused, plan
            assert not plan.switches
            continue
        assert plan.refused is None, (feature, plan.refused)
        assert plan.how, feature
        left_out = [u.target for u in plan.unswitchable]
        assert left_out == want["left_out"].get(feature, []), (feature, plan.unswitchable)
        assert all(len(u.reason) > 40 for u in plan.unswitchable), "the reason and the fix"
        if feature != "add_extensions":  # nothing was added: nothing to switch
            assert plan.switches, feature
        applied += await switch_off(driver, plan)

    harness = rig.harness
    for endpoint in want["stopped"]:
        assert harness.registered(endpoint) == [], f"{endpoint} is cut at once"
        answers = harness.refresh(endpoint)
        assert answers and not any(answers.values()), f"{endpoint} cannot come back"
    for endpoint, address in want["off_site"].items():
        assert address not in harness.registered(endpoint)
        assert harness.refresh(endpoint)[address] is False, f"{endpoint} from {address}"
    away = set(want["off_site"].values())
    for endpoint in want["on_site"]:
        answers = {a: ok for a, ok in harness.refresh(endpoint).items() if a not in away}
        assert answers and all(answers.values()), f"on-site {endpoint} keeps working"

    switched = [s for s, _ in applied]
    checks = await driver.check_switches(switched, thorough=True)
    assert {c.state for c in checks} == {SwitchState.IN_EFFECT}, [c.detail for c in checks]
    lapsed_tree = digests(tree)
    assert lapsed_tree != pristine
    for feature in want["off"] + list(want["left_out"]):
        plan = await driver.plan_switches(feature, policy)
        again = [s for s in plan.switches if s.kind is not SwitchKind.CUT]
        assert set(again) <= set(switched), "the same switches, planned again"
        outcomes = await driver.apply_switches(again)
        assert {o.state for o in outcomes} <= {SwitchState.IN_EFFECT}
    assert digests(tree) == lapsed_tree, "nothing made twice"

    await undo(driver, applied)
    assert digests(tree) == pristine, "every file byte-identical"
    assert harness.runtime_switched() == set()
    for endpoint in [*want["stopped"], *want["off_site"]]:
        answers = harness.refresh(endpoint)
        assert answers and all(answers.values()), f"{endpoint} registers again"


async def test_a_switch_the_pbx_undid_is_seen_and_made_again(rig: Rig) -> None:
    driver, policy = await lapsed(rig)
    tree = rig.harness.config_tree()
    pristine = digests(tree)
    plan = await driver.plan_switches("offsite_devices", policy)
    applied = await switch_off(driver, plan)
    config = [s for s, _ in applied if s.kind is not SwitchKind.CUT]
    lapsed_tree = digests(tree)
    endpoint, address = next(iter(rig.expected["features"]["off_site"].items()))

    await rig.harness.pbx_undoes()
    assert rig.harness.refresh(endpoint)[address] is True, "the PBX's own tooling undid it"
    # As the agent checks after a poll that saw the reload (or at the latest every few polls:
    # two reloads within one second look the same).
    checks = await driver.check_switches(config, thorough=True)
    assert {c.state for c in checks} == {SwitchState.ABSENT}, [c.detail for c in checks]
    outcomes = await driver.apply_switches(config)
    assert {o.state for o in outcomes} == {SwitchState.IN_EFFECT}
    assert digests(tree) == lapsed_tree, "made again, the same bytes"
    assert rig.harness.refresh(endpoint)[address] is False

    await rig.harness.restart()

    async def checked() -> list[SwitchState]:
        return [c.state for c in await driver.check_switches(config, thorough=True)]

    states = await eventually(checked, 15)
    lost = [s for s, state in zip(config, states, strict=True) if state is SwitchState.ABSENT]
    if lost:
        outcomes = await driver.apply_switches(lost)
        assert {o.state for o in outcomes} == {SwitchState.IN_EFFECT}
    assert {c.state for c in await driver.check_switches(config, thorough=True)} == {
        SwitchState.IN_EFFECT
    }
    await undo(driver, applied)
    assert digests(tree) == pristine


async def test_an_extension_added_during_the_lapse_is_switched_off(rig: Rig) -> None:
    driver, policy = await lapsed(rig)
    added = await rig.harness.add_extension()
    tree = rig.harness.config_tree()
    before = digests(tree)
    plan = await driver.plan_switches(
        "add_extensions", FeaturePolicy(new_endpoints=(added,), lan_subnets=policy.lan_subnets)
    )
    assert plan.refused is None and not plan.unswitchable
    applied = await switch_off(driver, plan)
    assert any(s.kind is SwitchKind.CUT for s, _ in applied), "its phone is cut"
    assert rig.harness.registered(added) == []
    assert not any(rig.harness.refresh(added).values())
    await undo(driver, applied)
    assert digests(tree) == before
    assert all(rig.harness.refresh(added).values())


async def test_without_file_access_nothing_is_claimed(rig: Rig) -> None:
    """The driver refuses what needs the PBX's files, naming the fix; through the agent each
    such feature is "not switched", a critical problem, and no file is touched."""
    driver, policy = await lapsed(rig, files=False)
    want = rig.expected["features"]
    for feature in want["needs_files"]:
        plan = await driver.plan_switches(feature, policy)
        assert plan.refused and "[backup]" in plan.refused, (feature, plan)
        assert driver.feature_switches()[feature].startswith("not switchable: ")
    tree = rig.harness.config_tree()
    pristine = digests(tree)
    site = await open_site(rig, files=False)
    try:
        await site.lapse()
        rows = await site.rows()
        events = await site.feature_events()
        for feature in want["needs_files"]:
            assert rows[feature]["actual"].startswith("not switched: "), rows[feature]
            assert (events[feature]["kind"], events[feature]["severity"]) == ("problem", "critical")
        assert digests(tree) == pristine
    finally:
        await site.close()


async def test_the_agent_lapses_and_renews_the_office(rig: Rig) -> None:
    """The agent's own cycle: every feature as the vendor's office allows, shown truthfully;
    renewal puts every file back byte for byte."""
    rig.harness.prepare_lapse()
    tree = rig.harness.config_tree()
    pristine = digests(tree)
    want = rig.expected["features"]
    site = await open_site(rig)
    try:
        await site.lapse()
        rows = await site.rows()
        for feature in want["off"]:
            assert rows[feature]["actual"] == "off", rows[feature]
        for feature, targets in want["left_out"].items():
            assert rows[feature]["actual"].startswith(f"not switched: {targets[0]}")
            assert [u["target"] for u in rows[feature]["unswitchable"]] == targets
        for feature in want["refused"]:
            assert rows[feature]["actual"].startswith("not switched: "), rows[feature]
        for feature in want["not_applicable"]:
            assert rows[feature]["actual"] == "n/a"
        events = await site.feature_events()
        for feature in [*want["left_out"], *want["refused"]]:
            event = events[feature]
            assert (event["kind"], event["severity"]) == ("problem", "critical"), "never silent"
        for endpoint in want["stopped"]:
            assert rig.harness.registered(endpoint) == []
        journal = await site.enforcement.journal()
        lapsed_tree = digests(tree)
        assert lapsed_tree != pristine
        await site.licence.refresh()
        await site.counting.count_now()
        await site.poller.poll_once()
        assert digests(tree) == lapsed_tree, "another check, count or poll changes nothing"
        assert len(await site.enforcement.journal()) == len(journal)

        await site.renew()
        rows = await site.rows()
        assert all(rows[f]["actual"] in ("on", "n/a") for f in DRIVER_FEATURES), rows
        assert digests(tree) == pristine
        assert rig.harness.runtime_switched() == set()
        states = {e["state"] for e in await site.enforcement.journal()}
        assert journal and states <= {"undone", "done"}
        for key in (KNOWN_APPS, KNOWN_ENDPOINTS):
            assert await site.store.get_meta(key) is None, "what the lapse acted on is forgotten"
    finally:
        await site.close()


# -- SIGKILL -------------------------------------------------------------------------------

KILLS = 10


async def test_sigkill_while_lapsing_and_renewing_converges(rig: Rig) -> None:
    """An agent that lapses and renews over and over (the licence server alternates) is
    killed at many points; after each kill no change is journalled or written twice, and a
    final run on an active licence leaves the PBX exactly as it was."""
    rig.harness.prepare_lapse()
    tree = rig.harness.config_tree()
    pristine = digests(tree)
    server = LicenceServer().start()
    until = now() + timedelta(days=300)
    flips = alternate_lapses(server, until)
    try:
        db = agent_config(rig, server).state.dir / "state.db"
        config = rig.tmp / "agent.toml"  # as agent_config wrote it
        kill = 0
        # At least KILLS kills, and more (on a loaded machine) until they landed amid a
        # dozen lapses and renewals.
        while kill < KILLS or (flips["n"] <= KILLS and kill < 4 * KILLS):
            await run_child(config, 1000, kill_after=0.1 + 0.08 * (kill % KILLS))
            kill += 1
            journal = active_journal(db)
            assert len(journal) == len(set(journal)), f"kill {kill}: a journal change twice"
            for path in tree.rglob("*"):
                if path.is_file():
                    text = path.read_text(errors="replace")
                    for marker in {line for line in text.splitlines() if "pbx-agent:" in line}:
                        assert text.count(marker) == 1, f"kill {kill}: {path.name} twice"
        assert flips["n"] > KILLS, "the kills landed while lapsing and renewing"

        server.on_request = None
        server.issue(expires_at=until)
        await run_child(config, 1, kill_after=None)
        assert digests(tree) == pristine
        assert rig.harness.runtime_switched() == set()
        assert active_journal(db) == []
    finally:
        server.stop()
