"""Backups in the daemon: on a cron schedule (APScheduler), caught up once at start-up when
the last good backup is older than the schedule allows, and on demand; one at a time.
Every run is a catalog row; a good one has a file that was fsynced and renamed first."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from agent import __version__
from agent.backup import retention
from agent.backup.archive import sha256_file, write_archive
from agent.backup.offsite import OffsiteArchive
from agent.backup.push import PushPlan, push
from agent.backup.restore import restore
from agent.config.schema import AgentConfig
from agent.errors import BackupError
from agent.listeners import Listener, notify
from agent.state import StateStore
from drivers.backup_source import BackupSource, LocalSource
from drivers.errors import DriverError
from drivers.sftp_source import SftpSettings, SftpSource
from drivers.sftp_target import SftpTarget

log = structlog.get_logger(__name__)

COLUMNS = (
    "id",
    "started_at",
    "finished_at",
    "status",
    "file",
    "size",
    "sha256",
    "files",
    "content_sha256",
    "changed",
    "error",
    "reason",
    "offsite",
)


class BackupService:
    def __init__(self, store: StateStore, cfg: AgentConfig) -> None:
        self._store = store
        self._cfg = cfg
        self._lock = asyncio.Lock()
        backup = cfg.backup
        self.directory = backup.store or cfg.state.dir / "backups"
        self.known_hosts = self.known_hosts_path(cfg)
        self.pbx_version: str | None = None  # set by the daemon from the PBX poller
        # Called with the catalog row after every run, good or failed (health, telemetry).
        self.listeners: list[Listener[dict[str, Any]]] = []
        # The licence's config_archive feature: off-site copies stop while it is off.
        self.offsite_allowed: Callable[[], bool] = lambda: True

    @staticmethod
    def known_hosts_path(cfg: AgentConfig) -> Path:
        ssh = cfg.backup.ssh
        return ssh.known_hosts if ssh and ssh.known_hosts else cfg.state.dir / "known_hosts"

    # -- scheduling ----------------------------------------------------------------------

    async def run(self) -> None:
        """Clean leftovers, catch up once if due, then follow the cron schedule."""
        await asyncio.to_thread(self.clean_temp_files)
        trigger = CronTrigger.from_crontab(self._cfg.backup.schedule)
        if await self._overdue(trigger):
            with contextlib.suppress(BackupError):
                await self.backup_now("catch-up at start")
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self._scheduled, trigger, max_instances=1, coalesce=True, misfire_grace_time=3600
        )
        scheduler.start()
        try:
            await asyncio.Event().wait()
        finally:
            scheduler.shutdown(wait=False)

    async def _scheduled(self) -> None:
        if self._lock.locked():
            log.info("scheduled backup skipped: one is running")
            return
        with contextlib.suppress(BackupError):
            await self.backup_now("schedule")

    async def _overdue(self, trigger: CronTrigger) -> bool:
        """True when a scheduled time passed since the last good backup (or there is none)."""
        done = await self.last_good()
        if done is None:
            return True
        due = trigger.get_next_fire_time(None, done)
        return due is not None and due <= datetime.now(due.tzinfo)

    async def last_good(self) -> datetime | None:
        """When the newest good backup finished, if there is one."""
        last = await self._store.call(_last_good)
        return None if last is None else datetime.fromisoformat(last)

    def clean_temp_files(self) -> None:
        if self.directory.is_dir():
            for leftover in self.directory.glob(".*.partial"):
                leftover.unlink(missing_ok=True)

    # -- one backup ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _source(self) -> Iterator[BackupSource]:
        backup = self._cfg.backup
        if backup.source == "local":
            yield LocalSource(Path(backup.path), backup.excludes)
            return
        with SftpSource(self.ssh_settings()) as source:
            yield source

    def ssh_settings(self) -> SftpSettings:
        if self._cfg.backup.source != "sftp":
            raise BackupError('this needs backup.source = "sftp" and a [backup.ssh] server')
        return pbx_ssh_settings(self._cfg)

    def _write(self, backup_id: str) -> dict[str, Any]:
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        meta = {
            "driver": self._cfg.pbx.driver,
            "pbx_version": self.pbx_version,
            "agent_version": __version__,
            "site_id": self._cfg.site_id,
            "id": backup_id,
        }
        with self._source() as source:
            result = write_archive(
                source,
                self.directory,
                f"{backup_id}.tar.zst.age",
                list(self._cfg.backup.recipients),
                meta,
            )
        return {
            "file": result.path.name,
            "size": result.size,
            "sha256": result.sha256,
            "files": result.files,
            "content_sha256": result.content_sha256,
        }

    async def backup_now(self, reason: str = "on demand") -> dict[str, Any]:
        """One backup; a request made while another runs waits for it (never overlaps)."""
        async with self._lock:
            started = datetime.now(UTC)
            backup_id = started.strftime("%Y%m%dT%H%M%S%fZ")
            row: dict[str, Any] = {
                "id": backup_id,
                "started_at": started.isoformat(),
                "reason": reason,
            }
            try:
                row |= await asyncio.to_thread(self._write, backup_id)
                previous = await self._store.call(_last_content)
                row |= {"status": "ok", "changed": int(previous != row["content_sha256"])}
            except (BackupError, DriverError, OSError) as exc:
                row |= {"status": "failed", "error": str(exc)}
                log.warning("backup failed", id=backup_id, error=str(exc))
            row["finished_at"] = datetime.now(UTC).isoformat()
            await self._store.call(_insert, row)
            if row["status"] == "ok":
                log.info(
                    "backup written",
                    id=backup_id,
                    files=row["files"],
                    size=row["size"],
                    changed=bool(row["changed"]),
                )
                row["offsite"] = await self._copy_offsite(row)
                await self.apply_retention()
            await notify(self.listeners, row, "backup")
            if row["status"] == "ok":
                return row
            raise BackupError(f"backup {backup_id} failed: {row['error']}")

    async def _copy_offsite(self, row: dict[str, Any]) -> str | None:
        """Copy a good backup to the archive host; its outcome goes in the catalog."""
        offsite = self._cfg.backup.offsite
        if offsite is None or not offsite.enabled:
            return None
        if not self.offsite_allowed():
            status = "off: the config_archive feature is off (licence)"
            await self._store.call(_set_offsite, row["id"], status)
            return status
        try:
            await asyncio.to_thread(
                OffsiteArchive(self._offsite_settings()).upload, self.directory / row["file"]
            )
            status = "ok"
        except (BackupError, DriverError, OSError) as exc:
            status = f"failed: {exc}"
            log.warning("off-site copy failed", id=row["id"], error=str(exc))
        await self._store.call(_set_offsite, row["id"], status)
        return status

    def _offsite_settings(self) -> SftpSettings:
        o = self._cfg.backup.offsite
        assert o is not None
        return SftpSettings(
            host=o.host,
            port=o.port,
            username=o.username,
            key_file=o.key_file,
            known_hosts=o.known_hosts or self.known_hosts,
            root=o.remote_dir,
            timeout=o.timeout,
        )

    async def apply_retention(self) -> list[str]:
        b = self._cfg.backup
        policy = retention.Policy(
            b.keep_last, b.keep_daily, b.keep_weekly, b.keep_monthly, b.keep_yearly
        )
        rows = await self.list()
        good = [
            (r["id"], datetime.fromisoformat(r["started_at"])) for r in rows if r["status"] == "ok"
        ]
        kept = retention.keep(good, policy)
        removed = [bid for bid, _ in good if bid not in kept]
        offsite = self._cfg.backup.offsite
        for bid in removed:
            row = next(r for r in rows if r["id"] == bid)
            (self.directory / row["file"]).unlink(missing_ok=True)
            if offsite is not None and offsite.enabled and row["offsite"] == "ok":
                try:  # the same retention applies on the archive host
                    await asyncio.to_thread(
                        OffsiteArchive(self._offsite_settings()).delete, row["file"]
                    )
                except (DriverError, OSError) as exc:
                    log.warning("off-site prune failed", id=bid, error=str(exc))
            await self._store.call(_delete, bid)
        if removed:
            log.info("old backups removed by retention", removed=removed)
        return removed

    # -- catalog, verify, restore ----------------------------------------------------------

    async def list(self) -> list[dict[str, Any]]:
        return await self._store.call(_rows)

    async def _row(self, backup_id: str) -> dict[str, Any]:
        for row in await self.list():
            if row["id"] == backup_id:
                if row["status"] != "ok":
                    raise BackupError(
                        f"backup {backup_id} failed ({row['error']}): nothing to read"
                    )
                return row
        raise BackupError(f"no backup {backup_id!r} in the catalog (see `pbx-agent backup list`)")

    async def verify(self, backup_id: str) -> dict[str, Any]:
        row = await self._row(backup_id)
        path = self.directory / row["file"]
        digest = await asyncio.to_thread(sha256_file, path)
        if digest != row["sha256"]:
            raise BackupError(f"{path}: SHA-256 differs from the catalog: the file changed")
        result = {"id": backup_id, "ciphertext": "ok", "files": "not checked (no identity_file)"}
        if self._cfg.backup.identity_file is not None:
            keys = _identities(self._cfg)
            scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=self.directory))
            try:
                manifest = await asyncio.to_thread(restore, path, keys, scratch / "tree")
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            result["files"] = f"{len(manifest['files'])} files match their SHA-256"
        return result

    async def restore(self, backup_id: str, target: Path) -> dict[str, Any]:
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        manifest = await asyncio.to_thread(restore, self.directory / row["file"], keys, target)
        return {"id": backup_id, "to": str(target), "files": len(manifest["files"])}

    async def restore_to_pbx(self, backup_id: str, apply: bool) -> dict[str, Any]:
        """Compare a backup with the PBX's files over SFTP; with `apply`, write the added and
        changed ones (files only on the PBX are kept). The plan is returned either way."""
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        settings = self.ssh_settings()
        scratch = Path(tempfile.mkdtemp(prefix=".push-", dir=self.directory))

        def compare_and_push() -> PushPlan:
            restore(self.directory / row["file"], keys, scratch / "tree")
            with SftpTarget(settings) as target:
                return push(target, scratch / "tree", apply)

        async with self._lock:
            try:
                result = await asyncio.to_thread(compare_and_push)
            except DriverError as exc:
                raise BackupError(f"restore to the PBX failed: {exc}") from exc
            finally:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        log.info(
            "backup pushed to the PBX" if apply else "backup compared with the PBX",
            id=backup_id,
            added=len(result.added),
            changed=len(result.changed),
        )
        return {"id": backup_id, "applied": apply, **result.as_dict()}


def pbx_ssh_settings(cfg: AgentConfig) -> SftpSettings:
    """How the agent reaches the PBX's files over SSH ([backup.ssh], pinned host keys)."""
    ssh = cfg.backup.ssh
    if ssh is None:
        raise BackupError("no [backup.ssh] server configured")
    return SftpSettings(
        host=ssh.host,
        port=ssh.port,
        username=ssh.username,
        key_file=ssh.key_file,
        known_hosts=BackupService.known_hosts_path(cfg),
        root=cfg.backup.path,
        excludes=cfg.backup.excludes,
        timeout=ssh.timeout,
    )


def _identities(cfg: AgentConfig) -> list[str]:
    identity = cfg.backup.identity_file
    if identity is None:
        raise BackupError("restore needs backup.identity_file (the age private key)")
    return [k for k in identity.read_text().split() if k.startswith("AGE-SECRET-KEY-")]


def _insert(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    with conn:
        conn.execute(
            f"INSERT INTO backups ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [row.get(c) for c in COLUMNS],
        )


def _set_offsite(conn: sqlite3.Connection, backup_id: str, status: str) -> None:
    with conn:
        conn.execute("UPDATE backups SET offsite = ? WHERE id = ?", (status, backup_id))


def _delete(conn: sqlite3.Connection, backup_id: str) -> None:
    with conn:
        conn.execute("DELETE FROM backups WHERE id = ?", (backup_id,))


def _rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM backups ORDER BY started_at")
    return [dict(zip(COLUMNS, r, strict=True)) for r in cursor.fetchall()]


def _last_good(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT finished_at FROM backups WHERE status = 'ok' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def _last_content(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT content_sha256 FROM backups WHERE status = 'ok' ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])
