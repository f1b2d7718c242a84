"""One off-site sync: bring the archive host to what retention keeps, from what it holds.

Each run lists the archive folder, reconciles it with the catalog (`offsite_plan`), uploads
the missing copies newest first (at most `uploads_per_run`), and only when every upload of
the run succeeded removes what retention does not keep there (never the newest verified
copy). A removal is recorded before it is tried (`deleting`) and dropped from the catalog only
once the host confirms it, so a failed one is retried by the next run. Interrupted uploads
left there are removed.

While the licence's `config_archive` feature is off nothing is uploaded, and the archive is
handled by the explicit `lapse` policy: `keep` leaves it untouched (the host is not even
contacted); `delete` removes this site's files there once the lapse is `lapse_delete_days`
old. Every action under the policy is a `licence` message; after renewal the backups taken
during the lapse are uploaded like any missing copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from agent.backup import catalog, retention
from agent.backup.catalog import Copy
from agent.backup.offsite import ArchiveHost, OffsiteError
from agent.backup.offsite_lapse import Lapse, LapseTracker
from agent.backup.offsite_plan import (
    Held,
    Kept,
    Local,
    kept,
    missing,
    prunable,
    reconcile,
    verified_ids,
)
from agent.clock import Clock
from agent.config.schema import AgentConfig, OffsiteConfig
from agent.state import StateStore
from drivers.sftp_source import SftpSettings

log = structlog.get_logger(__name__)


@dataclass
class OffsiteReport:
    """What one sync found and did; the health check and `backup list` read it."""

    mode: Literal["active", "lapse", "disabled"]
    wanted: int = 0  # backups retention keeps on the archive host
    held: int = 0  # of those, verified copies there
    missing: list[str] = field(default_factory=list)  # kept, not there (ids, newest first)
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # files removed there (names)
    pending: list[str] = field(default_factory=list)  # removals not confirmed yet
    orphans: list[str] = field(default_factory=list)  # files there this catalog did not upload
    error: str | None = None  # the first failure, naming its cause
    cause: str | None = None
    statuses: dict[str, str] = field(default_factory=dict)  # backup id -> off-site state

    @property
    def complete(self) -> bool:
        return self.mode == "active" and not self.missing and self.error is None


class OffsiteSync:
    def __init__(
        self,
        store: StateStore,
        cfg: AgentConfig,
        settings: Callable[[], SftpSettings],
        directory: Path,
        clock: Clock,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._settings = settings
        self._directory = directory
        self._clock = clock
        self._last_error: str | None = None
        # The licence's config_archive feature (the daemon wires it to the licence service).
        self.allowed: Callable[[], bool] = lambda: True
        self._lapse = LapseTracker(store, lambda: self.offsite)
        # `licence` message bodies (action, summary, details) for actions under the lapse policy.
        self.licence_listeners = self._lapse.listeners

    @property
    def offsite(self) -> OffsiteConfig:
        offsite = self._cfg.backup.offsite
        assert offsite is not None
        return offsite

    @property
    def policy(self) -> retention.Policy:
        return retention.Policy.of(self._cfg.backup)

    async def run(self, rows: Sequence[dict[str, Any]]) -> OffsiteReport:
        """One sync over the local catalog `rows`. Never raises for the archive host's
        failures: they are in the report (and the catalog)."""
        offsite = self._cfg.backup.offsite
        if offsite is None or not offsite.enabled:
            return OffsiteReport("disabled")
        local = [
            Local(
                r["id"], datetime.fromisoformat(r["started_at"]), r["file"], r["size"], r["sha256"]
            )
            for r in rows
            if r["status"] == "ok" and (self._directory / r["file"]).is_file()
        ]
        now = self._clock.now()
        known = await self._store.call(catalog.copies)
        lapse = await self._lapse.current(self.allowed(), now, len(known))
        if lapse is not None and not lapse.due(now):
            return await self._lapse_untouched(local, known, lapse)
        host = ArchiveHost(self._settings())
        try:
            await asyncio.to_thread(host.__enter__)
            listing = await asyncio.to_thread(host.listing)
        except OffsiteError as exc:
            await asyncio.to_thread(host.close)
            return await self._unreachable(local, known, lapse, exc)
        try:
            found = reconcile(known, listing)
            await self._record_found(found.changed, found.gone, found.damaged, now)
            for partial in listing.partials:
                await self._remove(host, partial, "leftover of an interrupted upload", now)
            if lapse is not None:
                report = await self._lapse_delete(host, local, found.held, lapse, now)
            else:
                report = await self._catch_up(host, local, found.held, now)
        finally:
            await asyncio.to_thread(host.close)
        report.orphans = sorted(n for n, h in found.held.items() if h.copy.state == "orphan")
        if report.error is None:
            self._recovered()
        await self._finish(report)
        return report

    # -- while the feature is on -----------------------------------------------------------

    async def _catch_up(
        self, host: ArchiveHost, local: list[Local], held: dict[str, Held], now: datetime
    ) -> OffsiteReport:
        keep = kept(local, held.values(), self.policy)
        todo = missing(local, held.values(), keep)
        report = OffsiteReport("active")
        for backup in todo[: self.offsite.uploads_per_run]:
            try:
                held[backup.file] = await self._upload(host, backup, held.get(backup.file), now)
            except OffsiteError as exc:
                report.error, report.cause = str(exc), exc.cause
                if exc.cause not in ("damaged", "local"):  # the next uploads would fail too
                    break
            else:
                report.uploaded.append(backup.id)
        if report.error is None:  # nothing is removed while uploads fail
            for doomed in prunable(held.values(), keep):
                reason = "retention: not among the backups kept"
                failure = await self._remove(host, doomed.copy.name, reason, now, doomed.copy)
                if failure is not None:
                    report.error, report.cause = str(failure), failure.cause
                    pending = dataclasses.replace(doomed.copy, state="deleting")
                    held[doomed.copy.name] = Held(pending, doomed.verified)
                    break
                del held[doomed.copy.name]
                report.deleted.append(doomed.copy.name)
        await self._undo_stale_deletions(held, keep)
        left = missing(local, held.values(), keep)
        report.missing = [b.id for b in left]
        report.wanted = len(keep.ours)
        report.held = len(keep.ours & verified_ids(held.values()))
        report.pending = sorted(n for n, h in held.items() if h.copy.state == "deleting")
        for b in local:
            report.statuses[b.id] = self._status(b, keep, held, report)
        return report

    def _status(
        self, backup: Local, keep: Kept, held: dict[str, Held], report: OffsiteReport
    ) -> str:
        there = held.get(backup.file)
        if there is not None and there.verified:
            return "ok"
        if backup.id not in keep.ours:
            return "not kept off-site (retention)"
        if report.error is not None:
            return f"failed: {report.error}"
        return "queued: a later run uploads it (uploads_per_run)"

    async def _upload(
        self, host: ArchiveHost, backup: Local, before: Held | None, now: datetime
    ) -> Held:
        intent = Copy(
            backup.file,
            backup.id,
            backup.taken.isoformat(),
            backup.size,
            backup.sha256,
            "uploading",
        )
        await self._store.call(catalog.put_copies, [intent])
        try:
            done = await asyncio.to_thread(
                host.upload, self._directory / backup.file, backup.sha256
            )
        except OffsiteError as exc:
            # The file under its final name (if any) is what was there before.
            if before is not None:
                await self._store.call(catalog.put_copies, [before.copy])
            else:
                await self._store.call(
                    catalog.forget_copy, backup.file, now.isoformat(), "upload_failed", str(exc)
                )
            self._failed("off-site upload failed", exc, id=backup.id)
            raise
        copy = dataclasses.replace(
            intent,
            state="present",
            sha256=done.sha256,
            fsynced=int(done.fsynced),
            uploaded_at=now.isoformat(),
        )
        await self._store.call(catalog.put_copies, [copy])
        fsync = "fsynced" if done.fsynced else "not fsynced: the server does not offer it"
        await self._store.call(
            catalog.log,
            now.isoformat(),
            "uploaded",
            backup.file,
            f"{done.size} bytes, SHA-256 verified, {fsync}",
        )
        log.info("off-site copy uploaded", id=backup.id, size=done.size, fsynced=done.fsynced)
        return Held(copy, True)

    async def _remove(
        self, host: ArchiveHost, name: str, reason: str, now: datetime, row: Copy | None = None
    ) -> OffsiteError | None:
        """Remove one file there, recorded first; a failure keeps the row for a retry."""
        if row is not None:
            row = dataclasses.replace(row, state="deleting", delete_reason=reason)
            await self._store.call(catalog.put_copies, [row])
        try:
            await asyncio.to_thread(host.delete, name)
        except OffsiteError as exc:
            if row is not None:
                row = dataclasses.replace(
                    row, delete_error=str(exc), delete_attempts=row.delete_attempts + 1
                )
                await self._store.call(catalog.put_copies, [row])
            self._failed("off-site removal failed; retried by the next run", exc, name=name)
            return exc
        await self._store.call(catalog.forget_copy, name, now.isoformat(), "deleted", reason)
        log.info("off-site copy removed", name=name, reason=reason)
        return None

    async def _undo_stale_deletions(self, held: dict[str, Held], keep: Kept) -> None:
        """A removal decided earlier that retention no longer wants is called off."""
        undo = []
        for name, h in held.items():
            if h.copy.state == "deleting" and keep.keeps(h):
                state = "present" if h.verified else "orphan"
                copy = dataclasses.replace(
                    h.copy, state=state, delete_reason=None, delete_error=None
                )
                held[name] = Held(copy, h.verified)
                undo.append(copy)
        if undo:
            await self._store.call(catalog.put_copies, undo)

    async def _record_found(
        self, changed: list[Copy], gone: list[Copy], damaged: list[str], now: datetime
    ) -> None:
        if changed:
            await self._store.call(catalog.put_copies, changed)
        ts = now.isoformat()
        for name in damaged:
            log.warning("off-site copy changed on the archive host: no longer counted", name=name)
            await self._store.call(catalog.log, ts, "damaged", name, "size differs from the upload")
        for copy in gone:
            if copy.state == "deleting":
                detail = f"removal confirmed ({copy.delete_reason})"
                action = "deleted"
            elif copy.state == "uploading":
                detail, action = "upload never completed", "upload_failed"
            else:
                detail, action = "no longer on the archive host (removed there)", "vanished"
                log.warning("off-site copy vanished from the archive host", name=copy.name)
            await self._store.call(catalog.forget_copy, copy.name, ts, action, detail)

    # -- while the feature is off ----------------------------------------------------------

    async def _lapse_untouched(
        self, local: list[Local], known: list[Copy], lapse: Lapse
    ) -> OffsiteReport:
        report = OffsiteReport("lapse")
        note = lapse.note
        there = {c.backup_id for c in known if c.state == "present"}
        for b in local:
            report.statuses[b.id] = "ok" if b.id in there else f"off: {note}"
        await self._finish(report)
        return report

    async def _lapse_delete(
        self,
        host: ArchiveHost,
        local: list[Local],
        held: dict[str, Held],
        lapse: Lapse,
        now: datetime,
    ) -> OffsiteReport:
        report = OffsiteReport("lapse")
        reason = self._lapse.deletion_reason(lapse)
        for name, h in sorted(held.items()):
            failure = await self._remove(host, name, reason, now, h.copy)
            if failure is not None:
                report.error, report.cause = str(failure), failure.cause
                if h.copy.delete_attempts == 0:
                    await self._lapse.tell(
                        "archive_delete_failed",
                        f"{name} could not be deleted from the archive host: {failure}; retried",
                        name=name,
                    )
                break
            report.deleted.append(name)
            await self._lapse.tell(
                "archive_deleted", f"deleted {name} from the archive host ({reason})", name=name
            )
        report.pending = sorted(set(held) - set(report.deleted))
        note = lapse.note
        for b in local:
            report.statuses[b.id] = f"off: {note}"
        return report

    # -- failures and bookkeeping -------------------------------------------------------------

    async def _unreachable(
        self, local: list[Local], known: list[Copy], lapse: Lapse | None, exc: OffsiteError
    ) -> OffsiteReport:
        self._failed("archive host unreachable", exc)
        report = OffsiteReport(
            "lapse" if lapse is not None else "active", error=str(exc), cause=exc.cause
        )
        # What the catalog last knew of the archive host stands in for its listing.
        held = {
            c.name: Held(c, c.state in ("present", "deleting") and c.sha256 is not None)
            for c in known
        }
        keep = kept(local, held.values(), self.policy)
        report.wanted = len(keep.ours)
        report.held = len(keep.ours & verified_ids(held.values()))
        report.missing = [b.id for b in missing(local, held.values(), keep)]
        report.pending = sorted(c.name for c in known if c.state == "deleting")
        for b in local:
            if lapse is not None:
                report.statuses[b.id] = f"off: {lapse.note}"
            elif b.id in report.missing:
                report.statuses[b.id] = f"failed: {exc}"
        await self._finish(report)
        return report

    async def _finish(self, report: OffsiteReport) -> None:
        if report.statuses:
            await self._store.call(catalog.set_offsite, report.statuses)

    def _failed(self, what: str, exc: OffsiteError, **context: Any) -> None:
        """Logged once per distinct failure, not once per retry."""
        if str(exc) != self._last_error:
            log.warning(what, error=str(exc), cause=exc.cause, **context)
        self._last_error = str(exc)

    def _recovered(self) -> None:
        if self._last_error is not None:
            log.info("archive host accepts copies again", previous_error=self._last_error)
        self._last_error = None
