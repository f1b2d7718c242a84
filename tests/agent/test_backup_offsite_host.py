"""The archive host's own faults, against two real sshd servers (OpenSSH's SFTP server flags
make one refuse removals or writes): a refused removal keeps its row and is retried; files the
catalog did not upload (orphans) and interrupted uploads are listed and handled by retention;
a copy changed on the archive host is replaced; uploads are fsynced before the rename; every
failure names its cause."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import paramiko
import pytest

from agent.backup.offsite_plan import ID_FORMAT
from drivers.sftp_source import known_hosts_name
from tests.offsite_rig import START, Rig, open_rig
from tests.sshd import SshServer

SMALL = "keep_last = 1\nkeep_daily = 2\nkeep_weekly = 0\nkeep_monthly = 2\nkeep_yearly = 0\n"


@pytest.fixture
async def rig(tmp_path: Path, sshd: SshServer, archive_sshd: SshServer) -> AsyncIterator[Rig]:
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    async with open_rig(tmp_path, sshd, archive_sshd, archive_dir, backup=SMALL) as rig:
        yield rig


def archive_name(days: float) -> str:
    return (START + timedelta(days=days)).strftime(ID_FORMAT) + ".tar.zst.age"


async def log_rows(rig: Rig) -> list[tuple[str, str, str]]:
    return await rig.store.call(
        lambda c: c.execute("SELECT action, name, detail FROM offsite_log ORDER BY seq").fetchall()
    )


async def test_a_refused_removal_keeps_its_row_and_is_retried(rig: Rig) -> None:
    for _ in range(2):
        await rig.day()
    rig.archive.start("-P remove")  # this archive host lets the account write, never delete
    row = await rig.day()
    assert row["offsite"] == "ok", "uploads still work"
    doomed = archive_name(1)
    assert doomed in rig.held(), "retention wanted it gone; the host refused"
    assert rig.report.pending == [doomed]
    [listed] = [r for r in await rig.service.list() if r["status"] == "archive-only"]
    assert listed["file"] == doomed
    assert listed["offsite"].startswith("deleting: retention")
    assert "last try failed: permission denied on the archive host" in listed["offsite"]
    [problem] = await rig.offsite_events()
    assert problem["kind"] == "problem" and "permission denied" in problem["summary"]

    await rig.day()  # retried, refused again: still one problem, the row still there
    assert doomed in rig.held() and len(await rig.offsite_events()) == 1
    rig.archive.start()
    await rig.day()
    assert rig.held() == await rig.local_files()
    assert not [r for r in await rig.service.list() if r["status"] == "archive-only"]
    assert [e["kind"] for e in await rig.offsite_events()] == ["problem", "resolved"]
    removed = [(n, d) for a, n, d in await log_rows(rig) if a == "deleted"]
    assert (doomed, "retention: not among the backups kept") in removed


async def test_orphans_and_leftovers_are_listed_and_handled_by_retention(rig: Rig) -> None:
    for _ in range(3):
        await rig.day()
    ours = rig.held()
    last_month = archive_name(-20)  # retention keeps the newest of the previous month
    same_day = archive_name(3 - 1 / 24)  # an hour before today's backup: not kept
    leftover = f".{archive_name(2.5)}.partial"
    for name in (last_month, same_day, leftover):
        (rig.archive_dir / name).write_bytes(b"not ours")
    report = await rig.service.sync_offsite()
    assert report.orphans == [last_month]
    assert rig.held() == ours | {last_month}, "the orphan retention keeps stays, the other goes"
    assert not rig.stray(), "an interrupted upload's temp file is removed"
    [orphan] = [r for r in await rig.service.list() if r["status"] == "archive-only"]
    assert orphan["file"] == last_month and orphan["offsite"].startswith("orphan")
    removed = {n: d for a, n, d in await log_rows(rig) if a == "deleted"}
    assert removed[same_day] == "retention: not among the backups kept"
    assert removed[leftover] == "leftover of an interrupted upload"
    assert report.complete, "orphans never count as copies, nor stand in for one"


async def test_a_copy_changed_on_the_archive_host_is_replaced(rig: Rig) -> None:
    row = await rig.day()
    local = rig.service.directory / row["file"]
    (rig.archive_dir / row["file"]).write_bytes(b"truncated")
    report = await rig.service.sync_offsite()
    assert report.uploaded == [row["id"]]
    assert (rig.archive_dir / row["file"]).read_bytes() == local.read_bytes()
    assert ("damaged", row["file"]) in [(a, n) for a, n, _ in await log_rows(rig)]


async def test_uploads_are_fsynced_before_the_rename(rig: Rig) -> None:
    rig.archive.start(log_sftp=True)  # OpenSSH's sftp-server logging every request
    row = await rig.day()
    assert row["offsite"] == "ok"
    partial = f".{row['file']}.partial"
    lines = rig.archive.sftp_log.read_text().splitlines()
    fsync = next(i for i, line in enumerate(lines) if line.startswith("fsync") and partial in line)
    rename = next(i for i, line in enumerate(lines) if line.startswith("posix-rename"))
    assert fsync < rename, "fsync@openssh.com on the temp file, then the rename"
    [(detail,)] = await rig.store.call(
        lambda c: c.execute("SELECT detail FROM offsite_log WHERE action = 'uploaded'").fetchall()
    )
    assert "SHA-256 verified, fsynced" in detail


async def test_failures_name_their_cause(rig: Rig, tmp_path: Path) -> None:
    rig.archive.start("-R")  # a read-only SFTP account
    row = await rig.day()
    assert row["offsite"].startswith("failed: permission denied on the archive host: cannot write")
    assert "size mismatch" not in row["offsite"] and "Failure" not in row["offsite"]
    rig.archive.start()

    rig.archive_dir.rename(tmp_path / "elsewhere")
    row = await rig.day()
    assert row["offsite"] == (
        f"failed: the folder {rig.archive_dir} does not exist on the archive host"
    )
    (tmp_path / "elsewhere").rename(rig.archive_dir)

    known = tmp_path / "state" / "known_hosts"
    keys = paramiko.HostKeys(str(known))
    del keys[known_hosts_name("127.0.0.1", rig.archive.port)]  # the PBX's key stays pinned
    keys.save(str(known))
    row = await rig.day()
    assert row["status"] == "ok" and "is not pinned" in row["offsite"]
    assert "`pbx-agent backup pin-host-key --offsite`" in row["offsite"]
    assert "the archive host's administrator" in row["offsite"]
    problems = [e["summary"] for e in await rig.offsite_events() if e["kind"] == "problem"]
    assert "permission denied" in problems[0]
