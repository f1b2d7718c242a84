"""IAX2 and chan_sip peers: phone or trunk, decided from their configuration and the
dialplan (the live lists cannot tell them apart, capture 2 facts 42-43)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config.schema import CountingConfig, EndpointOverride
from agent.counting.explain import explain
from agent.counting.model import CountReport
from agent.counting.peers import PEER_RULE
from agent.counting.rules import History, count
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.models import Aor, Endpoint, Inventory, PbxFacts, PeerConfig
from tests.agent.counting_office import inventory_of
from tests.conftest import FIXTURES

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CAPTURE2_IAX = FIXTURES / "asterisk-ami-freepbx" / "pbx-config-extras" / "iax.conf"
PHONE_DIALLED_BY_ITS_EXTENSION = """
[121]
type = friend
host = dynamic
username = 121
callerid = "Hal Jones" <121>
context = from-internal
"""


def run(inventory: Inventory, config: CountingConfig | None = None) -> CountReport:
    return count(
        inventory, config or CountingConfig(), History(NOW, {}), site_id="t", now=NOW
    )


def peer(name: str, callerid: str | None = None, **config: object) -> Endpoint:
    return Endpoint(
        name=name,
        technology="IAX2",
        callerid_number=callerid,
        aors=(name,),
        peer=PeerConfig(**config),  # type: ignore[arg-type]
    )


def office(*endpoints: Endpoint) -> Inventory:
    phone = Endpoint("100", callerid_number="100", aors=("100",), inbound_auth=True)
    return Inventory(
        facts=PbxFacts("asterisk", "22.10.1"), endpoints=(phone, *endpoints), aors=(Aor("100", 1),)
    )


# -- the rule ------------------------------------------------------------------------------


def test_a_registering_peer_with_a_caller_id_is_a_seat() -> None:
    report = run(office(peer("120", "120", dynamic=True)))
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 2
    member = seats["120"].endpoints[0]
    assert member.technology == "IAX2" and member.role == "phone"
    assert "caller ID <120>" in member.evidence[0]
    assert report.warnings == ()


def test_a_peer_with_no_sign_of_a_phone_is_a_trunk() -> None:
    report = run(office(peer("branch-office", dynamic=True)))
    assert report.billable == 1
    (trunk,) = [x for x in report.excluded if x.kind == "trunk"]
    assert trunk.reason == (
        "trunk: IAX2 peer with no caller ID and no extension that dials it "
        "(a link to another PBX)"
    )


@pytest.mark.parametrize(
    ("config", "sign"),
    [
        ({"trunk_flag": True}, "trunk=yes"),
        ({"host": "192.0.2.10"}, "static host 192.0.2.10"),
        ({"registers": True}, "a register => line names it"),
        ({"dialled_with_number": True}, "dialled only from outbound routes"),
    ],
)
def test_trunk_signs(config: dict[str, object], sign: str) -> None:
    report = run(office(peer("link", **config)))
    (trunk,) = [x for x in report.excluded if x.kind == "trunk"]
    assert report.billable == 1 and sign in trunk.reason


def test_mixed_evidence_is_a_seat_with_a_warning_naming_the_override() -> None:
    mixed = peer("130", "130", host="192.0.2.10")
    report = run(office(mixed))
    assert report.billable == 2
    (warning,) = report.warnings
    assert warning.startswith("IAX2 peer 130 shows signs of a phone (caller ID <130>)")
    assert "of a trunk (static host 192.0.2.10): counted as a seat" in warning
    assert '[counting.endpoints."130"] exclude = "trunk to <where>"' in warning
    assert '[counting.endpoints."130"] kind = "desk_phone"' in warning

    as_phone = CountingConfig(endpoints={"130": EndpointOverride(kind="desk_phone")})
    settled = run(office(mixed), as_phone)
    assert settled.billable == 2 and settled.warnings == ()
    trunk = CountingConfig(endpoints={"130": EndpointOverride(exclude="trunk to HQ")})
    as_trunk = run(office(mixed), trunk)
    assert as_trunk.billable == 1
    assert ("endpoint", "130", "excluded in config: trunk to HQ") in {
        (x.kind, x.name, x.reason) for x in as_trunk.excluded
    }


def test_explain_states_the_peer_rule() -> None:
    text = explain(run(office(peer("120", "120", dynamic=True))).to_json())
    assert f"RULE {PEER_RULE}" in text
    assert "SEAT 120 [unknown] (IAX2): no device registered; IAX2 peer counted as a phone" in text


# -- through the simulator -----------------------------------------------------------------


@pytest.fixture
async def iax_office(tmp_path: Path) -> AsyncIterator[Simulator]:
    """The capture-1 office with capture 2's iax.conf (the IAX2 phone 120 next to the
    branch-office trunk) and a second IAX2 phone that its extension dials."""
    async with office_with_iax(tmp_path, PHONE_DIALLED_BY_ITS_EXTENSION) as simulator:
        yield simulator


@contextlib.asynccontextmanager
async def office_with_iax(tmp_path: Path, peers: str) -> AsyncIterator[Simulator]:
    """The capture-1 office serving capture 2's iax.conf with `peers` added."""
    config = tmp_path / "pbx-config"
    shutil.copytree(FIXTURES / "asterisk-ami" / "pbx-config", config)
    (config / "iax.conf").write_bytes(CAPTURE2_IAX.read_bytes() + peers.encode())
    extensions = config / "extensions.conf"
    extensions.write_text(
        extensions.read_text().replace(
            "[internal-features]",
            "exten => 121,1,Dial(IAX2/121,20)\n same => n,Hangup()\n\n[internal-features]",
        )
    )
    toml = (FIXTURES / "offices" / "northwind.toml").read_text()
    toml = toml.replace('config_dir = "../asterisk-ami/pbx-config"', f'config_dir = "{config}"')
    (tmp_path / "office.toml").write_text(toml)
    simulator = Simulator(load_office(tmp_path / "office.toml"))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_the_iax2_phone_counts_and_the_branch_office_stays_a_trunk(
    iax_office: Simulator,
) -> None:
    inventory = await inventory_of(iax_office)
    assert not any("nwT3st-iax" in repr(e) for e in inventory.endpoints), "no secret kept"
    report = run(inventory)
    seats = {s.extension: s for s in report.seats}
    assert report.billable == 13, "the 11 seats of the office and the two IAX2 phones"
    assert seats["120"].name == "Ivy Chen" and seats["120"].endpoints[0].technology == "IAX2"
    assert "dialled as a phone by extension 121" in seats["121"].endpoints[0].evidence[0]
    excluded = {(x.kind, x.name): x.reason for x in report.excluded}
    assert excluded[("trunk", "branch-office")].startswith("trunk: IAX2 peer with no caller ID")
    assert report.warnings == ()


async def test_an_iax2_peer_named_like_a_pjsip_endpoint_is_one_extension(
    tmp_path: Path,
) -> None:
    """Extension 101 moved to PJSIP with its old IAX2 peer left in iax.conf: one seat, the
    PJSIP endpoint's, and a warning that says so."""
    peer = PHONE_DIALLED_BY_ITS_EXTENSION.replace("121", "101").replace("Hal Jones", "Old 101")
    async with office_with_iax(tmp_path, PHONE_DIALLED_BY_ITS_EXTENSION + peer) as simulator:
        inventory = await inventory_of(simulator)
    named_101 = [e for e in inventory.endpoints if e.name == "101"]
    assert [e.technology for e in named_101] == ["PJSIP"]
    assert [e.name for e in inventory.endpoints] == sorted(e.name for e in inventory.endpoints)
    report = run(inventory)
    assert report.billable == 13, "the office's 11, 120 and 121: 101 once"
    assert (
        "IAX2 101 has the same name as PJSIP 101: one extension, counted once as PJSIP"
        in inventory.warnings
    )
