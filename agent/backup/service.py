"""Backups in the daemon: on a cron schedule (APScheduler), caught up once at start-up when
the last good backup is older than the schedule allows, and on demand; one at a time.
Every run is a catalog row; a good one has a file that was fsynced and renamed first. After
each run (and at start-up, and every `retry_interval` while copies are missing) the archive
host is synced (`offsite_sync`). Time comes from the injected `Clock`."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from agent import __version__
from agent.backup import catalog, retention
from agent.backup.archive import sha256_file, write_archive
from agent.backup.offsite_sync import OffsiteReport, OffsiteSync
from agent.backup.push import PushPlan, push
from agent.backup.restore import restore
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config.schema import AgentConfig, BackupSshConfig
from agent.errors import BackupError
from agent.listeners import Listener, notify
from agent.progress import Progress
from agent.state import StateStore
from drivers.backup_source import BackupSource, LocalSource
from drivers.errors import DriverError
from drivers.sftp_source import SftpSettings, SftpSource
from drivers.sftp_target import SftpTarget

log = structlog.get_logger(__name__)

COLUMNS = catalog.COLUMNS


class BackupService:
    def __init__(self, store: StateStore, cfg: AgentConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self._store = store
        self._cfg = cfg
        self._clock = clock
        self._lock = asyncio.Lock()  # one backup or off-site sync at a time
        self._backups_wanted = 0  # backups running or waiting for the lock
        self._last_read: int | None = None  # bytes the last good backup read (progress ETA)
        backup = cfg.backup
        self.directory = backup.store or cfg.state.dir / "backups"
        self.known_hosts = self.known_hosts_path(cfg)
        self.pbx_version: str | None = None  # set by the daemon from the PBX poller
        # Called with the catalog row after every run, good or failed (health, telemetry).
        self.listeners: list[Listener[dict[str, Any]]] = []
        # The licence's config_archive feature: off-site copies stop while it is off.
        self.offsite_allowed: Callable[[], bool] = lambda: True
        self._offsite = OffsiteSync(
            store, cfg, lambda: archive_settings(cfg), self.directory, clock
        )
        self._offsite.allowed = lambda: self.offsite_allowed()
        # Called with the report of every off-site sync (health).
        self.offsite_listeners: list[Listener[OffsiteReport]] = []
        # Called with `licence` message bodies for actions under the archive's lapse policy.
        self.licence_listeners = self._offsite.licence_listeners
        self.last_offsite: OffsiteReport | None = None

    @staticmethod
    def known_hosts_path(cfg: AgentConfig) -> Path:
        ssh = cfg.backup.ssh
        return ssh.known_hosts if ssh and ssh.known_hosts else cfg.state.dir / "known_hosts"

    # -- scheduling ----------------------------------------------------------------------

    async def run(self) -> None:
        """Clean leftovers, catch up once if due (or sync the archive host), then follow the
        cron schedule, syncing again every `retry_interval` while copies are missing."""
        await asyncio.to_thread(self.clean_temp_files)
        trigger = CronTrigger.from_crontab(self._cfg.backup.schedule)
        if await self._overdue(trigger):
            with contextlib.suppress(BackupError):
                await self.backup_now("catch-up at start")
        else:
            await self._sync_guarded()
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self.scheduled_run, trigger, max_instances=1, coalesce=True, misfire_grace_time=3600
        )
        scheduler.start()
        try:
            await self._retry_offsite()
        finally:
            scheduler.shutdown(wait=False)

    async def scheduled_run(self) -> None:
        """What the schedule runs: a backup (and its off-site sync), unless one is running
        or waiting (an off-site retry in progress only makes it wait)."""
        if self._backups_wanted:
            log.info("scheduled backup skipped: one is running")
            return
        with contextlib.suppress(BackupError):
            await self.backup_now("schedule")

    async def _retry_offsite(self) -> None:
        offsite = self._cfg.backup.offsite
        if offsite is None or not offsite.enabled:
            await asyncio.Event().wait()  # nothing to retry: the schedule does the rest
            return
        while True:
            await asyncio.sleep(offsite.retry_interval)
            last = self.last_offsite
            if last is not None and (last.error or last.missing or last.pending):
                await self._sync_guarded()

    async def _sync_guarded(self) -> None:
        """A sync outside a backup run: whatever goes wrong is logged, and the schedule (this
        task) carries on."""
        try:
            await self.sync_offsite()
        except Exception:
            log.exception("off-site sync failed")

    async def _overdue(self, trigger: CronTrigger) -> bool:
        """True when a scheduled time passed since the last good backup (or there is none)."""
        done = await self.last_good()
        if done is None:
            return True
        due = trigger.get_next_fire_time(None, done)
        return due is not None and due <= self._clock.now()

    async def last_good(self) -> datetime | None:
        """When the newest good backup finished, if there is one."""
        last = await self._store.call(catalog.last_good)
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

    def _write(self, backup_id: str, progress: Progress) -> dict[str, Any]:
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
                progress.advance,
            )
        return {
            "file": result.path.name,
            "size": result.size,
            "sha256": result.sha256,
            "files": result.files,
            "content_sha256": result.content_sha256,
        }

    async def backup_now(
        self, reason: str = "on demand", progress: Progress | None = None
    ) -> dict[str, Any]:
        """One backup; a request made while another runs waits for it (never overlaps)."""
        self._backups_wanted += 1
        try:
            return await self._backup(reason, progress or Progress())
        finally:
            self._backups_wanted -= 1

    async def _backup(self, reason: str, progress: Progress) -> dict[str, Any]:
        progress.phase("waiting for another backup")
        async with self._lock:
            started = self._clock.now()
            backup_id = started.strftime("%Y%m%dT%H%M%S%fZ")
            row: dict[str, Any] = {
                "id": backup_id,
                "started_at": started.isoformat(),
                "reason": reason,
            }
            rows = await self._store.call(catalog.rows)
            last = next((r["files"] for r in reversed(rows) if r["status"] == "ok"), None)
            progress.phase(
                "reading the PBX's files", files=last, nbytes=self._last_read, estimated=True
            )
            try:
                row |= await asyncio.to_thread(self._write, backup_id, progress)
                self._last_read = progress.snapshot()["bytes"]
                previous = await self._store.call(catalog.last_content)
                row |= {"status": "ok", "changed": int(previous != row["content_sha256"])}
            except (BackupError, DriverError, OSError) as exc:
                row |= {"status": "failed", "error": str(exc)}
                log.warning("backup failed", id=backup_id, error=str(exc))
            row["finished_at"] = self._clock.now().isoformat()
            await self._store.call(catalog.insert, row)
            if row["status"] == "ok":
                log.info(
                    "backup written",
                    id=backup_id,
                    files=row["files"],
                    size=row["size"],
                    changed=bool(row["changed"]),
                )
                await self.apply_retention()
                if self._cfg.backup.offsite is not None:
                    progress.phase("copying off-site")
                report = await self._sync_offsite()
                row["offsite"] = report.statuses.get(backup_id)
            await notify(self.listeners, row, "backup")
            if row["status"] == "ok":
                return row
            raise BackupError(f"backup {backup_id} failed: {row['error']}")

    async def sync_offsite(self) -> OffsiteReport:
        """Bring the archive host up to date now (uploads, retention there, lapse policy)."""
        async with self._lock:
            return await self._sync_offsite()

    async def _sync_offsite(self) -> OffsiteReport:
        report = await self._offsite.run(await self._store.call(catalog.rows))
        if report.mode != "disabled":
            self.last_offsite = report
            await notify(self.offsite_listeners, report, "off-site")
        return report

    async def apply_retention(self) -> list[str]:
        """Local retention: files and catalog rows of the backups the policy does not keep.
        (The archive host's copies are pruned by the off-site sync, from what it holds.)"""
        policy = retention.Policy.of(self._cfg.backup)
        rows = await self._store.call(catalog.rows)
        good = {r["id"]: r for r in rows if r["status"] == "ok"}
        kept = retention.keep(
            [(bid, datetime.fromisoformat(r["started_at"])) for bid, r in good.items()], policy
        )
        removed = [bid for bid in good if bid not in kept]
        for bid in removed:
            (self.directory / good[bid]["file"]).unlink(missing_ok=True)
            await self._store.call(catalog.delete, bid)
        if removed:
            log.info("old backups removed by retention", removed=removed)
        return removed

    # -- catalog, verify, restore ----------------------------------------------------------

    async def list(self) -> list[dict[str, Any]]:
        """The local catalog, oldest first, then the files the archive host holds of backups
        no longer kept here (`status` "archive-only": orphans, removals not yet confirmed)."""
        rows = await self._store.call(catalog.rows)
        if self._cfg.backup.offsite is None:
            return rows
        local = {r["id"] for r in rows}
        remote = [
            {
                **dict.fromkeys(COLUMNS),
                "id": c.backup_id,
                "started_at": c.taken_at,
                "status": "archive-only",
                "file": c.name,
                "size": c.size,
                "sha256": c.sha256,
                "offsite": _copy_status(c),
            }
            for c in await self._store.call(catalog.copies)
            if c.backup_id not in local
        ]
        return rows + remote

    async def _row(self, backup_id: str) -> dict[str, Any]:
        for row in await self._store.call(catalog.rows):
            if row["id"] == backup_id:
                if row["status"] != "ok":
                    raise BackupError(
                        f"backup {backup_id} failed ({row['error']}): nothing to read"
                    )
                return row
        raise BackupError(f"no backup {backup_id!r} in the catalog (see `pbx-agent backup list`)")

    async def verify(self, backup_id: str, progress: Progress | None = None) -> dict[str, Any]:
        progress = progress or Progress()
        row = await self._row(backup_id)
        path = self.directory / row["file"]
        progress.phase("checking the SHA-256", nbytes=row["size"])
        digest = await asyncio.to_thread(sha256_file, path, progress.advance)
        if digest != row["sha256"]:
            raise BackupError(f"{path}: SHA-256 differs from the catalog: the file changed")
        result = {"id": backup_id, "ciphertext": "ok", "files": "not checked (no identity_file)"}
        if self._cfg.backup.identity_file is not None:
            keys = _identities(self._cfg)
            scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=self.directory))
            progress.phase("checking every file", **_totals(row))
            try:
                manifest = await asyncio.to_thread(
                    restore, path, keys, scratch / "tree", progress.advance
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            result["files"] = f"{len(manifest['files'])} files match their SHA-256"
        return result

    async def restore(
        self, backup_id: str, target: Path, progress: Progress | None = None
    ) -> dict[str, Any]:
        progress = progress or Progress()
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        progress.phase("restoring", **_totals(row))
        manifest = await asyncio.to_thread(
            restore, self.directory / row["file"], keys, target, progress.advance
        )
        return {"id": backup_id, "to": str(target), "files": len(manifest["files"])}

    async def restore_to_pbx(
        self, backup_id: str, apply: bool, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Compare a backup with the PBX's files over SFTP; with `apply`, write the added and
        changed ones (files only on the PBX are kept). The plan is returned either way."""
        progress = progress or Progress()
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        settings = self.ssh_settings()
        scratch = Path(tempfile.mkdtemp(prefix=".push-", dir=self.directory))

        def compare_and_push() -> PushPlan:
            progress.phase("decrypting", **_totals(row))
            restore(self.directory / row["file"], keys, scratch / "tree", progress.advance)
            what = "writing to the PBX" if apply else "comparing with the PBX"
            progress.phase(what, files=row["files"])
            with SftpTarget(settings) as target:
                return push(target, scratch / "tree", apply, progress.advance)

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


def archive_settings(cfg: AgentConfig) -> SftpSettings:
    """How the agent reaches the archive host ([backup.offsite]); its host key is pinned with
    `pbx-agent backup pin-host-key --offsite`."""
    offsite = cfg.backup.offsite
    if offsite is None:
        raise BackupError("no [backup.offsite] archive host configured")
    return _sftp_settings(
        offsite,
        offsite.known_hosts or BackupService.known_hosts_path(cfg),
        offsite.remote_dir,
        role="the archive host",
        pin_command="pbx-agent backup pin-host-key --offsite",
    )


def pbx_ssh_settings(cfg: AgentConfig) -> SftpSettings:
    """How the agent reaches the PBX's files over SSH ([backup.ssh], pinned host keys)."""
    ssh = cfg.backup.ssh
    if ssh is None:
        raise BackupError("no [backup.ssh] server configured")
    known_hosts = BackupService.known_hosts_path(cfg)
    return _sftp_settings(ssh, known_hosts, cfg.backup.path, excludes=cfg.backup.excludes)


def _sftp_settings(
    ssh: BackupSshConfig, known_hosts: Path, root: str, **more: Any
) -> SftpSettings:
    return SftpSettings(
        host=ssh.host,
        port=ssh.port,
        username=ssh.username,
        key_file=ssh.key_file,
        known_hosts=known_hosts,
        root=root,
        timeout=ssh.timeout,
        **more,
    )


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    """A backup's totals for progress: its files, and the archive's bytes (decrypted)."""
    return {"files": row["files"], "nbytes": row["size"]}


def _identities(cfg: AgentConfig) -> list[str]:
    identity = cfg.backup.identity_file
    if identity is None:
        raise BackupError("restore needs backup.identity_file (the age private key)")
    return [k for k in identity.read_text().split() if k.startswith("AGE-SECRET-KEY-")]


def _copy_status(copy: catalog.Copy) -> str:
    if copy.state == "deleting":
        error = f"; last try failed: {copy.delete_error}" if copy.delete_error else ""
        return f"deleting: {copy.delete_reason}{error}"
    if copy.state == "orphan":
        return "orphan: on the archive host, not uploaded by this catalog (retention decides)"
    return "ok" if copy.state == "present" else copy.state
