"""The backup service: catch-up when overdue, an unreachable archive host does not fail the
backup (the copy's failure is recorded), and retention prunes files with their rows."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from apscheduler.triggers.cron import CronTrigger

from agent.backup import catalog
from agent.backup import service as service_module
from agent.backup.service import BackupService
from agent.config import load_config
from agent.state import StateStore
from agent.state.migrations import MIGRATIONS
from tests.integration.daemon_harness import write_config


def config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    recipient = pyrage.x25519.Identity.generate().to_public()
    backup = f"""
[backup]
enabled = true
source = "local"
path = "{tmp_path / "etc"}"
recipients = ["{recipient}"]
keep_last = 2
keep_daily = 0
keep_weekly = 0
keep_monthly = 0
keep_yearly = 0
{extra}"""
    path = write_config(tmp_path, 5038, extra=backup)
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def open_service(path: Path) -> tuple[BackupService, StateStore]:
    cfg = load_config(path)
    store = await StateStore.open(cfg.state.dir / "state.db")
    return BackupService(store, cfg), store


async def test_overdue_follows_the_schedule(tmp_path: Path) -> None:
    service, store = await open_service(config(tmp_path))
    try:
        trigger = CronTrigger.from_crontab("30 2 * * *", timezone=UTC)
        assert await service._overdue(trigger), "no backup yet: overdue"
        await service.backup_now()
        assert not await service._overdue(trigger), "a fresh backup: not overdue"
        rows = await service.list()
        old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        await store.call(
            lambda c: c.execute("UPDATE backups SET finished_at = ?", (old,)) and c.commit()
        )
        assert await service._overdue(trigger), "a scheduled time passed since: overdue once"
        assert len(rows) == 1
    finally:
        await store.close()


async def test_unreachable_archive_host_is_recorded_not_fatal(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("not used\n")
    extra = f"""[backup.offsite]
host = "127.0.0.1"
port = {closed_port()}
username = "nobody"
key_file = "{key}"
remote_dir = "/srv/archive"
timeout = 2
"""
    service, store = await open_service(config(tmp_path, extra))
    try:
        row = await service.backup_now()
        assert row["status"] == "ok" and row["offsite"].startswith("failed: ")
        assert (await service.list())[0]["offsite"] == row["offsite"]
    finally:
        await store.close()


async def test_retention_removes_files_and_rows(tmp_path: Path) -> None:
    service, store = await open_service(config(tmp_path))
    try:
        for _ in range(4):
            await service.backup_now()
        rows = await service.list()
        assert len(rows) == 2, "keep_last = 2"
        files = sorted(p.name for p in service.directory.iterdir())
        assert files == sorted(r["file"] for r in rows)
    finally:
        await store.close()


async def test_a_failed_backup_is_a_catalog_row_with_the_reason(tmp_path: Path) -> None:
    service, store = await open_service(config(tmp_path))
    try:
        (tmp_path / "etc" / "pjsip.conf").unlink()
        (tmp_path / "etc").rmdir()
        with pytest.raises(service_module.BackupError, match="not a directory"):
            await service.backup_now()
        [row] = await service.list()
        assert row["status"] == "failed" and "not a directory" in row["error"]
        assert row["file"] is None
    finally:
        await store.close()


async def test_a_mode_only_change_is_a_change(tmp_path: Path) -> None:
    service, store = await open_service(config(tmp_path))
    try:
        assert (await service.backup_now())["changed"] == 1
        assert (await service.backup_now())["changed"] == 0
        (tmp_path / "etc" / "pjsip.conf").chmod(0o600)  # same bytes, new mode
        assert (await service.backup_now())["changed"] == 1, "the manifest records the mode"
        assert (await service.backup_now())["changed"] == 0
    finally:
        await store.close()


async def test_copies_recorded_ok_before_the_upgrade_are_adopted(tmp_path: Path) -> None:
    """A catalog from before the off-site table: its "ok" copies become verified copies."""
    db = tmp_path / "state" / "state.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    for script in MIGRATIONS[:5]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 5")
    row = ("20270301T023000000000Z", "2027-03-01T02:30:00+00:00", "x", "ok", "a.age", 5, "ab")
    conn.execute(
        "INSERT INTO backups (id, started_at, finished_at, status, file, size, sha256, reason, "
        "offsite) VALUES (?, ?, ?, ?, ?, ?, ?, 'schedule', 'ok')",
        row,
    )
    conn.commit()
    conn.close()
    store = await StateStore.open(db)
    try:
        [adopted] = await store.call(catalog.copies)
        assert (adopted.name, adopted.size, adopted.sha256, adopted.state) == (
            "a.age",
            5,
            "ab",
            "present",
        )
    finally:
        await store.close()


async def test_open_lists_orphans_and_missing_files_and_retention_removes_them(
    tmp_path: Path,
) -> None:
    """Issue 14, defect 10: a file renamed into the store but never catalogued (a kill or a
    read-only disk after the rename) stayed forever."""
    service, store = await open_service(config(tmp_path))
    try:
        kept = await service.backup_now()
        lost = await service.backup_now()
        orphan = service.directory / "20270101T000000000000Z.tar.zst.age"
        orphan.write_bytes(b"renamed, never catalogued")
        (service.directory / lost["file"]).unlink()
        await service.open()
        statuses = {r["id"]: r["status"] for r in await service.list()}
        assert statuses == {
            kept["id"]: "ok",
            lost["id"]: "missing",
            "20270101T000000000000Z": "orphan",
        }
        with pytest.raises(service_module.BackupError, match="orphan"):
            await service.verify("20270101T000000000000Z")
        newest = await service.backup_now()
        assert {r["id"] for r in await service.list()} == {kept["id"], newest["id"]}
        assert sorted(p.name for p in service.directory.iterdir()) == sorted(
            [kept["file"], newest["file"]]
        )
    finally:
        await store.close()


async def test_open_finishes_a_removal_a_crash_interrupted(tmp_path: Path) -> None:
    service, store = await open_service(config(tmp_path))
    try:
        first = await service.backup_now()
        await service.backup_now()
        await store.call(catalog.set_status, first["id"], "deleting", None)
        await service.open()
        assert first["id"] not in {r["id"] for r in await service.list()}
        assert not (service.directory / first["file"]).exists()
    finally:
        await store.close()


async def test_a_backup_a_restore_would_refuse_fails_and_keeps_the_older_ones(
    tmp_path: Path,
) -> None:
    """Retention never removes good backups because of a newer one that could not be read
    back: one beyond `[backup.limits]` fails when it is taken."""
    limits = "\n[backup.limits]\nfile_bytes = 1048576\ntotal_bytes = 2097152\n"
    service, store = await open_service(config(tmp_path, limits))
    try:
        good = [await service.backup_now(), await service.backup_now()]
        (tmp_path / "etc" / "huge.db").write_bytes(bytes(2 * 1024 * 1024))
        with pytest.raises(service_module.BackupError, match=r"backup\.limits\.file_bytes"):
            await service.backup_now()
        rows = await service.list()
        assert [r["id"] for r in rows if r["status"] == "ok"] == [g["id"] for g in good]
        assert "exclude" in rows[-1]["error"]
        assert sorted(p.name for p in service.directory.iterdir()) == sorted(
            g["file"] for g in good
        )
    finally:
        await store.close()


async def test_open_removes_plaintext_a_crash_left(tmp_path: Path) -> None:
    """Issue 14, defect 2: decrypted files of a killed verify or restore stayed for good."""
    service, store = await open_service(config(tmp_path))
    target = tmp_path / "restore-here" / "asterisk"
    target.parent.mkdir()
    try:
        with service.staging.beside(target) as beside:
            (beside / "manager.conf").write_text("[admin]\nsecret = s3cret\n")
            with service.staging.scratch("push") as scratch:
                (scratch / "tree").mkdir()
                (scratch / "tree" / "sip.conf").write_text("secret = s3cret\n")
                # A crash here: nothing below runs; simulate by copying what is on disk.
                leftovers = tmp_path / "left"
                shutil.copytree(service.staging.root, leftovers / "staging")
                shutil.copytree(beside, leftovers / beside.name)
        shutil.copytree(leftovers / "staging", service.staging.root, dirs_exist_ok=True)
        shutil.copytree(leftovers / beside.name, beside)
        assert stat.S_IMODE(service.staging.root.stat().st_mode) == 0o700
        await service.open()
        assert not beside.exists()
        assert list(service.staging.root.iterdir()) == []
        assert list(target.parent.iterdir()) == []
    finally:
        await store.close()


async def test_open_removes_what_earlier_versions_left_in_the_store(tmp_path: Path) -> None:
    """Before issue 14 a killed verify or push left `.verify-*` and `.push-*` folders (and a
    restore `.restore-*` files) with decrypted configuration in the store."""
    service, store = await open_service(config(tmp_path))
    try:
        kept = await service.backup_now()
        for name in (".verify-abc/tree", ".push-def/tree"):
            (service.directory / name).mkdir(parents=True)
            (service.directory / name / "manager.conf").write_text("secret = s3cret\n")
        (service.directory / ".restore-x.tar.zst").write_bytes(b"plaintext")
        await service.open()
        assert [p.name for p in service.directory.iterdir()] == [kept["file"]]
    finally:
        await store.close()
