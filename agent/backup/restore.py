"""Reading a backup back: decrypt to a temp file first (age authenticates the whole stream,
so a truncated or tampered archive fails before anything is extracted), then extract into a
staging folder with every member checked, verify each file against the manifest, and only
then move the tree into place. On any refusal nothing is left but what was there before."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import pyrage
import zstandard

from agent.backup.archive import CHUNK, MANIFEST
from agent.errors import BackupError
from agent.progress import CountingReader, ProgressCallback


def decrypt(
    archive: Path, identities: list[str], temp_dir: Path, progress: ProgressCallback | None = None
) -> Path:
    """The decrypted (still compressed) tar, in a 0600 temp file under `temp_dir`."""
    try:
        keys = [pyrage.x25519.Identity.from_str(i.strip()) for i in identities]
    except Exception as exc:
        raise BackupError(f"bad age identity: {exc}") from exc
    fd, name = tempfile.mkstemp(prefix=".restore-", suffix=".tar.zst", dir=temp_dir)
    plain = Path(name)
    try:
        with archive.open("rb") as src, os.fdopen(fd, "wb") as out:
            pyrage.decrypt_io(CountingReader(src, progress), out, keys)
    except (pyrage.DecryptError, OSError, ValueError) as exc:
        plain.unlink(missing_ok=True)
        raise BackupError(
            f"{archive.name}: cannot decrypt ({exc}): truncated, tampered, or "
            "encrypted to another key"
        ) from exc
    except BaseException:
        plain.unlink(missing_ok=True)
        raise
    return plain


def _check_member(member: tarfile.TarInfo) -> str:
    """The member's safe relative path, or BackupError saying why it is refused."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise BackupError(f"refused: absolute path {name!r} in the archive")
    if ".." in path.parts:
        raise BackupError(f"refused: {name!r} climbs out of the target with '..'")
    if member.issym() or member.islnk():
        raise BackupError(f"refused: link {name!r} -> {member.linkname!r} (backups hold no links)")
    if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir()):
        raise BackupError(f"refused: {name!r} is a device or special file")
    return path.as_posix()


def extract(
    plain: Path, target: Path, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Extract the decrypted archive into `target` (created; must not exist or be empty);
    return the manifest. Everything is checked in a staging folder first."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new or empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target.parent))
    try:
        digests, manifest = _extract_checked(plain, staging, progress)
        _verify(manifest, digests)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _extract_checked(
    plain: Path, staging: Path, progress: ProgressCallback | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    digests: dict[str, str] = {}
    manifest: dict[str, Any] | None = None
    try:
        with (
            plain.open("rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for member in tar:
                relative = _check_member(member)
                if relative == MANIFEST:
                    data = tar.extractfile(member)
                    manifest = json.loads(data.read() if data else b"{}")
                    continue
                dest = staging / relative
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                digest = hashlib.sha256()
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while source and (chunk := source.read(CHUNK)):
                        digest.update(chunk)
                        out.write(chunk)
                os.chmod(dest, member.mode & 0o777)
                digests[relative] = digest.hexdigest()
                if progress is not None:
                    progress(1, 0)
    except (tarfile.TarError, zstandard.ZstdError, json.JSONDecodeError, EOFError) as exc:
        raise BackupError(f"the archive is damaged: {exc}") from exc
    if manifest is None:
        raise BackupError("the archive has no manifest: not a pbx-agent backup")
    return digests, manifest


def _verify(manifest: dict[str, Any], digests: dict[str, str]) -> None:
    listed = {f["path"]: f["sha256"] for f in manifest.get("files", [])}
    if set(listed) != set(digests):
        missing = sorted(set(listed) ^ set(digests))[:5]
        raise BackupError(f"archive and manifest disagree on the file list: {missing}")
    for path, digest in digests.items():
        if listed[path] != digest:
            raise BackupError(f"{path}: SHA-256 differs from the manifest")


def restore(
    archive: Path, identities: list[str], target: Path, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Decrypt, check and extract `archive` into `target`; the plaintext never outlives the
    call, whatever happens. `progress` is told the ciphertext's bytes and each file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    plain = decrypt(archive, identities, target.parent, progress)
    try:
        return extract(plain, target, progress)
    finally:
        plain.unlink(missing_ok=True)
