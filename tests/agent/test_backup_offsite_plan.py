"""What the archive host should hold, decided from its listing (pure functions): which files
are verified copies, what is missing (newest first), what retention removes there (never the
newest verified copy), and how files the catalog did not upload are judged."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.backup.catalog import Copy
from agent.backup.offsite import Listing
from agent.backup.offsite_plan import (
    ID_FORMAT,
    Held,
    Local,
    backup_time,
    kept,
    missing,
    newest_verified,
    prunable,
    reconcile,
)
from agent.backup.retention import Policy
from tests.offsite_rig import START

LAST_TWO = Policy(2, 0, 0, 0, 0)


def bid(day: float) -> str:
    return (START + timedelta(days=day)).strftime(ID_FORMAT)


def local(day: float) -> Local:
    return Local(bid(day), backup_time(bid(day)), f"{bid(day)}.tar.zst.age", 100, f"sha-{day}")


def copy(day: float, state: str = "present", size: int = 100) -> Copy:
    b = local(day)
    sha = None if state == "orphan" else b.sha256
    return Copy(b.file, b.id, b.taken.isoformat(), size, sha, state)


def test_reconcile_verifies_by_the_recorded_size_and_hash() -> None:
    known = [
        copy(1),  # there, as uploaded
        copy(2),  # there, another size now: changed on the archive host
        copy(3),  # gone from the archive host
        copy(4, "uploading"),  # renamed into place, confirmation interrupted
        copy(5, "deleting"),  # removal decided; still there
    ]
    names = {d: local(d).file for d in range(1, 7)}
    listing = Listing({names[1]: 100, names[2]: 7, names[4]: 100, names[5]: 100, names[6]: 9})
    found = reconcile(known, listing)
    verified = {n for n, h in found.held.items() if h.verified}
    assert verified == {names[1], names[4], names[5]}
    assert found.held[names[2]].copy.state == "orphan" and found.damaged == [names[2]]
    assert found.held[names[6]].copy.state == "orphan", "a file the catalog never uploaded"
    assert found.held[names[6]].copy.taken == backup_time(bid(6)), "dated by its name"
    assert [c.name for c in found.gone] == [names[3]]
    assert {c.name: c.state for c in found.changed}[names[4]] == "present"


def test_missing_copies_newest_first_and_retention_there() -> None:
    backups = [local(d) for d in range(5)]
    held = [Held(copy(0), True), Held(copy(1), True), Held(copy(4), True)]
    keep = kept(backups, held, Policy(3, 0, 0, 0, 0))
    assert keep.ours == {bid(2), bid(3), bid(4)}
    assert [b.id for b in missing(backups, held, keep)] == [bid(3), bid(2)]
    assert [h.copy.backup_id for h in prunable(held, keep)] == [bid(0), bid(1)]


def test_the_newest_verified_copy_is_never_pruned() -> None:
    # Three newer local backups not uploaded yet (the archive host was full): retention
    # keeps those, but the only verified copy stays until one of them is there.
    backups = [local(d) for d in range(4)]
    held = [Held(copy(0), True)]
    keep = kept(backups, held, LAST_TWO)
    assert bid(0) not in keep.ours
    assert prunable(held, keep) == []
    assert newest_verified(held) == local(0).file


def test_an_orphan_never_displaces_a_verified_copy() -> None:
    backups = [local(1), local(2)]
    held = [Held(copy(1), True), Held(copy(2), True), Held(copy(3, "orphan"), False)]
    keep = kept(backups, held, LAST_TWO)
    assert keep.ours == {bid(1), bid(2)}, "a stray newer file does not push our copies out"
    assert prunable(held, keep) == [], "the orphan is kept: retention over everything keeps it"
    old_orphan = Held(copy(-30, "orphan"), False)
    keep = kept(backups, [*held[:2], old_orphan], LAST_TWO)
    assert prunable([*held[:2], old_orphan], keep) == [old_orphan]


@given(
    st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True),
    st.lists(st.integers(0, 400), max_size=40, unique=True),
    st.tuples(*(st.integers(0, 8) for _ in range(5))),
)
def test_retention_there_never_removes_the_newest_verified_copy(
    local_days: list[int], remote_days: list[int], counts: tuple[int, ...]
) -> None:
    policy = Policy(*counts)
    backups = [local(d) for d in local_days]
    held = [Held(copy(d), True) for d in remote_days]
    keep = kept(backups, held, policy)
    pruned = {h.copy.name for h in prunable(held, keep)}
    newest = newest_verified(held)
    assert newest is None or newest not in pruned
    assert all(h.copy.backup_id not in keep.ours for h in prunable(held, keep))
    assert not {b.id for b in missing(backups, held, keep)} & {h.copy.backup_id for h in held}
