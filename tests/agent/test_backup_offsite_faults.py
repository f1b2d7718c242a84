"""The archive host full, read-only and down across many scheduled runs with the default
retention (7/7/4/12/3), against two real sshd servers (the PBX backed up over SFTP, the
archive host on a real tmpfs) with time moved through the agent's clock seam: the archive
host never loses its newest verified copy (nothing is removed there while uploads fail),
missed copies arrive once it recovers (newest first, a bounded number per run), and the
`offsite_failed` events tell the story: one problem naming the cause, resolved only when the
archive host holds every backup retention keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.archive_disk import ArchiveDisk
from tests.offsite_rig import Rig, open_rig
from tests.sshd import SshServer


@pytest.fixture
async def rig(tmp_path: Path, sshd: SshServer, archive_sshd: SshServer) -> AsyncIterator[Rig]:
    disk = ArchiveDisk(tmp_path / "archive-disk").mount()
    try:
        async with open_rig(tmp_path, sshd, archive_sshd, disk.path) as rig:
            rig.disk = disk
            yield rig
    finally:
        disk.unmount()


async def healthy_days(rig: Rig, days: int) -> None:
    for _ in range(days):
        row = await rig.day()
        assert row["offsite"] == "ok", row["offsite"]
        assert rig.held() == await rig.local_files(), "the archive host holds what retention keeps"
        assert not rig.stray()


async def failing_days(rig: Rig, days: int, cause: str) -> None:
    """Every run fails off-site for `cause`; the archive host keeps exactly what it had."""
    before = rig.held()
    for _ in range(days):
        row = await rig.day()
        assert row["status"] == "ok", "the local backup never depends on the archive host"
        assert row["offsite"].startswith(f"failed: {cause}"), row["offsite"]
        assert rig.held() == before, "nothing is removed there while uploads fail"
        assert rig.report.missing and rig.report.missing[0] == row["id"]
    problems = [e for e in await rig.offsite_events() if e["kind"] == "problem"]
    assert cause in problems[-1]["summary"], problems[-1]["summary"]


async def recover(rig: Rig) -> int:
    """The day after the archive host recovered, then the retries: missed copies arrive
    newest first, at most uploads_per_run per run; `offsite_failed` stays a problem until the
    archive host holds everything retention keeps. Returns the number of runs it took."""
    events_before = len(await rig.offsite_events())
    await rig.day()
    runs = 1
    while True:
        report = rig.report
        assert report.error is None, report.error
        assert len(report.uploaded) <= 5
        assert report.uploaded == sorted(report.uploaded, reverse=True), "newest first"
        events = await rig.offsite_events()
        if report.complete:
            break
        assert events[-1]["kind"] == "problem", "no resolution while copies are missing"
        assert len(events) == events_before, "a catch-up in progress is not a new event"
        await rig.service.sync_offsite()  # the retry (every retry_interval in the daemon)
        runs += 1
    assert [e["kind"] for e in events[events_before:]] == ["resolved"]
    assert rig.held() == await rig.local_files(), "complete: the same set as the local store"
    assert not rig.stray()
    return runs


async def test_archive_host_full_read_only_and_down(rig: Rig) -> None:
    disk = rig.disk
    assert disk is not None
    await healthy_days(rig, 9)
    assert await rig.offsite_events() == []
    newest = max(rig.held())

    disk.fill()  # the archive host's disk is full (other sites' data)
    await failing_days(rig, 10, "the archive host's disk is full")
    assert newest in rig.held(), "the newest verified copy survives ten days of failures"
    listed = {r["id"]: r["offsite"] for r in await rig.service.list()}
    assert sum(1 for s in listed.values() if s.startswith("failed: ")) >= 7
    disk.free()
    assert await recover(rig) >= 2, "more missed copies than one run uploads"

    await healthy_days(rig, 2)
    newest = max(rig.held())
    disk.read_only(True)
    await failing_days(rig, 8, "the archive host's file system holding")
    assert "is read-only" in (await rig.offsite_events())[-1]["summary"]
    assert newest in rig.held()
    disk.read_only(False)
    await recover(rig)

    await healthy_days(rig, 2)
    newest = max(rig.held())
    rig.archive.stop()
    await failing_days(rig, 8, f"the archive host 127.0.0.1:{rig.archive.port} is down")
    assert "connection refused" in (await rig.offsite_events())[-1]["summary"]
    assert newest in rig.held()
    rig.archive.start()
    await recover(rig)

    kinds = [(e["kind"], e["summary"].split(":")[0]) for e in await rig.offsite_events()]
    assert [k for k, _ in kinds] == ["problem", "resolved"] * 3, kinds
    log = await rig.store.call(lambda c: c.execute("SELECT action FROM offsite_log").fetchall())
    actions = [a for (a,) in log]
    assert actions.count("deleted") > 0, "retention ran on the archive host once healthy"
    assert "vanished" not in actions and "damaged" not in actions
