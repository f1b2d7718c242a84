"""The count follows what the PBX runs: config files edited without a reload are reported
with both views, and the live PBX is what counts (through the simulator over TCP)."""

from __future__ import annotations

import re

from drivers.asterisk.sim.live import Contact
from drivers.asterisk.simulator import Simulator
from tests.agent.counting_office import count_now, extension, inventory_of

NEW_EXTENSION = extension("130", "New Hire", "nwT3st-130-Zz9")


def started(simulator: Simulator) -> Simulator:
    """The PBX has read its files at start (the simulator reads them on first use)."""
    simulator.ctx.loaded("pjsip.conf")
    return simulator


async def test_an_endpoint_typed_into_the_file_but_not_reloaded_is_not_counted(
    ami_simulator: Simulator,
) -> None:
    pjsip = started(ami_simulator).ctx.config.root / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() + NEW_EXTENSION)

    report = count_now(await inventory_of(ami_simulator))
    assert report.billable == 11, "Asterisk has not loaded 130: it cannot ring"
    assert "130" not in {s.extension for s in report.seats}
    assert (
        "endpoint 130 is in pjsip.conf but not loaded in Asterisk: not counted until "
        "res_pjsip is reloaded" in report.warnings
    )

    ami_simulator.ctx.reloaded("res_pjsip.so")  # the admin reloads
    report = count_now(await inventory_of(ami_simulator))
    assert report.billable == 12 and "130" in {s.extension for s in report.seats}
    assert not any("130" in w for w in report.warnings)


async def test_an_endpoint_removed_from_the_file_but_still_loaded_still_counts(
    ami_simulator: Simulator,
) -> None:
    pjsip = started(ami_simulator).ctx.config.root / "pjsip.conf"
    text = pjsip.read_text()
    without_109 = re.sub(r"^\[109\].*?(?=^\[|\Z)", "", text, flags=re.M | re.S)
    assert "[109]" not in without_109
    pjsip.write_text(without_109)

    inventory = await inventory_of(ami_simulator)
    report = count_now(inventory)
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 11 and "109" in seats, "Asterisk still runs 109: it can ring"
    assert seats["109"].name == "Lobby", "details from PJSIPShowEndpoint, not the file"
    assert (
        "endpoint 109 is loaded in Asterisk but no longer in pjsip.conf: counted as Asterisk "
        "runs it (it goes at the next res_pjsip reload)" in report.warnings
    )


async def test_a_changed_aor_counts_as_asterisk_runs_it_and_warns_with_both(
    ami_simulator: Simulator,
) -> None:
    pjsip = started(ami_simulator).ctx.config.root / "pjsip.conf"
    text = pjsip.read_text()
    pjsip.write_text(text.replace("aors = 100\n", "aors = 100-new\n", 1))
    ami_simulator.ctx.live.contacts.append(
        Contact(aor="100-new", uri="sip:100@127.0.0.99:5060", user_agent="Yealink SIP-T54W")
    )

    report = count_now(await inventory_of(ami_simulator))
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 11
    assert [d.source for d in seats["100"].devices] == ["127.0.0.10:5060"], "the live AOR"
    both_views = "endpoint 100: aors 100 in Asterisk, 100-new in the file"
    assert any(w.startswith(both_views) for w in report.warnings)
