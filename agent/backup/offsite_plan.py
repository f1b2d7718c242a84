"""What the archive host should hold, decided from what it actually holds (pure functions).

The listing is reconciled with the catalog's copies: a file counts as a *verified* copy only
when the catalog uploaded it (its SHA-256 read back at upload is recorded) and the listing
shows the recorded size. Retention runs over the local backups and the files there
together, so the archive host converges on the same set as the local store; missing copies
are uploaded newest first; what retention does not keep is removed there, except the newest
verified copy, which is never removed by retention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.backup import retention
from agent.backup.catalog import Copy
from agent.backup.offsite import ARCHIVE_NAME, Listing

ID_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True, slots=True)
class Local:
    """A good local backup, with its file in the store."""

    id: str
    taken: datetime
    file: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Held:
    """A file of this site's that the archive host listed in this run."""

    copy: Copy
    verified: bool


@dataclass
class Reconciled:
    held: dict[str, Held] = field(default_factory=dict)  # by file name
    changed: list[Copy] = field(default_factory=list)  # rows to write (found, promoted, damaged)
    gone: list[Copy] = field(default_factory=list)  # catalog rows the host no longer lists
    damaged: list[str] = field(default_factory=list)  # verified before, another size now


def backup_time(backup_id: str) -> datetime:
    """A backup id is its start time (UTC); files found on the archive host are dated so."""
    return datetime.strptime(backup_id, ID_FORMAT).replace(tzinfo=UTC)


def reconcile(known: Sequence[Copy], listing: Listing) -> Reconciled:
    rows = {c.name: c for c in known}
    result = Reconciled()
    for name, size in sorted(listing.copies.items()):
        row = rows.get(name)
        if row is None:
            match = ARCHIVE_NAME.match(name)
            assert match is not None  # the listing holds archive names only
            taken = backup_time(match.group(1)).isoformat()
            row = Copy(name, match.group(1), taken, size, None, "orphan")
            result.changed.append(row)
            result.held[name] = Held(row, False)
            continue
        same_size = row.size == size
        if row.state == "uploading" and same_size:
            # Renamed into place only after the read-back hash matched: a verified copy whose
            # confirmation was interrupted.
            row = dataclasses.replace(row, state="present")
            result.changed.append(row)
        if row.state in ("present", "deleting") and row.sha256 and same_size:
            result.held[name] = Held(row, True)
            continue
        if not same_size or row.state == "uploading":
            if row.sha256 is not None and row.state != "uploading":
                result.damaged.append(name)  # ours, but not what was uploaded any more
            state = "deleting" if row.state == "deleting" else "orphan"
            row = dataclasses.replace(row, size=size, sha256=None, state=state)
            result.changed.append(row)
        result.held[name] = Held(row, False)
    result.gone = [c for c in known if c.name not in listing.copies]
    return result


@dataclass(frozen=True, slots=True)
class Kept:
    """What retention keeps on the archive host. `ours` is computed over the local backups
    and the verified copies: it says what must be there and which verified copies go. Files
    this catalog did not upload (orphans) are judged over everything (`any`), so a stray file
    is removed when retention would not keep it, but never displaces a verified copy."""

    ours: set[str]
    any: set[str]

    def keeps(self, held: Held) -> bool:
        return held.copy.backup_id in (self.ours if held.verified else self.any)


def kept(local: Iterable[Local], held: Iterable[Held], policy: retention.Policy) -> Kept:
    local, held = list(local), list(held)

    def over(copies: Iterable[Held]) -> set[str]:
        times = {h.copy.backup_id: h.copy.taken for h in copies}
        times.update({b.id: b.taken for b in local})
        return retention.keep(list(times.items()), policy)

    return Kept(over(h for h in held if h.verified), over(held))


def verified_ids(held: Iterable[Held]) -> set[str]:
    return {h.copy.backup_id for h in held if h.verified}


def missing(local: Iterable[Local], held: Iterable[Held], keep: Kept) -> list[Local]:
    """Kept backups with no verified copy on the archive host, newest first."""
    there = verified_ids(held)
    wanted = [b for b in local if b.id in keep.ours and b.id not in there]
    return sorted(wanted, key=lambda b: b.taken, reverse=True)


def newest_verified(held: Iterable[Held]) -> str | None:
    verified = [h.copy for h in held if h.verified]
    return max(verified, key=lambda c: (c.taken, c.name)).name if verified else None


def prunable(held: Iterable[Held], keep: Kept) -> list[Held]:
    """Files retention does not keep, oldest first; never the newest verified copy."""
    held = list(held)
    protected = newest_verified(held)
    out = [h for h in held if not keep.keeps(h) and h.copy.name != protected]
    return sorted(out, key=lambda h: (h.copy.taken, h.copy.name))
