"""Every hostile archive of `tests/hostile_archives.py` is refused by verify and by restore with
a one-line reason, leaving nothing behind; a well-formed one passes (so the refusals are the
archives', not the reader's). Old archives whose manifest is an unmarked last member, with or
without a source file of the same name before it, still restore."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pyrage
import pytest

from agent.backup.archive import write_archive
from agent.backup.folders import local_folders
from agent.backup.members import MANIFEST, GuardedSource, Limits
from agent.backup.restore import restore, verify
from agent.backup.staging import Staging
from agent.errors import BackupError
from drivers.backup_source import LocalSource
from tests.hostile_archives import (
    CONF,
    LIMIT_FILE,
    LIMIT_MEMBERS,
    encrypt,
    end,
    entry,
    good_archive,
    hostile_archives,
    manifest,
    member,
    spaces_manifest,
    zstd,
)

IDENTITY = pyrage.x25519.Identity.generate()
SMALL = Limits(
    manifest_bytes=LIMIT_FILE,
    file_bytes=LIMIT_FILE,
    total_bytes=4 * LIMIT_FILE,
    members=LIMIT_MEMBERS,
)
ARCHIVES = hostile_archives(IDENTITY.to_public())


def one_line(error: BackupError) -> str:
    text = str(error)
    assert text and "\n" not in text and len(text) < 600, text[:300]
    assert "Traceback" not in text
    return text


def test_there_are_more_than_fifty() -> None:
    assert len(ARCHIVES) >= 50
    assert len({label for label, _ in ARCHIVES}) == len(ARCHIVES)


@pytest.mark.parametrize(("label", "data"), ARCHIVES, ids=[label for label, _ in ARCHIVES])
def test_hostile_archive_is_refused_leaving_nothing(
    label: str, data: bytes, tmp_path: Path
) -> None:
    archive = tmp_path / "store" / "hostile.tar.zst.age"
    archive.parent.mkdir()
    archive.write_bytes(data)
    area = tmp_path / "area"
    area.mkdir()
    staging = Staging(tmp_path / "state" / "staging")
    with pytest.raises(BackupError) as refused:
        verify(archive, [str(IDENTITY)], limits=SMALL)
    one_line(refused.value)
    with pytest.raises(BackupError) as refused:
        restore(archive, [str(IDENTITY)], area / "target", limits=SMALL, staging=staging)
    one_line(refused.value)
    assert list(area.iterdir()) == [], f"{label}: something was left beside the target"
    assert list(staging.root.iterdir()) == [], f"{label}: staging not cleaned"


def test_a_well_formed_archive_passes_the_same_reader(tmp_path: Path) -> None:
    archive = tmp_path / "good.age"
    archive.write_bytes(good_archive(IDENTITY.to_public()))
    assert verify(archive, [str(IDENTITY)], limits=SMALL).files == 2
    restore(archive, [str(IDENTITY)], tmp_path / "out", limits=SMALL)
    assert (tmp_path / "out" / "sub" / "extensions.conf").read_bytes() == CONF[
        "sub/extensions.conf"
    ]


def test_the_reasons_name_what_is_wrong(tmp_path: Path) -> None:
    reasons = {}
    for label, data in ARCHIVES:
        archive = tmp_path / "a.age"
        archive.write_bytes(data)
        with pytest.raises(BackupError) as refused:
            verify(archive, [str(IDENTITY)], limits=SMALL)
        reasons[label] = str(refused.value)
    assert "absolute path" in reasons["absolute path"]
    assert "'..'" in reasons["dot-dot inside"]
    assert "symbolic link" in reasons["symbolic link"]
    assert "character device" in reasons["character device"]
    assert "backup.limits.file_bytes" in reasons["a file of 5 GiB"]
    assert "backup.limits.total_bytes" in reasons["files over the total"]
    assert "backup.limits.members" in reasons["too many members"]
    assert "backup.limits.manifest_bytes" in reasons["manifest of 1 GiB of spaces (33 KB)"]
    assert "twice" in reasons["the same file twice"]
    assert "cannot decrypt" in reasons["ciphertext truncated"]
    assert "cannot decrypt" in reasons["age to another key"]
    assert "disagree" in reasons["manifest lists a missing file"]
    assert "mode differs" in reasons["manifest mode differs"]
    assert "follows the manifest" in reasons["a member after the manifest"]
    assert "after the end" in reasons["data after the end"]


def test_a_huge_manifest_is_refused_with_flat_memory(tmp_path: Path) -> None:
    """Defect 7: a 33 KB archive whose manifest is 1 GiB of spaces took 3.1 GB of memory."""
    archive = tmp_path / "spaces.age"
    archive.write_bytes(encrypt(spaces_manifest(1 << 30), IDENTITY.to_public()))
    assert archive.stat().st_size < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(BackupError, match="manifest_bytes"):
            verify(archive, [str(IDENTITY)])  # the default limits
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"{peak} bytes allocated"


def _legacy(files: dict[str, bytes], *, namesake: bytes | None = None) -> bytes:
    """An archive as written before the manifest was marked: an unmarked last member named
    MANIFEST; `namesake`: a source file of that name before it (what made it unrestorable)."""
    listed = [entry(p, d) for p, d in files.items()]
    body = b"".join(member(p, d) for p, d in files.items())
    if namesake is not None:
        body += member(MANIFEST, namesake)
        listed.append(entry(MANIFEST, namesake))
    body += member(MANIFEST, manifest(listed), mode=0o600) + end()
    return encrypt(zstd(body), IDENTITY.to_public())


@pytest.mark.parametrize("namesake", [None, b'{"schema": "pbx-agent/backup-manifest/1"}'])
def test_archives_from_before_the_marker_still_restore(
    tmp_path: Path, namesake: bytes | None
) -> None:
    archive = tmp_path / "old.age"
    archive.write_bytes(_legacy(CONF, namesake=namesake))
    target = tmp_path / "out"
    contents = restore(archive, [str(IDENTITY)], target)
    expected = {**CONF, **({MANIFEST: namesake} if namesake else {})}
    found = {
        p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()
    }
    assert found == expected
    assert contents.files == len(expected)


def test_what_the_writer_accepts_the_reader_accepts(tmp_path: Path) -> None:
    """The writer holds a backup to the reader's limits, to the member: what it stores always
    reads back, and one more file fails the backup instead (naming the limit)."""
    limits = Limits(
        manifest_bytes=LIMIT_FILE, file_bytes=4096, total_bytes=100 * 4096, members=LIMIT_MEMBERS
    )
    root = tmp_path / "etc"
    (root / "sub").mkdir(parents=True)
    for n in range(LIMIT_MEMBERS - 1):  # and the folder: exactly the limit
        (root / "sub" / f"{n:04d}-{'x' * 150}.conf").write_bytes(b"y" * (4096 if n < 99 else 0))
    recipient = [str(IDENTITY.to_public())]

    def write(name: str) -> Path:
        guarded = GuardedSource(LocalSource(root), local_folders(root), limits)
        store = tmp_path / name
        store.mkdir()
        return write_archive(guarded, store, "b.age", recipient, {}, guarded.folders()).path

    contents = verify(write("at-the-limit"), [str(IDENTITY)], limits=limits)
    assert (contents.files, contents.folders) == (LIMIT_MEMBERS - 1, 1)
    (root / "one-more.conf").write_bytes(b"z")
    with pytest.raises(BackupError, match=r"backup\.limits\.members.*exclude"):
        write("over")
    (root / "one-more.conf").unlink()
    (root / "sub" / "0000-big.conf").write_bytes(b"y" * 4097)
    with pytest.raises(BackupError, match=r"backup\.limits\.file_bytes"):
        write("too-big")
