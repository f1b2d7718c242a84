"""Capture-2 acceptance: the Northwind office in FreePBX 17's file layout (#include files,
`(+)` additions, *_custom files) counts exactly as capture 1 does, and its IAX2 phone 120
(the capture's extra iax.conf) is a seat while the branch-office link stays a trunk."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from agent import render
from agent.counting.explain import explain
from agent.counting.model import CountReport
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from tests.agent.counting_office import count_now, inventory_of
from tests.conftest import FIXTURES

EXTRAS = FIXTURES / "asterisk-ami-freepbx" / "pbx-config-extras"


@pytest.fixture
def northwind_office_path() -> Path:
    return FIXTURES / "offices" / "northwind-freepbx.toml"


async def capture1_report() -> CountReport:
    simulator = Simulator(load_office(FIXTURES / "offices" / "northwind.toml"))
    await simulator.start()
    try:
        return count_now(await inventory_of(simulator))
    finally:
        await simulator.stop()


def outcome(report: CountReport) -> dict[str, Any]:
    """What the count decided: seats with their endpoints, merge rules and device kinds,
    and what is not counted (the captures' phones registered from different addresses)."""
    data = report.to_json()
    seats = [
        (
            s["extension"],
            s["name"],
            s["kind"],
            s["endpoints"],
            [(d["endpoint"], d["kind"], d["user_agent"], d["rule"]) for d in s["devices"]],
        )
        for s in data["seats"]
    ]
    return {"seats": seats, "excluded": data["excluded"], "billable": data["billable"]}


async def test_the_freepbx_layout_counts_the_same_eleven(ami_simulator: Simulator) -> None:
    report = count_now(await inventory_of(ami_simulator))
    assert report.billable == 11
    assert report.warnings == (), "the include files agree with what Asterisk runs"
    assert outcome(report) == outcome(await capture1_report()), "same seats, merges, reasons"


async def test_the_iax2_phone_is_a_seat_and_the_branch_office_a_trunk(
    ami_simulator: Simulator,
) -> None:
    shutil.copyfile(EXTRAS / "iax.conf", ami_simulator.ctx.config.root / "iax.conf")
    ami_simulator.ctx.reloaded("chan_iax2.so")

    inventory = await inventory_of(ami_simulator)
    report = count_now(inventory)
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 12, "the 11 seats and the IAX2 softphone of capture 2"
    (ivy,) = seats["120"].endpoints
    assert (seats["120"].name, ivy.technology, ivy.role) == ("Ivy Chen", "IAX2", "phone")
    excluded = {(x.kind, x.name): x.reason for x in report.excluded}
    assert excluded[("trunk", "branch-office")].startswith("trunk: IAX2 peer with no caller ID")
    assert report.warnings == ()
    text = explain(report.to_json())
    assert "SEAT 120 'Ivy Chen'" in text and "\nRULE An IAX2 or SIP peer is a seat" in text
    assert "nwT3st-iax" not in repr(inventory), "no IAX2 secret is kept"


async def test_inventory_shows_the_plus_addition_as_asterisk_applies_it(
    ami_simulator: Simulator,
) -> None:
    """Fact 21: `[104](+type=endpoint)` in pjsip.endpoint_custom_post.conf adds
    rtp_keepalive=15, which PJSIPShowEndpoint 104 reports; the inventory shows it on 104."""
    inventory = await inventory_of(ami_simulator)
    text = render.inventory(json.loads(json.dumps(asdict(inventory), default=str)))
    line = next(x for x in text.splitlines() if x.startswith("  104 (PJSIP): "))
    assert "rtp_keepalive=15" in line and "device_state_busy_at=2" in line
    assert "nwT3st" not in text
