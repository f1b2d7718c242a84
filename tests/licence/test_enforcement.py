"""The full licence cycle on both captured offices (the FreePBX layout of capture 2 and the
hand-written single-file office of capture 1), with the licence test double, a clock the test
moves and the real poller: lapse -> every driver feature switched off and proven, only
agent-owned places changed, the apps' contacts gone; FreePBX's Apply Config and a new extension
-> switches still proven and `add_extensions` reaching the new one within a poll; a custom
file wiped or a PBX restart -> re-applied with a `licence` message; renewal -> every file
byte-identical, maintenance off, the lapse-start endpoint list forgotten."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config import load_config
from agent.daemon import create_driver
from agent.licence.policy import KNOWN_ENDPOINTS
from drivers.asterisk.driver import AsteriskDriver
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.office import load_office
from drivers.asterisk.simulator import Simulator
from drivers.config_files import LocalConfigFiles
from tests.conftest import FIXTURES
from tests.drivers.test_ami_client import eventually
from tests.enforcement_rig import Agent, start_agent
from tests.integration.daemon_harness import write_config
from tests.licence_server import LicenceServer

OFFICES = {
    "freepbx": (FIXTURES / "offices" / "northwind-freepbx.toml", '["127.0.5.0/24"]'),
    "plain": (FIXTURES / "offices" / "northwind.toml", '["127.0.0.0/24"]'),
}
DRIVER_FEATURES = ("softphone_app", "offsite_devices", "integrations", "add_extensions")


def licence_extra(lan: str) -> dict[str, str]:
    return {"integration_accounts": '["crm"]', "lan_subnets": lan}


def digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


@dataclass
class Site(Agent):
    simulator: Simulator
    root: Path


async def make_site(office: Path, lan: str, tmp_path: Path, *, files: bool = True) -> Site:
    simulator = Simulator(load_office(office))
    await simulator.start()
    server = LicenceServer().start()
    root = simulator.ctx.config.root
    backup = f'[backup]\nsource = "local"\npath = "{root}"\n' if files else ""
    extra = server.config(**licence_extra(lan)) + backup
    cfg = load_config(write_config(tmp_path, simulator.port, extra=extra))
    driver = create_driver(cfg)
    assert isinstance(driver, AsteriskDriver)
    if files:
        driver.use_config_files(LocalConfigFiles(root))
    agent = await start_agent(cfg, driver, server)
    return Site(**vars(agent), simulator=simulator, root=root)


async def close_site(site: Site) -> None:
    await site.close()
    await site.simulator.stop()


@pytest.fixture(params=sorted(OFFICES))
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    office, lan = OFFICES[request.param]
    made = await make_site(office, lan, tmp_path)
    yield made
    await close_site(made)


async def next_second() -> None:
    """Asterisk reports its reload time to the second: let the clock tick (deadline 3 s)."""
    start = int(time.time())
    await eventually(lambda: int(time.time()) != start, within=3)


async def reconnected(site: Site) -> None:
    await eventually(lambda: site.driver.ami.connected, within=10)


async def test_full_cycle(site: Site) -> None:
    freepbx = "pjsip.endpoint_custom_post.conf" in digests(site.root)
    # A phone of the office registered from outside the site's networks.
    away = Contact("104", "sip:104@198.18.5.2:5060", "Yealink SIP-T46U 108.86.0.90", "Reachable")
    assert site.simulator.register(away) == "200"
    pristine = digests(site.root)
    rows = await site.rows()
    assert all(rows[f]["actual"] == "on" for f in DRIVER_FEATURES)

    await site.lapse()
    rows = await site.rows()
    for feature in ("offsite_devices", "integrations", "add_extensions"):
        assert rows[feature]["actual"] == "off", (feature, rows[feature])
    app = rows["softphone_app"]
    assert app["actual"].startswith("not switched: seat 101 (Alice Nguyen): its app registers")
    assert [u["target"] for u in app["unswitchable"]] == ["seat 101 (Alice Nguyen)"]
    assert (await site.problems())["softphone_app"] == "problem", "critical, not silent"
    assert rows["remote_portal"]["actual"] == "n/a" and rows["remote_portal"]["enforced"]
    assert not site.simulator.ctx.live.contacts_of("102-app"), "the app stops ringing now"
    assert not any(c.uri == away.uri for c in site.simulator.ctx.live.contacts_of("104"))
    assert site.simulator.refresh("102-app") in ("503", "401")
    assert site.simulator.refresh("104") == "401", "the off-site phone cannot come back"
    assert site.simulator.refresh("100") == "200", "on-site phones keep working"
    lapsed = digests(site.root)
    changed = {n for n in pristine if pristine[n] != lapsed[n]}
    if freepbx:
        assert changed == {"pjsip.endpoint_custom_post.conf", "manager_custom.conf"}
        assert site.simulator.ctx.live.maintenance == {"102-app", "8103"}
    else:
        assert changed == {"pjsip.conf", "manager.conf"}
        assert site.simulator.ctx.live.maintenance == set()
    journal = await site.enforcement.journal()
    assert all(e["prior"] is not None for e in journal)
    cut = [e for e in journal if e["kind"] == "cut"]
    assert {e["state"] for e in cut} == {"done"} and '"user_agent"' in cut[0]["prior"]

    # Nothing is made twice by another licence check, count or poll.
    await site.licence.refresh()
    await site.counting.count_now()
    await site.poller.poll_once()
    assert digests(site.root) == lapsed
    assert len(await site.enforcement.journal()) == len(journal)

    # The PBX's own tooling: generated files rewritten with a new extension, then a reload.
    await next_second()
    added = add_extension(site.root, freepbx)
    await site.driver.ami.action("Reload")
    await site.poller.poll_once()
    rows = await site.rows()
    new = [e for e in rows["add_extensions"]["journal"] if e["target"] == "endpoint 112"]
    assert new and new[0]["state"] == "applied", "switched within one poll"
    assert rows["offsite_devices"]["actual"] == "off" and rows["integrations"]["actual"] == "off"

    # Someone empties the agent's place and reloads: the next poll puts it back, and says so.
    place = "manager_custom.conf" if freepbx else "manager.conf"
    before_wipe = (site.root / place).read_bytes()
    original = site.simulator.office.config_dir / place
    await next_second()
    shutil.copyfile(original, site.root / place)
    await site.driver.ami.action("Reload", Module="manager")
    with capture_logs() as logs:
        await site.poller.poll_once()
    assert (site.root / place).read_bytes() == before_wipe
    assert any(entry["event"] == "enforcement re-applied" for entry in logs)

    # A restart loses maintenance mode: the next poll sets it again.
    await site.simulator.restart()
    await reconnected(site)
    with capture_logs() as logs:
        await site.poller.poll_once()
    if freepbx:
        assert site.simulator.ctx.live.maintenance == {"102-app", "8103", "112"}
        assert any(entry["event"] == "enforcement re-applied" for entry in logs)

    await site.renew()
    rows = await site.rows()
    assert all(rows[f]["actual"] == "on" for f in DRIVER_FEATURES)
    final = digests(site.root)
    expected = {**pristine, **added}
    assert final == expected, "renewal leaves every file as it was (but FreePBX's own edit)"
    assert site.simulator.ctx.live.maintenance == set()
    assert await site.store.get_meta(KNOWN_ENDPOINTS) is None
    assert (await site.problems())["softphone_app"] == "resolved"
    states = {e["state"] for e in await site.enforcement.journal()}
    assert states <= {"undone", "done"}


def add_extension(root: Path, freepbx: bool) -> dict[str, str]:
    """What FreePBX's Apply Config does for a new extension 112: its generated files rewritten
    with the endpoint, AOR and auth (on the hand-written office: an admin adds the sections to
    pjsip.conf, before the agent's blocks). The digests the files must have once the agent's
    blocks are gone."""
    endpoint = (
        "\n[112]\ntype=endpoint\ntransport=transport-udp\ncontext=from-internal\n"
        'callerid="Hank Ito" <112>\nauth=112\naors=112\n'
    )
    aor = "\n[112]\ntype=aor\nmax_contacts=1\n"
    auth = "\n[112]\ntype=auth\nauth_type=userpass\nusername=112\npassword=x112\n"
    if freepbx:
        targets = {"pjsip.endpoint.conf": endpoint, "pjsip.aor.conf": aor, "pjsip.auth.conf": auth}
    else:
        targets = {"pjsip.conf": endpoint + aor + auth}
    expected = {}
    for name, text in targets.items():
        path = root / name
        content = path.read_text()
        at = content.find("\n; pbx-agent:")
        at = len(content) if at < 0 else at
        path.write_text(content[:at] + text + content[at:])
        expected[name] = hashlib.sha256((content[:at] + text).encode()).hexdigest()
    return expected


async def test_nothing_claims_off_when_the_pbx_cannot_be_switched(tmp_path: Path) -> None:
    """The hand-written office's Asterisk has no maintenance mode and the agent has no file
    access: every driver feature says why it is not switched, each is a critical problem."""
    office, lan = OFFICES["plain"]
    site = await make_site(office, lan, tmp_path, files=False)
    try:
        before = digests(site.root)
        await site.lapse()
        rows = await site.rows()
        for feature in ("softphone_app", "offsite_devices", "integrations", "add_extensions"):
            assert rows[feature]["actual"].startswith("not switched: "), rows[feature]
            assert not rows[feature]["enforced"]
        assert "no maintenance mode" in rows["softphone_app"]["actual"]
        assert "[backup]" in rows["integrations"]["actual"]
        problems = await site.problems()
        assert {problems[f] for f in DRIVER_FEATURES} == {"problem"}
        events = [e for e in await site.telemetry.events(0, 1000) if e["check"] == "feature_switch"]
        assert {e["severity"] for e in events} == {"critical"}
        assert all("should be off but is not" in e["summary"] for e in events)
        assert digests(site.root) == before
    finally:
        await close_site(site)
