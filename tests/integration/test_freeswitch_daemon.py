"""The daemon on a FreeSWITCH, built from `[pbx] driver = "freeswitch"` without the agent knowing
the vendor: status, the count per tenant with its total, signed usage reports carrying the
domains, and `diag` checking the event socket (with the hint a technician needs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.freeswitch.sim.office import load_office
from drivers.freeswitch.simulator import Simulator
from tests.conftest import FIXTURES
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)

PASSWORD = "Fake-Esl-Pass-2024"


@pytest.fixture
async def freeswitch() -> AsyncIterator[Simulator]:
    sim = Simulator(load_office(FIXTURES / "offices" / "bayside-coastal.toml"))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def esl_config(tmp: Path, port: int, secret: str = PASSWORD) -> Path:
    pbx = f'[pbx]\ndriver = "freeswitch"\n[pbx.esl]\nport = {port}\nsecret_file = "pbx-secret"\n'
    return write_config(tmp, 0, secret=secret, pbx=pbx)


async def test_the_daemon_counts_each_tenant_and_signs_the_domains(
    freeswitch: Simulator, tmp_path: Path
) -> None:
    config = esl_config(tmp_path, freeswitch.port)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        status = await asyncio.to_thread(
            wait_for,
            status_when(sock, lambda r: bool(r["pbx"]["last_good_poll"])),
            20,
            "a good poll",
        )
        assert status["pbx"]["driver"] == "freeswitch"
        assert status["pbx"]["address"] == f"127.0.0.1:{freeswitch.port}"
        assert status["pbx"]["last_good_poll"]["facts"]["version"] == "1.10.12-release"

        counted = await cli("count", "--config", str(config), "--json")
        assert counted.returncode == 0, counted.stderr
        report: dict[str, Any] = json.loads(counted.stdout)
        assert report["billable"] == 11
        assert {t["tenant"]: t["billable"] for t in report["tenants"]} == {
            "bayside.example": 7,
            "coastal.example": 4,
        }
        explained = await cli("count", "--config", str(config), "--explain")
        assert "Tenant coastal.example: 4 seats" in explained.stdout

        exported = tmp_path / "usage.jsonl"
        assert (
            await cli("usage", "export", "--config", str(config), str(exported))
        ).returncode == 0
        payload = json.loads(exported.read_text().splitlines()[-1])["payload"]
        assert payload["tenants"] == [
            {"tenant": "bayside.example", "billable": 7},
            {"tenant": "coastal.example", "billable": 4},
        ]
        assert {s["tenant"] for s in payload["seats"]} == {"bayside.example", "coastal.example"}

        code, checks = await diag(config)
        assert checks["pbx-esl"]["status"] == "PASS", checks["pbx-esl"]
        assert "freeswitch 1.10.12-release" in checks["pbx-esl"]["value"]
    finally:
        code, out, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
    for secret in (PASSWORD, "fake-1001-Rcpt", "fake-2003-Coast"):
        assert secret not in out + err


async def diag(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    result = await cli("diag", "--config", str(config), "--json")
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


async def test_diag_names_what_to_fix_on_the_event_socket(
    freeswitch: Simulator, tmp_path: Path
) -> None:
    code, checks = await diag(esl_config(tmp_path, freeswitch.port, secret="not-it"))
    assert code == 1 and checks["pbx-esl"]["status"] == "FAIL"
    assert "event_socket.conf.xml" in checks["pbx-esl"]["hint"]
    freeswitch.faults.refuse_connections = True
    code, checks = await diag(esl_config(tmp_path, freeswitch.port))
    assert checks["pbx-esl"]["status"] == "FAIL"
    assert "mod_event_socket" in checks["pbx-esl"]["hint"]
