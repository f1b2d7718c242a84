"""Shared fixtures: the fixture office, an AMI simulator serving it on a free port, real
sshd servers (the PBX, the archive host) and real Mosquitto brokers."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from agent.logs import configure_logging
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from tests import mosquitto as mosquitto_module
from tests import sshd as sshd_module
from tests.mosquitto import Broker
from tests.sshd import SshServer

FIXTURES = Path(__file__).parent / "fixtures"
TRANSCRIPTS = FIXTURES / "asterisk-ami" / "transcripts"
AGENT_SECRET = "nwT3st-ami-agent-8Kq2"
CRM_SECRET = "nwT3st-ami-crm-3Zp7"


@pytest.fixture
def northwind_office_path() -> Path:
    return FIXTURES / "offices" / "northwind.toml"


@pytest.fixture
async def ami_simulator(northwind_office_path: Path) -> AsyncIterator[Simulator]:
    simulator = Simulator(load_office(northwind_office_path))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def _ssh_server(workdir: Path) -> Iterator[SshServer]:
    if not sshd_module.available():
        pytest.skip("OpenSSH sshd is not installed (scripts/test installs it as root)")
    server = sshd_module.start(workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A real OpenSSH server on loopback (skipped with the reason when sshd is missing)."""
    yield from _ssh_server(tmp_path / "sshd")


@pytest.fixture
def archive_sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A second real OpenSSH server: the reseller's archive host (beside `sshd`, the PBX)."""
    yield from _ssh_server(tmp_path / "archive-sshd")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port (plain MQTT)."""
    if not mosquitto_module.available():
        pytest.skip("mosquitto is not installed (scripts/test installs it as root)")
    broker = mosquitto_module.start(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_tls(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto broker requiring TLS with a client certificate (test CA)."""
    if not mosquitto_module.available():
        pytest.skip("mosquitto is not installed (scripts/test installs it as root)")
    broker = mosquitto_module.start(tmp_path / "mosquitto-tls", tls=True)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The agent's logging as in production (JSON lines, the AMI secret registered for
    redaction), written to a buffer the test reads."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream, secrets=[AGENT_SECRET])
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
