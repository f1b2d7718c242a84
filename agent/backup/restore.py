"""Reading a backup back (verify, restore into a folder, the tree `--to-pbx` compares): the
ciphertext is checked against the catalog first, then decrypted and decompressed as a stream
(`decrypt`), each tar member checked as it arrives (`tarread`, `members`: names, kinds, the
limits of `[backup.limits]` before any content is read) and every file and folder against the
manifest. `verify` writes nothing at all; a restore builds its tree in a private folder and
renames it into place only once age authenticated the whole stream and everything matched, so
a refusal leaves nothing but what was there before.

The manifest is the member marked `pbx-agent/backup-manifest` (its PAX comment), which must be
the last. Archives from before the mark have an unmarked last member `pbx-agent-manifest.json`:
it is taken as the manifest when nothing is marked, and an earlier member of that name (a
source file of that name, which made such archives unrestorable before) is an ordinary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from agent import bounded_json
from agent.backup import decrypt
from agent.backup.members import (
    DEFAULT_LIMITS,
    MANIFEST,
    MANIFEST_MARK,
    Limits,
    Tally,
    check_path,
    permission_bits,
)
from agent.backup.staging import BESIDE_PREFIX, Staging
from agent.backup.tarread import TarReader
from agent.errors import BackupError
from agent.progress import CountingReader, ProgressCallback

_SHA256_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Contents:
    """What a checked archive holds."""

    manifest: dict[str, Any]  # the manifest's header (schema, created_at, driver, id ...)
    files: int
    folders: int


@dataclass(slots=True)
class _Found:
    files: dict[str, tuple[str, int, int]]  # path -> (SHA-256, size, mode)
    folders: dict[str, int]  # path -> mode
    manifest: bytes | None = None


def verify(archive: Path, identities: list[str], **checks: Any) -> Contents:
    """Check every member of `archive` against its manifest without writing anything
    (`checks`: those of `extract`)."""
    return extract(archive, identities, None, **checks)


def extract(
    archive: Path,
    identities: list[str],
    tree: Path | None,
    *,
    sha256: str | None = None,
    size: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: ProgressCallback | None = None,
) -> Contents:
    """Restore `archive` into `tree`, an empty private folder (the caller removes it), after
    checking it against the catalog's `sha256` and `size`; with no tree, only check it.
    `progress` is told the ciphertext's bytes as they are decrypted, and each file."""
    with _opened(archive, identities, sha256, size, progress) as (handle, keys):
        return _read(handle, keys, archive.name, limits, tree, progress)


@contextlib.contextmanager
def _opened(
    archive: Path,
    identities: list[str],
    sha256: str | None,
    size: int | None,
    progress: ProgressCallback | None,
) -> Iterator[tuple[BinaryIO, list[Any]]]:
    keys = decrypt.identities(identities)
    with decrypt.open_checked(archive, sha256, size) as handle:
        counted = handle if progress is None else CountingReader(handle, progress)
        yield cast(BinaryIO, counted), keys


def restore(
    archive: Path,
    identities: list[str],
    target: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    staging: Staging | None = None,
    progress: ProgressCallback | None = None,
) -> Contents:
    """Restore `archive` into `target` (missing, or an empty folder): built beside it (recorded
    in `staging` so that a crash leaves nothing after the next start) and renamed into place
    once everything checked out."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BackupError(f"{target} is not a folder: restore into a new or empty folder")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new or empty folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create {target.parent}: {exc.strerror}") from exc
    with _opened(archive, identities, sha256, size, progress) as (handle, keys):
        place = staging.beside(target) if staging else _beside(target)
        try:
            with place as tree:
                contents = _read(handle, keys, archive.name, limits, tree, progress)
                try:
                    os.replace(tree, target)  # onto a missing or empty folder: one step
                except OSError as exc:
                    raise BackupError(f"cannot move the restored files to {target}: {exc}") from exc
        except OSError as exc:
            raise BackupError(f"cannot restore into {target.parent}: {exc.strerror}") from exc
    return contents


@contextlib.contextmanager
def _beside(target: Path) -> Iterator[Path]:
    """An unrecorded private folder beside `target` (for callers without a `Staging`)."""
    folder = Path(tempfile.mkdtemp(prefix=BESIDE_PREFIX, dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read(
    handle: BinaryIO,
    keys: list[Any],
    name: str,
    limits: Limits,
    tree: Path | None,
    progress: ProgressCallback | None = None,
) -> Contents:
    with decrypt.plaintext_tar(handle, keys, name) as (stream, plain):
        found = _members(TarReader(stream), limits, tree, progress)
        plain.finish()  # authenticated to the last byte: only now is any of it trusted
    if found.manifest is None:
        raise BackupError("refused: the archive has no manifest: not a pbx-agent backup")
    manifest = _check_manifest(found, limits)
    if tree is not None:
        _apply_folder_modes(tree, found.folders)
    return Contents(manifest, len(found.files), len(found.folders))


def _members(
    reader: TarReader, limits: Limits, tree: Path | None, progress: ProgressCallback | None
) -> _Found:
    found = _Found({}, {})
    tally = Tally(limits)
    made: set[str] = set()  # folders made in `tree`
    legacy: bytes | None = None  # the content of the latest unmarked MANIFEST member
    legacy_kept = False  # ... and whether it was also kept as a file
    namesakes = 0  # unmarked MANIFEST members not kept as files
    last = ""
    for member in reader.members():
        if found.manifest is not None:
            raise BackupError("refused: a member follows the manifest")
        path = check_path(member.path)
        last = path
        if member.comment == MANIFEST_MARK:
            if member.kind != "file" or "/" in path:
                raise BackupError(f"refused: the manifest {path[:200]!r} is not a top-level file")
            if member.size > limits.manifest_bytes:
                raise BackupError(
                    f"refused: the manifest is {member.size} bytes, more than "
                    f"{limits.manifest_bytes} (backup.limits.manifest_bytes)"
                )
            found.manifest = reader.read_all()
            continue
        tally.member(path)  # the manifest is held to its own limit, as the writer counts
        if member.kind == "dir":
            if path in found.folders or path in found.files:
                raise BackupError(f"refused: {path[:200]!r} is in the archive twice")
            found.folders[path] = member.mode
            if tree is not None:
                _make_folder(tree, path, made)
            continue
        tally.file(path, member.size)
        candidate = path == MANIFEST and member.size <= limits.manifest_bytes
        if path in found.folders or path in found.files:
            if not (candidate and legacy is not None and legacy_kept):
                raise BackupError(f"refused: {path[:200]!r} is in the archive twice")
            legacy, legacy_kept = reader.read_all(), False  # the old manifest after a namesake
            namesakes += 1
            continue
        digest, content = _take(reader, tree, path, member.mode, made, keep=candidate)
        found.files[path] = (digest, member.size, member.mode)
        if progress is not None:
            progress(1, 0)
        if candidate:
            legacy, legacy_kept = content, True
    if namesakes and (found.manifest is not None or last != MANIFEST):
        raise BackupError(f"refused: {MANIFEST!r} is in the archive twice")
    if found.manifest is None and legacy is not None and last == MANIFEST:
        found.manifest = legacy
        if legacy_kept:  # it was the manifest, not a file
            del found.files[MANIFEST]
            if tree is not None:
                (tree / MANIFEST).unlink()
    return found


def _take(
    reader: TarReader, tree: Path | None, path: str, mode: int, made: set[str], *, keep: bool
) -> tuple[str, bytes | None]:
    """A file's content hashed (and written under `tree`); kept in memory too when `keep`."""
    digest = hashlib.sha256()
    kept = bytearray() if keep else None
    if tree is None:
        for chunk in reader.content():
            digest.update(chunk)
            if kept is not None:
                kept += chunk
        return digest.hexdigest(), None if kept is None else bytes(kept)
    _make_parents(tree, path, made)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with os.fdopen(os.open(tree / path, flags, 0o600), "wb") as out:
        for chunk in reader.content():
            digest.update(chunk)
            out.write(chunk)
            if kept is not None:
                kept += chunk
        os.fchmod(out.fileno(), permission_bits(mode))
    return digest.hexdigest(), None if kept is None else bytes(kept)


def _make_parents(tree: Path, path: str, made: set[str]) -> None:
    parent = path.rpartition("/")[0]
    if parent and parent not in made:
        _make_folder(tree, parent, made)


def _make_folder(tree: Path, path: str, made: set[str]) -> None:
    """`tree/path` and its missing parents, each a real folder (0700 until the end)."""
    so_far = []
    for part in path.split("/"):
        so_far.append(part)
        relative = "/".join(so_far)
        if relative in made:
            continue
        folder = tree / relative
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise BackupError(
                    f"refused: {relative[:200]!r} is a file in the archive and a folder too"
                ) from None
        made.add(relative)


def _apply_folder_modes(tree: Path, folders: dict[str, int]) -> None:
    for path in sorted(folders, key=lambda p: p.count("/"), reverse=True):
        os.chmod(tree / path, permission_bits(folders[path]))


# -- the manifest -------------------------------------------------------------------------------


def _check_manifest(found: _Found, limits: Limits) -> dict[str, Any]:
    """The manifest parsed within bounds; every file and folder it lists is the archive's,
    with the same size, mode and SHA-256, and nothing else is there."""
    assert found.manifest is not None
    bounds = bounded_json.Limits(max_bytes=limits.manifest_bytes, max_depth=8)
    manifest = bounded_json.loads(found.manifest, bounds, "refused: the manifest", BackupError)
    if not isinstance(manifest, dict) or not str(manifest.get("schema", "")).startswith(
        "pbx-agent/backup-manifest/"
    ):
        raise BackupError("refused: the manifest is not a pbx-agent backup manifest")
    listed = manifest.get("files")
    if not isinstance(listed, list):
        raise BackupError("refused: the manifest has no file list")
    files: dict[str, tuple[str, int, int]] = {}
    folders: dict[str, int] = {}
    for entry in listed:
        path, kind, values = _entry(entry)
        if path in files or path in folders:
            raise BackupError(f"refused: the manifest lists {path[:200]!r} twice")
        if kind == "dir":
            folders[path] = values[2]
        else:
            files[path] = values
    _same("file", files.keys(), found.files.keys())
    _same("folder", folders.keys(), found.folders.keys())
    for path, (sha, size, mode) in files.items():
        got_sha, got_size, got_mode = found.files[path]
        if got_size != size or got_sha != sha:
            raise BackupError(f"refused: {path[:200]!r}: size or SHA-256 differs from the manifest")
        if got_mode & 0o7777 != mode & 0o7777:
            raise BackupError(f"refused: {path[:200]!r}: mode differs from the manifest")
    for path, mode in folders.items():
        if found.folders[path] & 0o7777 != mode & 0o7777:
            raise BackupError(f"refused: folder {path[:200]!r}: mode differs from the manifest")
    return {k: v for k, v in manifest.items() if k != "files"}


def _entry(entry: Any) -> tuple[str, str, tuple[str, int, int]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise BackupError("refused: a manifest entry without a path")
    path = check_path(entry["path"])
    kind = entry.get("type", "file")
    mode = entry.get("mode")
    if kind not in ("file", "dir") or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise BackupError(f"refused: the manifest entry for {path[:200]!r} is malformed")
    if kind == "dir":
        return path, kind, ("", 0, mode)
    sha, size = entry.get("sha256"), entry.get("size")
    if (
        not isinstance(sha, str)
        or len(sha) != 64
        or not _SHA256_CHARS.issuperset(sha)
        or not isinstance(size, int)
        or size < 0
    ):
        raise BackupError(f"refused: the manifest entry for {path[:200]!r} is malformed")
    return path, kind, (sha, size, mode)


def _same(what: str, listed: Iterable[str], found: Iterable[str]) -> None:
    listed, found = set(listed), set(found)
    if listed != found:
        only_listed = sorted(listed - found)[:3]
        only_found = sorted(found - listed)[:3]
        raise BackupError(
            f"refused: archive and manifest disagree on the {what}s: listed but absent "
            f"{only_listed}, present but not listed {only_found}"
        )
