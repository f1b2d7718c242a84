"""The simulator charges GetConfig what a real Asterisk's re-read of the file costs, when the
office asks for it (issue 19: the benchmark must show the PBX's own cost)."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from drivers.asterisk import wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.sim.cost import MEASURED_SECONDS_PER_VARIABLE, GetConfigCost, pieces
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.sim_server import OfficeError
from tests.conftest import AGENT_SECRET, FIXTURES

NORTHWIND = FIXTURES / "offices" / "northwind.toml"


def office_with(tmp_path: Path, setting: str) -> Path:
    """The northwind office with `[pbx] getconfig_cost = SETTING`, its files where they are."""
    text = NORTHWIND.read_text().replace(
        'config_dir = "../asterisk-ami/pbx-config"',
        f'config_dir = "{(FIXTURES / "asterisk-ami" / "pbx-config").as_posix()}"',
    )
    text = text.replace('system_name = "nw-pbx01"', f'system_name = "nw-pbx01"\n{setting}')
    path = tmp_path / "office.toml"
    path.write_text(text)
    assert tomllib.loads(text)["pbx"]
    return path


def test_the_measured_model_is_the_issues_figures() -> None:
    """235 ms per GetConfig of a 10,000-extension pjsip.conf of ~28 variables per extension."""
    assert pytest.approx(0.235) == 10_000 * 28 * MEASURED_SECONDS_PER_VARIABLE


def test_the_charge_follows_the_whole_file_whatever_the_filter(tmp_path: Path) -> None:
    simulator = Simulator(load_office(office_with(tmp_path, 'getconfig_cost = "asterisk"')))
    cost = simulator.getconfig_cost
    assert cost is not None and cost.per_variable == MEASURED_SECONDS_PER_VARIABLE
    ctx = simulator.ctx
    conf = ctx.config.read("pjsip.conf")
    variables = sum(len(conf.expanded(c)) for c in conf.categories)
    assert variables > 300

    def charge(*headers: tuple[str, str]) -> float:
        return cost.charge(ctx, [("Action", "GetConfig"), *headers])

    whole = charge(("Filename", "pjsip.conf"))
    assert whole == pytest.approx(variables * MEASURED_SECONDS_PER_VARIABLE)
    assert charge(("Filename", "pjsip.conf"), ("Filter", "type=identify")) == whole
    assert charge(("Filename", "manager.conf")) < whole / 10
    assert charge(("Filename", "missing.conf")) == 0
    assert cost.charge(ctx, [("Action", "Ping")]) == 0
    pjsip = ctx.config.root / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() * 2)  # every section twice: twice the work
    assert charge(("Filename", "pjsip.conf")) == pytest.approx(2 * whole)


def test_no_setting_no_charge_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert Simulator(load_office(NORTHWIND)).getconfig_cost is None
    assert GetConfigCost.from_office(load_office(office_with(tmp_path, "getconfig_cost = 2")))
    with pytest.raises(OfficeError, match="getconfig_cost"):
        Simulator(load_office(office_with(tmp_path, 'getconfig_cost = "slow"')))


async def test_a_charged_getconfig_waits_on_the_wire(tmp_path: Path) -> None:
    simulator = Simulator(load_office(office_with(tmp_path, "getconfig_cost = 1000")))
    await simulator.start()
    try:
        assert simulator.getconfig_cost is not None
        expected = simulator.getconfig_cost.charge(
            simulator.ctx, [("Action", "GetConfig"), ("Filename", "pjsip.conf")]
        )
        assert expected > 0.3
        client = AmiClient(AmiSettings("127.0.0.1", simulator.port, "agent", AGENT_SECRET))
        await client.connect()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.action("GetConfig", Filename="pjsip.conf")
            assert loop.time() - started >= expected
        finally:
            await client.close()
    finally:
        await simulator.stop()


@pytest.mark.parametrize("size", [1, 100, 65536])
def test_an_answer_handed_over_in_pieces_is_the_same_bytes(size: int) -> None:
    """As Asterisk writes an answer while it makes it, the paced simulator sends it in
    pieces: together exactly what `wire.encode` gives, bare lines and empty values kept."""
    getconfig = [("Response", "Success"), ("ActionID", "a1")] + [
        (f"Line-000000-{n:06d}", f"set_var=X{n}={'y' * (n % 50)}") for n in range(2000)
    ]
    messages = [getconfig, [("", "No categories found")], [("Event", "E"), ("Empty", "")]]
    sent = list(pieces(messages, size))
    assert b"".join(sent) == b"".join(wire.encode(m) for m in messages)
    assert len(sent) > 1 if size < 65536 else len(sent) >= 1
