"""Backup archives: the stock age CLI reads them, restore refuses anything unsafe, and a
failure leaves neither a partial backup nor plaintext behind."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO

import pyrage
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from agent.backup import tarstream
from agent.backup.archive import CHUNK, MANIFEST, manifest_entry, write_archive
from agent.backup.folders import local_folders
from agent.backup.restore import restore
from agent.errors import BackupError
from drivers.backup_source import LocalSource
from drivers.errors import DriverError
from drivers.models import BackupFile

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the stock age CLI is needed")


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "etc-asterisk"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    (root / "empty.conf").write_bytes(b"")
    (root / "sub" / "binary.db").write_bytes(bytes(range(256)) * 4096)
    (root / "sub" / "deeper" / "großes-Ärger.conf").write_text("unicode name\n")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 1))
    (root / "sub" / ("a-rather-long-name-" * 6 + ".conf")).write_text("past ustar's 100\n")
    os.chmod(root / "pjsip.conf", 0o640)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_stock_age_and_zstd_and_tar_read_it_back_byte_identical(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    result = write_archive(
        LocalSource(tree),
        store,
        "b1.tar.zst.age",
        [str(identity.to_public())],
        {"driver": "asterisk"},
    )
    assert result.files == 6 and result.path.exists()
    assert not list(store.glob(".*")), "no temp file left"
    out = stock_extract(result.path, identity, tmp_path / "out")
    manifest = out / MANIFEST
    assert manifest.exists()
    manifest.unlink()
    assert snapshot(out) == snapshot(tree)
    assert stat.S_IMODE((out / "pjsip.conf").stat().st_mode) == 0o640


def test_restore_verifies_and_reproduces_the_tree(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    result = write_archive(LocalSource(tree), tmp_path, "b.age", [str(identity.to_public())], {})
    contents = restore(result.path, [str(identity)], tmp_path / "restored")
    assert snapshot(tmp_path / "restored") == snapshot(tree)
    assert contents.files == len(snapshot(tree))
    assert not list(tmp_path.glob(".pbx-agent-restore-*")), "no plaintext or staging left"


def malicious(
    tmp_path: Path, identity: pyrage.x25519.Identity, member: tarfile.TarInfo, data: bytes = b""
) -> Path:
    raw = io.BytesIO()
    with (
        zstandard.ZstdCompressor().stream_writer(raw, closefd=False) as z,
        tarfile.open(fileobj=z, mode="w|") as tar,
    ):
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    path = tmp_path / "evil.age"
    path.write_bytes(pyrage.encrypt(raw.getvalue(), [identity.to_public()]))
    return path


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("/etc/passwd", size=4), "absolute path"),
        (_member("../../outside.txt", size=4), "'..'"),
        (_member("link", tarfile.SYMTYPE, "../../../etc/shadow"), "link"),
        (_member("hard", tarfile.LNKTYPE, "/etc/shadow"), "link"),
        (_member("dev", tarfile.CHRTYPE), "device"),
        (_member("fifo", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_restore_refuses_malicious_archives(
    tmp_path: Path, identity: pyrage.x25519.Identity, member: tarfile.TarInfo, why: str
) -> None:
    archive = malicious(tmp_path, identity, member, b"evil" if member.isfile() else b"")
    area = tmp_path / "area"
    area.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BackupError, match=why):
        restore(archive, [str(identity)], area / "target")
    assert not (area / "target").exists()
    assert list(area.iterdir()) == [], "no plaintext or staging left in the temp area"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing written outside"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_ciphertext_is_refused_with_no_plaintext_left(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity, damage: str
) -> None:
    result = write_archive(LocalSource(tree), tmp_path, "b.age", [str(identity.to_public())], {})
    data = bytearray(result.path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    result.path.write_bytes(bytes(data))
    area = tmp_path / "area"
    area.mkdir()
    with pytest.raises(BackupError, match="cannot decrypt"):
        restore(result.path, [str(identity)], area / "target")
    assert list(area.iterdir()) == []


class ShrinkingSource(LocalSource):
    """A file that changes while it is read (a live PBX config being rewritten)."""

    def files(self):  # type: ignore[no-untyped-def]
        for item in super().files():
            yield BackupFile(item.path, item.size + 10, item.mode, item.mtime)


def test_a_failed_backup_leaves_nothing(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(BackupError):
        write_archive(ShrinkingSource(tree), store, "b.age", [str(identity.to_public())], {})
    assert list(store.iterdir()) == []
    with pytest.raises(BackupError, match="no age recipient"):
        write_archive(LocalSource(tree), store, "b.age", [], {})
    with pytest.raises(BackupError, match="bad age recipient"):
        write_archive(LocalSource(tree), store, "b.age", ["age1notakey"], {})
    assert list(store.iterdir()) == []


def plaintext_tar(archive: Path, identity: pyrage.x25519.Identity) -> bytes:
    compressed = pyrage.decrypt(archive.read_bytes(), [identity])
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed)).read()


def test_the_tar_stream_is_byte_for_byte_what_tarfile_writes(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """The format did not change when TarFile left the pipeline: the same members written
    by Python's tarfile (PAX format, as before) give the same bytes."""
    result = write_archive(LocalSource(tree), tmp_path, "b.age", [str(identity.to_public())], {})
    ours = plaintext_tar(result.path, identity)
    expected = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(ours), mode="r:") as theirs,
        tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in theirs:
            info = tarfile.TarInfo(member.name)
            info.size, info.mode, info.mtime = member.size, member.mode, int(member.mtime)
            if "comment" in member.pax_headers:  # the manifest's marker
                info.pax_headers = {"comment": member.pax_headers["comment"]}
            tar.addfile(info, theirs.extractfile(member))
    assert ours == expected.getvalue()
    with tarfile.open(fileobj=io.BytesIO(ours)) as tar:
        names = tar.getnames()
    assert names[-1] == MANIFEST and any(len(n) > 100 for n in names) and len(names) == 7


@given(
    path=st.text(min_size=1, max_size=160),
    size=st.integers(min_value=0, max_value=2**40),
    mode=st.integers(min_value=0, max_value=0o7777),
    mtime=st.integers(min_value=-(2**36), max_value=2**36),
)
def test_file_headers_equal_tarfiles_headers(path: str, size: int, mode: int, mtime: int) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = size, mode, mtime
    assert tarstream.file_header(path, size, mode, mtime) == info.tobuf(
        tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"
    )


@given(
    path=st.text(min_size=1, max_size=120),
    size=st.integers(min_value=0, max_value=2**40),
    mode=st.integers(min_value=0, max_value=0o7777),
    sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_manifest_entries_are_what_json_dumps_writes(
    path: str, size: int, mode: int, sha256: str
) -> None:
    entry = {"path": path, "size": size, "mode": mode, "sha256": sha256}
    assert manifest_entry(path, size, mode, sha256) == json.dumps(entry, sort_keys=True).encode()


class BrokenSource(LocalSource):
    """The PBX goes away half-way: the tenth file cannot be opened."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened = 0

    def open(self, path: str) -> BinaryIO:
        self.opened += 1
        if self.opened == 10:
            raise DriverError(f"cannot read {path}: connection lost")
        return super().open(path)


def test_a_source_failing_mid_stream_surfaces_its_own_error(
    tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """The error raised inside the pipeline reaches the caller as itself (not as a retelling
    by another stage), and the archive is not finished as if the input had simply ended."""
    root = tmp_path / "many"
    root.mkdir()
    for n in range(40):
        (root / f"f{n:02d}.conf").write_bytes(os.urandom(64 * 1024))
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(BackupError, match=r"f09\.conf: connection lost") as caught:
        write_archive(BrokenSource(root), store, "b.age", [str(identity.to_public())], {})
    assert isinstance(caught.value.__cause__, DriverError)
    assert list(store.iterdir()) == []


FULL_DISK = r"""
import resource, signal, sys
from pathlib import Path
from agent.backup.archive import write_archive
from agent.errors import BackupError
from drivers.backup_source import LocalSource

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.RLIM_INFINITY))
try:
    write_archive(LocalSource(Path(sys.argv[1])), Path(sys.argv[2]), "b.age", [sys.argv[3]], {})
except BackupError as exc:
    print("refused:", exc)
"""


def test_a_write_failure_fails_the_backup_and_leaves_nothing(
    tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """The store fills up half-way (a file size limit stands in for a full disk)."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "voicemail.db").write_bytes(os.urandom(4 * CHUNK))
    store = tmp_path / "store"
    store.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FULL_DISK,
            str(root),
            str(store),
            str(identity.to_public()),
            str(CHUNK),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "refused: backup b.age failed: [Errno 27] File too large" in done.stdout
    assert list(store.iterdir()) == []


def test_empty_folders_and_folder_modes_are_kept(
    tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """Issue 14, defect 10: empty folders and folder modes were lost."""
    root = tmp_path / "etc"
    (root / "empty").mkdir(parents=True)
    (root / "private" / "deeper").mkdir(parents=True)
    (root / "private" / "deeper" / "secret.conf").write_text("x\n")
    (root / "private").chmod(0o700)
    (root / "empty").chmod(0o750)
    folders = list(local_folders(root))
    assert [f.path for f in folders] == ["empty", "private", "private/deeper"]
    result = write_archive(
        LocalSource(root), tmp_path, "b.age", [str(identity.to_public())], {}, folders
    )
    target = tmp_path / "restored"
    contents = restore(result.path, [str(identity)], target)
    assert (contents.files, contents.folders) == (1, 3)
    assert (target / "empty").is_dir() and not list((target / "empty").iterdir())
    assert stat.S_IMODE((target / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "empty").stat().st_mode) == 0o750
    # The stock tools see the same folders.
    out = stock_extract(result.path, identity, tmp_path / "stock")
    assert (out / "empty").is_dir()
    assert stat.S_IMODE((out / "private").stat().st_mode) == 0o700


def test_a_source_file_named_like_the_manifest_is_only_a_file(
    tree: Path, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """Issue 14, defect 8: what a stock restore leaves in /etc/asterisk made every later
    backup unrestorable. The manifest takes another name and is known by its marker."""
    leftover = b'{"schema": "pbx-agent/backup-manifest/1", "files": []}'
    (tree / MANIFEST).write_bytes(leftover)
    (tree / "pbx-agent-manifest-1.json").write_bytes(b"{}")
    result = write_archive(LocalSource(tree), tmp_path, "b.age", [str(identity.to_public())], {})
    with tarfile.open(fileobj=io.BytesIO(plaintext_tar(result.path, identity)), mode="r:") as tar:
        names = tar.getnames()
    assert names[-1] == "pbx-agent-manifest-2.json"
    assert len(names) == len(set(names)), "no member name twice"
    target = tmp_path / "restored"
    restore(result.path, [str(identity)], target)
    assert snapshot(target) == snapshot(tree)
    assert (target / MANIFEST).read_bytes() == leftover


def stock_extract(archive: Path, identity: pyrage.x25519.Identity, out: Path) -> Path:
    """`age -d -i KEY FILE | zstd -d | tar -x -C OUT`, the stock tools."""
    key = out.parent / "key.txt"
    key.write_text(str(identity) + "\n")
    out.mkdir()
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(key), str(archive)], capture_output=True, check=True
    ).stdout
    tar_bytes = subprocess.run(
        ["zstd", "-d", "-c"], input=decrypted, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar_bytes, check=True)
    return out
