"""Shared by the count tests that go through the simulator: the inventory over TCP, a count
with a fresh history, and the pjsip.conf lines of one more extension."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.config.schema import CountingConfig
from agent.counting.model import CountReport
from agent.counting.rules import History, count
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.settings import AmiSettings
from drivers.asterisk.simulator import Simulator
from drivers.models import Inventory
from tests.conftest import AGENT_SECRET


async def inventory_of(simulator: Simulator) -> Inventory:
    driver = AsteriskDriver(AmiSettings("127.0.0.1", simulator.port, "agent", AGENT_SECRET))
    await driver.connect()
    try:
        return await driver.inventory()
    finally:
        await driver.close()


def count_now(
    inventory: Inventory, config: CountingConfig | None = None, now: datetime | None = None
) -> CountReport:
    """A count with no registration history (nothing is stale yet)."""
    now = now or datetime.now(UTC)
    return count(inventory, config or CountingConfig(), History(now, {}), site_id="t", now=now)


def extension(number: str, name: str, password: str) -> str:
    """pjsip.conf lines for one more extension, written like the office's own."""
    return f"""
[{number}](tpl-endpoint-phone)
callerid = "{name}" <{number}>
auth = {number}
aors = {number}
[{number}](tpl-auth)
username = {number}
password = {password}
[{number}](tpl-aor-phone)
"""
