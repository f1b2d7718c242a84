"""Acceptance: the fixture office counts as its README says, through the simulator over TCP."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent.config.schema import CountingConfig, EndpointOverride
from agent.counting.explain import explain
from agent.counting.model import CountReport
from agent.counting.rules import History, count
from drivers.asterisk.simulator import Simulator
from drivers.models import Inventory
from tests.agent.counting_office import inventory_of

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FRESH = History(observing_since=NOW, last_registered={})


@pytest.fixture
async def inventory(ami_simulator: Simulator) -> Inventory:
    return await inventory_of(ami_simulator)


def run(
    inventory: Inventory, config: CountingConfig | None = None, history: History = FRESH
) -> CountReport:
    return count(inventory, config or CountingConfig(), history, site_id="nw", now=NOW)


async def test_eleven_seats_with_the_readme_merges_and_exclusions(inventory: Inventory) -> None:
    report = run(inventory)
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 11
    assert sorted(seats) == [
        "100",
        "101",
        "102",
        "103",
        "104",
        "105",
        "106",
        "107",
        "108",
        "109",
        "111",
    ]
    # 101: one endpoint, desk phone + app on the same AOR.
    assert [(d.kind, d.rule) for d in seats["101"].devices] == [
        ("desk_phone", "extension"),
        ("app", "same_aor"),
    ]
    # 102-app: linked by the {ext}-app pattern, corroborated by caller ID, mailbox and hint.
    app102 = seats["102"].endpoints[1]
    assert (app102.endpoint, app102.role, app102.rule) == ("102-app", "app", "app_name_pattern")
    assert set(app102.also) == {"same_callerid", "same_mailbox", "pbx_hint"}
    # 8103: no pattern matches; caller ID number <103> links it (mailbox and hint agree).
    app8103 = seats["103"].endpoints[1]
    assert (app8103.endpoint, app8103.rule) == ("8103", "same_callerid")
    assert set(app8103.also) == {"same_mailbox", "pbx_hint"}
    kinds = {ext: s.kind for ext, s in seats.items()}
    assert kinds["100"] == "desk_phone" and kinds["107"] == "cordless"
    assert kinds["108"] == "conference" and kinds["111"] == "ata"
    assert seats["108"].devices[0].status == "Unreachable", "a seat although unreachable"
    assert not seats["103"].registered and not seats["109"].registered

    excluded = {(x.kind, x.name): x.reason for x in report.excluded}
    assert excluded[("endpoint", "110")] == "AOR max_contacts=0: cannot register"
    for trunk in ("trunk-provider", "trunk-backup", "branch-office"):
        assert excluded[("trunk", trunk)].startswith("trunk: ")
    for reg in ("trunk-provider-reg", "trunk-backup-reg"):
        assert ("registration", reg) in excluded
    assert "no phone" in excluded[("mailbox", "500@default")]
    assert ("mailbox", "110@default") in excluded
    assert ("ivr", "900@internal-extensions") in excluded and ("ivr", "s@ivr-main") in excluded
    # Calls from the trunks reach the phone tree through inbound routes: routes, not IVRs.
    assert excluded[("route", "_X.@from-trunk")].startswith("inbound route")
    assert ("route", "5553010000@from-trunk") in excluded
    assert not any(kind == "ivr" and name.endswith("@from-trunk") for kind, name in excluded)
    for code in ("*97", "*98", "*28", "*43"):
        assert ("feature", f"{code}@internal-features") in excluded, code
    assert ("ring_group", "600@internal-extensions") in excluded
    assert ("queue", "support") in excluded and ("queue", "sales") in excluded
    assert ("conference", "800@internal-extensions") in excluded
    assert ("paging", "7000@internal-features") in excluded
    assert ("intercom", "_*80XXX@internal-features") in excluded
    assert ("parking", "71-78@parkedcalls") in excluded
    assert ("manager_account", "agent") in excluded and ("manager_account", "crm") in excluded
    assert report.warnings == ()


async def test_explain_has_a_line_per_seat_and_per_exclusion(inventory: Inventory) -> None:
    report = run(inventory)
    assert report.to_json() == dataclasses.asdict(report), "the plain form asdict would give"
    text = explain(report.to_json())
    assert sum(line.startswith("SEAT ") for line in text.splitlines()) == 11
    assert sum(line.startswith("NOT COUNTED ") for line in text.splitlines()) == len(
        report.excluded
    )
    assert "SEAT 102 'Bob Martinez' [desk_phone]" in text
    assert "8103 merged by same_callerid (also same_mailbox, pbx_hint)" in text
    assert "NOT COUNTED endpoint 110: AOR max_contacts=0: cannot register" in text
    assert text.splitlines()[-1].startswith("Total: 11 seats")


async def test_report_is_deterministic(inventory: Inventory, ami_simulator: Simulator) -> None:
    first = json.dumps(run(inventory).to_json(), sort_keys=True)
    second = json.dumps(run(inventory).to_json(), sort_keys=True)
    assert first == second
    reversed_inventory = replace(
        inventory,
        endpoints=inventory.endpoints[::-1],
        contacts=inventory.contacts[::-1],
        mailboxes=inventory.mailboxes[::-1],
        dialplan=inventory.dialplan[::-1],
    )
    assert json.dumps(run(reversed_inventory).to_json(), sort_keys=True) == first


async def test_stale_seats_need_enough_history(inventory: Inventory) -> None:
    assert run(inventory).stale == (), "no history yet: nothing can be called stale"
    long_ago = History(
        observing_since=NOW - timedelta(days=40),
        last_registered={"104": NOW - timedelta(days=2)},
    )
    report = run(inventory, history=long_ago)
    assert set(report.stale) == {"103", "105", "106", "109"}
    assert report.billable == 11, "stale seats still count until removed"


async def test_config_overrides(inventory: Inventory) -> None:
    config = CountingConfig(
        endpoints={
            "109": EndpointOverride(exclude="lobby phone is the landlord's"),
            "8103": EndpointOverride(seat="104"),
        }
    )
    report = run(inventory, config)
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 10
    assert [(e.endpoint, e.rule) for e in seats["104"].endpoints] == [
        ("104", "extension"),
        ("8103", "config_mapping"),
    ]
    assert ("endpoint", "109", "excluded in config: lobby phone is the landlord's") in {
        (x.kind, x.name, x.reason) for x in report.excluded
    }


async def test_a_mapping_to_a_seat_that_is_not_there_is_ignored_with_a_warning(
    inventory: Inventory,
) -> None:
    """A typo in counting.endpoints, or an extension since deleted or excluded, must not stop
    the count: the mapping is set aside, said so, and the other link rules decide."""
    plain = {s.extension: s for s in run(inventory).seats}
    joined = next(
        s.extension for s in plain.values() if "8103" in {e.endpoint for e in s.endpoints}
    )
    for target, also in (("999", {}), ("109", {"109": EndpointOverride(exclude="landlord's")})):
        config = CountingConfig(endpoints={"8103": EndpointOverride(seat=target), **also})
        report = run(inventory, config)
        seats = {s.extension: s for s in report.seats}
        assert "8103" in {e.endpoint for e in seats[joined].endpoints}, target
        assert (
            f"counting.endpoints maps 8103 to seat {target}, which is not the extension of a "
            "seat on this PBX: the mapping is ignored"
        ) in report.warnings


async def test_report_matches_its_published_json_schema(inventory: Inventory) -> None:
    from importlib import resources

    import jsonschema

    schema = json.loads(
        resources.files("agent").joinpath("schemas/count-report.schema.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    report = json.loads(json.dumps(run(inventory).to_json()))
    jsonschema.validate(report, schema)
    report["seats"][0]["kind"] = "robot"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, schema)


async def test_inventory_shows_each_endpoints_effective_options(inventory: Inventory) -> None:
    from dataclasses import asdict

    from agent import render

    text = render.inventory(json.loads(json.dumps(asdict(inventory), default=str)))
    line = next(x for x in text.splitlines() if x.startswith("  107 (PJSIP): "))
    # Template options expanded, then the section's own (fact 12), as Asterisk applies them.
    assert "context=from-internal" in line and "disallow=all" in line
    assert 'callerid="Grace Kim" <107>' in line
    peer = next(x for x in text.splitlines() if x.startswith("  branch-office (IAX2): "))
    assert "host=dynamic" in peer and "secret" not in peer
    assert "nwT3st" not in text, "no password or secret is ever shown"
