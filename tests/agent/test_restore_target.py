"""`backup restore --to DIR`: the CLI makes DIR with a marker, the daemon restores only where it
sees the same marker and may write, and otherwise refuses naming the place it can reach.
(The service's sandbox itself, private /tmp and a read-only system, is exercised under a real
systemd by tests/systemd/test_operator.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import BackupError
from agent.restore_target import MARKER, claim, prepare, withdraw


def test_a_folder_both_sides_see_is_claimed_and_left_empty(tmp_path: Path) -> None:
    target = tmp_path / "restore" / "x"
    token, created = prepare(target)
    assert created == [tmp_path / "restore", target]
    claim(target, token, tmp_path / "state" / "restore")
    assert target.is_dir() and not any(target.iterdir()), "ready for the restore, marker gone"


def test_a_folder_the_service_does_not_see_is_refused_naming_the_allowed_place(
    tmp_path: Path,
) -> None:
    allowed = tmp_path / "state" / "restore"
    with pytest.raises(BackupError) as refused:
        claim(tmp_path / "private-tmp" / "x", "token", allowed)
    message = str(refused.value)
    assert "does not see that folder" in message
    assert message.endswith(f"restore under {allowed}/ instead")


def test_a_same_named_folder_with_another_marker_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "x"
    prepare(target)
    with pytest.raises(BackupError, match="sees another folder there"):
        claim(target, "not-the-token", tmp_path / "allowed")
    with pytest.raises(BackupError, match="sees another folder there"):
        claim(target, "", tmp_path / "allowed")


def test_a_non_empty_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.mkdir()
    (target / "keep.conf").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        prepare(target)
    assert sorted(p.name for p in target.iterdir()) == ["keep.conf"]


def test_withdraw_removes_the_marker_and_only_the_folders_it_made(tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    target = tmp_path / "existing" / "new" / "x"
    _, created = prepare(target)
    assert (target / MARKER).exists()
    withdraw(target, created)
    assert not (tmp_path / "existing" / "new").exists() and (tmp_path / "existing").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_as_root_new_folders_take_their_parents_owner(tmp_path: Path) -> None:
    """Below the service's state folder, what root makes belongs to the service."""
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    target = state / "restore" / "x"
    prepare(target)
    for folder in (state / "restore", target):
        assert (folder.stat().st_uid, folder.stat().st_gid) == (65534, 65534)
    assert (target / MARKER).stat().st_mode & 0o004, "the service can read the marker"
