"""Devices on a seat (through the simulator): ordered by address numerically with the
physical device as the primary, and a seat whose devices are all apps is an app seat."""

from __future__ import annotations

import pytest

from drivers.asterisk.sim.live import Contact
from drivers.asterisk.simulator import Simulator
from tests.agent.counting_office import count_now, extension, inventory_of

APP_ONLY_USER = extension("301", "Remote Rita", "nwT3st-301-Ap1")


@pytest.mark.parametrize(
    ("desk", "app"),
    [
        # As text, 127.0.1.113 sorts before 127.0.1.13 (the issue-13 bug put the app first).
        ("127.0.1.13", "127.0.1.113"),
        # Whatever the addresses, the physical device is the primary.
        ("127.0.1.200", "127.0.1.13"),
    ],
)
async def test_on_a_shared_aor_the_desk_phone_is_primary(
    ami_simulator: Simulator, desk: str, app: str
) -> None:
    live = ami_simulator.ctx.live
    live.contacts = [c for c in live.contacts if c.aor != "101"] + [
        Contact(aor="101", uri=f"sip:101@{app}:52144", user_agent="Zoiper rv2.10.20.2"),
        Contact(aor="101", uri=f"sip:101@{desk}:5060", user_agent="Yealink SIP-T46S 66.86.0.15"),
    ]
    report = count_now(await inventory_of(ami_simulator))
    seat = {s.extension: s for s in report.seats}["101"]
    assert [(d.kind, d.rule, d.source) for d in seat.devices] == [
        ("desk_phone", "extension", f"{desk}:5060"),
        ("app", "same_aor", f"{app}:52144"),
    ]
    assert seat.kind == "desk_phone" and seat.endpoints[0].role == "phone"


async def test_two_apps_on_one_aor_are_ordered_by_address(ami_simulator: Simulator) -> None:
    live = ami_simulator.ctx.live
    live.contacts = [c for c in live.contacts if c.aor != "101"] + [
        Contact(aor="101", uri="sip:101@127.0.1.113:5060", user_agent="Z 5.6.6 v2.10.20.5"),
        Contact(aor="101", uri="sip:101@127.0.1.13:5060", user_agent="Zoiper rv2.10.20.2"),
    ]
    seat = {s.extension: s for s in (count_now(await inventory_of(ami_simulator))).seats}["101"]
    assert [d.source for d in seat.devices] == ["127.0.1.13:5060", "127.0.1.113:5060"]


async def test_a_user_with_only_the_zoiper_5_app_is_an_app_seat(ami_simulator: Simulator) -> None:
    pjsip = ami_simulator.ctx.config.root / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() + APP_ONLY_USER)
    ami_simulator.ctx.reloaded("res_pjsip.so")
    ami_simulator.ctx.live.contacts.append(
        Contact(aor="301", uri="sip:301@127.0.0.40:49000", user_agent="Z 5.6.6 v2.10.20.5")
    )
    report = count_now(await inventory_of(ami_simulator))
    seat = {s.extension: s for s in report.seats}["301"]
    assert report.billable == 12, "an app-only user is a user"
    assert seat.kind == "app" and seat.devices[0].kind == "app"
    assert seat.endpoints[0].role == "app", "so the licence rules treat it as an app"
    assert any(w.startswith("app endpoint 301 links to no extension") for w in report.warnings)
