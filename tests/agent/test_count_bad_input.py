"""Hostile or broken PBX data: a warning in the report, never a crash, never a wrong total."""

from __future__ import annotations

from drivers.asterisk.sim.live import Contact
from drivers.asterisk.simulator import Simulator
from tests.agent.counting_office import count_now, inventory_of

BROKEN = """
[broken]
type = endpoint

[dup](tpl-endpoint-phone)
callerid = "Dup One" <120>
aors = dup

[dup](tpl-endpoint-phone)
callerid = "Dup Two" <121>
aors = dup

[dup](tpl-aor-phone)
"""


async def test_broken_office_gives_warnings_and_the_right_total(ami_simulator: Simulator) -> None:
    pjsip = ami_simulator.ctx.config.root / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() + BROKEN)
    live = ami_simulator.ctx.live
    live.contacts.append(Contact(aor="104", uri="not a uri at all", user_agent="x"))
    live.contacts.append(
        Contact(
            aor="105", uri="sip:105@127.0.0.30:5060", user_agent="Yealink SIP-T46S " + "A" * 10_000
        )
    )
    ami_simulator.ctx.reloaded("All")

    report = count_now(await inventory_of(ami_simulator))

    assert report.billable == 12, "the 11 seats plus one for the duplicated endpoint"
    warnings = "\n".join(report.warnings)
    assert "endpoint broken has no AOR" in warnings
    assert "PJSIP endpoint 'dup' is defined 2 times" in warnings
    assert "unparseable URI" in warnings
    assert "cut to 512" in warnings
    seats = {s.extension: s for s in report.seats}
    assert len(seats["105"].devices[0].user_agent) == 512
    assert seats["105"].devices[0].kind == "desk_phone"
    assert ("endpoint", "broken") in {(x.kind, x.name) for x in report.excluded}
