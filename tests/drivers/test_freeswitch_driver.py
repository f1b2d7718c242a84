"""The FreeSWITCH driver over the simulator: the inventory per domain asks for no secret it can
avoid (fact 40: xml_locate directory and a bare global_getvar return every password), keeps
none and logs none; configured domains limit what is read; the start time stays put."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from drivers.freeswitch.driver import FreeswitchDriver
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.simulator import Simulator
from drivers.models import Capability
from tests.conftest import FIXTURES

PASSWORD = "Fake-Esl-Pass-2024"
SIP_PASSWORDS = ("fake-1001-Rcpt", "fake-1006-Gone", "fake-2003-Coast", "fake-trunk-pass-1")


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(load_office(FIXTURES / "offices" / "bayside-coastal.toml"), scheduler=False)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def driver(sim: Simulator, domains: tuple[str, ...] = ()) -> FreeswitchDriver:
    return FreeswitchDriver(EslSettings("127.0.0.1", sim.port, PASSWORD, domains=domains))


async def test_no_avoidable_secret_is_asked_kept_or_logged(simulator: Simulator) -> None:
    fs = driver(simulator)
    assert Capability.FEATURES in fs.capabilities  # switching: tests/drivers/test_fs_switching.py
    await fs.connect()
    try:
        with capture_logs() as logs:
            inventory = await fs.inventory()
    finally:
        await fs.close()
    sent = list(simulator.received)
    assert not [c for c in sent if c.startswith("api xml_locate directory")]
    assert "api global_getvar" not in sent
    # A password is asked about only where FreeSWITCH would refuse an empty one and the user
    # has no registration and is not barred: here the voicemail-only box, answered by
    # presence alone.
    asked = [c for c in sent if c.endswith(("param password", "param a1-hash"))]
    assert asked == [
        "api user_data 1099@bayside.example param password",
        "api user_data 1099@bayside.example param a1-hash",
    ]
    everything = repr(inventory) + repr(logs) + repr(fs.__dict__)
    for secret in (PASSWORD, *SIP_PASSWORDS):
        assert secret not in everything
    reasons = {
        (t.tenant, e.name): e.cannot_register
        for t in inventory.tenants
        for e in t.endpoints
        if e.cannot_register
    }
    assert set(reasons) == {("bayside.example", "1006"), ("bayside.example", "1099")}


async def test_configured_domains_limit_what_is_read(simulator: Simulator) -> None:
    fs = driver(simulator, domains=("coastal.example",))
    await fs.connect()
    try:
        inventory = await fs.inventory()
        endpoints = await fs.endpoints()
    finally:
        await fs.close()
    assert [t.tenant for t in inventory.tenants] == ["coastal.example"]
    assert sorted(e.name for e in inventory.tenants[0].endpoints) == [
        "2001",
        "2002",
        "2003",
        "2004",
    ]
    assert {e.name.split("@")[1] for e in endpoints} == {"coastal.example"}
    sent = list(simulator.received)
    assert "api list_users domain coastal.example" in sent and "api list_users" not in sent
    assert not [c for c in sent if "bayside" in c], "another customer's tenant was read"


async def test_an_unknown_domain_is_a_warning(simulator: Simulator) -> None:
    fs = driver(simulator, domains=("nosuch.example",))
    await fs.connect()
    try:
        inventory = await fs.inventory()
    finally:
        await fs.close()
    assert any("nosuch.example is not in FreeSWITCH's directory" in w for w in inventory.warnings)


async def test_the_start_time_does_not_move_between_reads(simulator: Simulator) -> None:
    fs = driver(simulator)
    await fs.connect()
    try:
        first = await fs.facts()
        simulator.state.scheduler_tick()  # a HEARTBEAT gives the PBX's own clock
        second = await fs.facts()
        assert first.startup_time == second.startup_time
        simulator.state.started -= 3600  # the same process cannot have started earlier...
        moved = await fs.facts()
        assert moved.startup_time != first.startup_time  # ...so this is a restart
    finally:
        await fs.close()


async def test_unreachable_devices_and_gateway_states(simulator: Simulator) -> None:
    fs = driver(simulator)
    await fs.connect()
    try:
        endpoints = {e.name: e for e in await fs.endpoints()}
        assert endpoints["1090@bayside.example"].device_state == "Unavailable"  # fact 27
        assert endpoints["1002@bayside.example"].device_state == "Reachable"
        assert "1006@bayside.example" not in endpoints  # cannot register: no phone
        simulator.state.gateway_state("bayside-trunk", "REGED")
        states = {r.name: r.status for r in await fs.registrations()}
        assert states == {"bayside-trunk": "Registered", "coastal-trunk": "FAIL_WAIT"}
    finally:
        await fs.close()
