"""A licence lapse, then renewal, with both archive lapse policies, against two real sshd
servers, the licence server double and the licence service, time moved through the clock
seam: during the lapse nothing is uploaded; `keep` leaves the archive host untouched, `delete`
removes this site's copies there once the lapse is `lapse_delete_days` old; every action is a
`licence` message; after renewal the backups taken during the lapse are uploaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_config
from agent.health.monitor import HealthMonitor
from agent.licence.service import LicenceService
from tests.licence_server import LicenceServer
from tests.offsite_rig import Rig, open_rig
from tests.sshd import SshServer

DELETE_AFTER = 10


class LapseRig:
    def __init__(
        self, rig: Rig, licence: LicenceService, server: LicenceServer, policy: str
    ) -> None:
        self.rig, self.licence, self.server, self.policy = rig, licence, server, policy

    async def day(self) -> dict[str, object]:
        return await self.rig.day()

    async def issue(self, status: str, days: float) -> None:
        now = self.rig.clock.now()
        self.server.issue(status=status, expires_at=now + timedelta(days=days), issued_at=now)
        await self.licence.refresh()


@pytest.fixture(params=["keep", "delete"])
async def lapse(
    request: pytest.FixtureRequest, tmp_path: Path, sshd: SshServer, archive_sshd: SshServer
) -> AsyncIterator[LapseRig]:
    server = LicenceServer().start()
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    extra = f'lapse = "{request.param}"\nlapse_delete_days = {DELETE_AFTER}\n' + server.config()
    try:
        async with open_rig(tmp_path, sshd, archive_sshd, archive_dir, extra=extra) as rig:
            cfg = load_config(tmp_path / "agent.toml")
            health = HealthMonitor(rig.store, cfg, rig.telemetry)
            licence = LicenceService(rig.store, cfg, rig.telemetry, health, clock=rig.clock)
            await licence.open()
            rig.service.offsite_allowed = lambda: licence.evaluation.features["config_archive"]
            rig.before_run.append(licence.refresh)  # the licence check, then the backup
            yield LapseRig(rig, licence, server, request.param)
    finally:
        server.stop()


async def test_lapse_then_renewal(lapse: LapseRig) -> None:
    rig = lapse.rig
    policy = lapse.policy
    await lapse.issue("active", 365)
    for _ in range(6):
        assert (await lapse.day())["offsite"] == "ok"
    before = rig.held()
    assert before == await rig.local_files() and len(before) == 6

    await lapse.issue("lapsed", -1)
    assert lapse.licence.state == "lapsed"
    lapse_began = rig.clock.now()
    taken_in_lapse = []
    for day in range(1, 16):
        row = await lapse.day()
        taken_in_lapse.append(row["file"])
        assert str(row["offsite"]).startswith("off: config_archive is off (licence lapse)")
        # The lapse counts from the first off-site run that sees it (the next backup).
        told = rig.licence_messages[0]["details"]["delete_at"]
        delete_at = datetime.fromisoformat(told) if told else None
        if policy == "delete" and delete_at is not None and rig.clock.now() >= delete_at:
            assert rig.held() == set(), f"day {day} of the lapse: this site's copies deleted"
        else:
            assert rig.held() == before, f"day {day} of the lapse: the archive host untouched"
    actions = [m["action"] for m in rig.licence_messages]
    if policy == "delete":
        assert delete_at == lapse_began + timedelta(days=1 + DELETE_AFTER)
    if policy == "keep":
        assert actions == ["archive_lapse"]
        assert "keeps this site's 6 copies" in rig.licence_messages[0]["summary"]
    else:
        assert actions == ["archive_lapse"] + ["archive_deleted"] * len(before)
        assert "deleted on" in rig.licence_messages[0]["summary"]
        deleted = {m["details"]["name"] for m in rig.licence_messages[1:]}
        assert deleted == before, "one licence message per copy deleted, naming it"
        log = await rig.store.call(
            lambda c: c.execute("SELECT name, detail FROM offsite_log WHERE action = 'deleted'")
            .fetchall()
        )
        assert {n for n, _ in log} == before
        assert all("licence lapse policy" in d for _, d in log)

    await lapse.issue("active", 365)
    rig.licence_messages.clear()
    await lapse.day()
    while not rig.report.complete:
        assert rig.report.error is None and rig.report.uploaded
        await rig.service.sync_offsite()
    assert [m["action"] for m in rig.licence_messages] == ["archive_resumed"]
    held = rig.held()
    assert held == await rig.local_files(), "the archive host converges on what retention keeps"
    kept_from_lapse = set(taken_in_lapse) & held
    assert len(kept_from_lapse) >= 7, "the backups taken during the lapse are uploaded"
    assert await rig.offsite_events() == [], "a lapse is a licence matter, not a failure"
