"""Backups in the daemon: on a cron schedule (APScheduler), caught up once at start-up when
the last good backup is older than the schedule allows, and on demand; one at a time.
Every run is a catalog row; a good one has a file that was fsynced and renamed first (and,
with an identity, read back completely), and its `backup` message is queued in the
transaction that marks the row reported. After each run (and at start-up, and every
`retry_interval` while copies are missing) the archive host is synced (`offsite_sync`). Time
comes from the injected `Clock`.

`open()` (at start, before anything else touches backups) removes what a crash left: temp
archives, decrypted content (`staging`), rows retention was deleting; it lists files no row
knows as orphans (retention removes them) and sends results a crash kept from being queued.
Verify, restore and `--to-pbx` check the archive against the catalog's size and SHA-256
before decrypting anything, and read it within `[backup.limits]`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from agent import __version__
from agent.backup import catalog, retention
from agent.backup.archive import write_archive
from agent.backup.decrypt import open_checked
from agent.backup.folders import local_folders, sftp_folders
from agent.backup.members import BackupFolder, GuardedSource, Limits
from agent.backup.offsite_sync import OffsiteReport, OffsiteSync
from agent.backup.push import PushPlan, push, remove_partials
from agent.backup.restore import extract, restore, verify
from agent.backup.staging import Staging
from agent.backup.throttle import ReadBudget, ThrottledSource
from agent.clock import SYSTEM_CLOCK, Clock
from agent.config.schema import AgentConfig, BackupSshConfig
from agent.errors import BackupError
from agent.listeners import Listener, notify
from agent.progress import Progress
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from drivers.backup_source import BackupSource, LocalSource
from drivers.errors import DriverError
from drivers.sftp_source import SftpSettings
from drivers.sftp_target import SftpTarget

log = structlog.get_logger(__name__)

COLUMNS = catalog.COLUMNS
ARCHIVE_SUFFIX = ".tar.zst.age"
ID_FORMAT = "%Y%m%dT%H%M%S%fZ"
PUSH = "push"  # the staging scratch of a --to-pbx
OLD_SCRATCH = (".verify-*", ".push-*", ".restore-*")  # plaintext earlier versions left in the store
# Rows retention removes besides the good backups it does not keep: nothing to restore.
UNUSABLE = ("orphan", "missing")
# The body of a `backup` message: these catalog columns, and the id as backup_id.
REPORTED = (
    "status",
    "reason",
    "started_at",
    "finished_at",
    "files",
    "size",
    "changed",
    "offsite",
    "error",
)


class BackupService:
    def __init__(
        self,
        store: StateStore,
        cfg: AgentConfig,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._clock = clock
        self._telemetry = telemetry or Telemetry(store, cfg)
        self.staging = Staging(cfg.state.dir / "staging")
        self.limits = Limits.of(cfg.backup.limits)
        self._lock = asyncio.Lock()  # one backup or off-site sync at a time
        self._last_read: int | None = None  # bytes the last good backup read (progress ETA)
        self._backups_wanted = 0  # backups running or waiting for the lock
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

    async def open(self) -> None:
        """At start: remove what a crash left, reconcile the store with the catalog, and
        queue the results a crash kept from being sent."""
        left = await asyncio.to_thread(self.staging.clean)
        if any(Path(p).name.startswith(f"{PUSH}-") for p in left):
            await self._clean_pbx()
        await asyncio.to_thread(self.clean_temp_files)
        await self._reconcile()
        for row in await self._store.call(catalog.unreported):
            await self._report(row)

    async def run(self) -> None:
        """Catch up once if due (or sync the archive host), then follow the cron schedule,
        syncing again every `retry_interval` while copies are missing."""
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
        """Temp archives of an interrupted backup, and the decrypted scratch folders earlier
        versions kept in the store (`.verify-*`, `.push-*`, `.restore-*`)."""
        if not self.directory.is_dir():
            return
        for leftover in self.directory.glob(".*.partial"):
            leftover.unlink(missing_ok=True)
        for pattern in OLD_SCRATCH:
            for leftover in self.directory.glob(pattern):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)

    async def _clean_pbx(self) -> None:
        """A push to the PBX was interrupted: remove its partial uploads there."""
        try:
            settings = self.ssh_settings()

            def clean() -> list[str]:
                with SftpTarget(settings) as target:
                    return remove_partials(target)

            removed = await asyncio.to_thread(clean)
        except (BackupError, DriverError) as exc:
            log.warning("partial uploads of an interrupted push not removed", error=str(exc))
            return
        if removed:
            log.warning("partial uploads of an interrupted push removed", files=removed)

    async def _reconcile(self) -> None:
        """Rows and files agree: removals a crash interrupted are finished, a good row whose
        file is gone is `missing`, and a file no row lists is an `orphan` (both listed by
        `backup list`, removed by the next retention)."""
        rows = await self._store.call(catalog.rows)
        for row in rows:
            path = self.directory / row["file"] if row["file"] else None
            if row["status"] == "deleting":
                if path is not None:
                    await asyncio.to_thread(path.unlink, True)
                await self._store.call(catalog.delete, row["id"])
            elif row["status"] == "ok" and (path is None or not path.is_file()):
                log.warning("a catalogued backup has no file", id=row["id"], file=row["file"])
                error = "its archive was missing from the store at start"
                await self._store.call(catalog.set_status, row["id"], "missing", error)
        if not self.directory.is_dir():
            return
        listed = {r["file"] for r in rows if r["file"]}
        orphans = []
        for path in sorted(self.directory.glob(f"*{ARCHIVE_SUFFIX}")):
            if path.name in listed or not path.is_file():
                continue
            backup_id = path.name.removesuffix(ARCHIVE_SUFFIX)
            info = path.stat()
            try:
                taken = datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                taken = datetime.fromtimestamp(info.st_mtime, UTC)
            at = taken.isoformat()
            await self._store.call(catalog.add_orphan, backup_id, path.name, info.st_size, at)
            orphans.append(path.name)
        if orphans:
            log.warning(
                "backup archives the catalog did not list: kept as orphans until retention",
                files=orphans,
            )

    # -- one backup ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _source(self) -> Iterator[tuple[BackupSource, Iterator[BackupFolder]]]:
        """The source's files and its folders (empty ones and modes are backed up too)."""
        backup = self._cfg.backup
        if backup.source == "local":
            root = Path(backup.path)
            yield LocalSource(root, backup.excludes), local_folders(root, backup.excludes)
            return
        # SftpTarget: the SFTP source with its session at hand, to list the folders too.
        with SftpTarget(self.ssh_settings()) as source:
            yield source, sftp_folders(source.sftp, backup.path, backup.excludes)

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
        with self._source() as (source, folders):
            # Checked against what a restore accepts while it is read: a backup that could
            # not be restored fails now, and never counts as good for retention.
            if self._cfg.backup.read_mb_per_second:
                budget = ReadBudget(self._cfg.backup.read_mb_per_second * 1_000_000)
                source = ThrottledSource(source, budget)
            guarded = GuardedSource(source, folders, self.limits)
            result = write_archive(
                guarded,
                self.directory,
                f"{backup_id}{ARCHIVE_SUFFIX}",
                list(self._cfg.backup.recipients),
                meta,
                guarded.folders(),
                progress.advance,
            )
        if self._cfg.backup.identity_file is not None:
            self._last_read = progress.snapshot()["bytes"]
            progress.phase("reading the new archive back", files=result.files, nbytes=result.size)
            try:  # read back completely, in memory: nothing decrypted touches the disk
                verify(
                    result.path,
                    _identities(self._cfg),
                    sha256=result.sha256,
                    size=result.size,
                    limits=self.limits,
                    progress=progress.advance,
                )
            except BackupError as exc:
                result.path.unlink(missing_ok=True)
                raise BackupError(f"the new archive does not read back: {exc}") from exc
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
                if self._cfg.backup.identity_file is None:
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
            await self._report(row)
            await notify(self.listeners, row, "backup")
            if row["status"] == "ok":
                return row
            raise BackupError(f"backup {backup_id} failed: {row['error']}")

    async def _report(self, row: dict[str, Any]) -> None:
        """The run's `backup` message, queued in the transaction that marks its row reported
        (a crash before it: `open()` sends it at the next start)."""
        body = {"backup_id": row["id"], **{k: row.get(k) for k in REPORTED}}
        body["changed"] = None if body["changed"] is None else bool(body["changed"])
        await self._telemetry.send(
            "backup", body, write=functools.partial(catalog.mark_reported, backup_id=row["id"])
        )

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
        unusable = {r["id"]: r for r in rows if r["status"] in UNUSABLE}
        removed = [bid for bid in good if bid not in kept] + list(unusable)
        for bid in removed:
            row = good.get(bid) or unusable[bid]
            # Marked first: a crash before the row goes never lists a good backup whose file
            # is gone (`open()` finishes the removal).
            await self._store.call(catalog.set_status, bid, "deleting", None)
            if row["file"]:
                await asyncio.to_thread((self.directory / row["file"]).unlink, True)
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
                    why = row["error"] or row["status"]
                    raise BackupError(
                        f"backup {backup_id} is {row['status']} ({why}): nothing to read"
                    )
                return row
        raise BackupError(f"no backup {backup_id!r} in the catalog (see `pbx-agent backup list`)")

    def _checked(self, row: dict[str, Any]) -> dict[str, Any]:
        """What every read of an archive is held to: the catalog's size and SHA-256 (checked
        before anything is decrypted) and the limits."""
        return {"sha256": row["sha256"], "size": row["size"], "limits": self.limits}

    async def verify(self, backup_id: str, progress: Progress | None = None) -> dict[str, Any]:
        progress = progress or Progress()
        row = await self._row(backup_id)
        path = self.directory / row["file"]
        result = {"id": backup_id, "ciphertext": "ok", "files": "not checked (no identity_file)"}
        if self._cfg.backup.identity_file is None:
            progress.phase("checking the SHA-256", nbytes=row["size"])
            handle = await asyncio.to_thread(open_checked, path, row["sha256"], row["size"])
            handle.close()
            return result
        keys = _identities(self._cfg)
        progress.phase("checking every file", **_totals(row))
        contents = await asyncio.to_thread(
            functools.partial(verify, path, keys, progress=progress.advance, **self._checked(row))
        )
        result["files"] = f"{contents.files} files match their SHA-256"
        return result

    async def restore(
        self, backup_id: str, target: Path, progress: Progress | None = None
    ) -> dict[str, Any]:
        progress = progress or Progress()
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        progress.phase("restoring", **_totals(row))
        contents = await asyncio.to_thread(
            functools.partial(
                restore,
                self.directory / row["file"],
                keys,
                target,
                staging=self.staging,
                progress=progress.advance,
                **self._checked(row),
            )
        )
        return {"id": backup_id, "to": str(target), "files": contents.files}

    async def restore_to_pbx(
        self, backup_id: str, apply: bool, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Compare a backup with the PBX's files over SFTP; with `apply`, write the added and
        changed ones (files only on the PBX are kept). The plan is returned either way."""
        progress = progress or Progress()
        row = await self._row(backup_id)
        keys = _identities(self._cfg)
        settings = self.ssh_settings()

        def compare_and_push() -> PushPlan:
            with self.staging.scratch(PUSH) as scratch:
                tree = scratch / "tree"
                tree.mkdir(mode=0o700)
                progress.phase("decrypting", **_totals(row))
                extract(
                    self.directory / row["file"],
                    keys,
                    tree,
                    progress=progress.advance,
                    **self._checked(row),
                )
                what = "writing to the PBX" if apply else "comparing with the PBX"
                progress.phase(what, files=row["files"])
                with SftpTarget(settings) as target:
                    remove_partials(target)  # what an interrupted push left on the PBX
                    return push(target, tree, apply, progress.advance)

        async with self._lock:
            try:
                result = await asyncio.to_thread(compare_and_push)
            except DriverError as exc:
                raise BackupError(f"restore to the PBX failed: {exc}") from exc
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
