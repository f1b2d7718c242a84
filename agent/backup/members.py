"""What a backup archive may hold, one set of rules for the writer and the reader: member
names, the limits of `[backup.limits]`, and the members the agent writes besides files
(folders, and the manifest, which is told apart by a marker rather than by its name, so that a
source file of the same name is only a file).

The writer checks a backup against these rules while it is taken (`GuardedSource`), so what it
stores is always readable; the reader (`restore`) refuses anything else, whoever wrote it.
"""

from __future__ import annotations

import json
import stat
import tarfile
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from agent.config.schema import BackupLimitsConfig
from agent.errors import BackupError
from drivers.backup_source import BackupSource
from drivers.models import BackupFile

MANIFEST = "pbx-agent-manifest.json"
# The manifest member's PAX `comment` (a standard keyword every tar ignores): the reader's way
# to know it, whatever its name. Archives from before it was marked: see `restore`.
MANIFEST_MARK = "pbx-agent/backup-manifest"
MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX
MAX_DEPTH = 64
# A manifest entry's bytes beyond its path (keys, size, mode, SHA-256), and the header's.
_ENTRY_BYTES = 144
_HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """`[backup.limits]`: see config/agent.example.toml."""

    manifest_bytes: int
    file_bytes: int
    total_bytes: int
    members: int

    @classmethod
    def of(cls, config: BackupLimitsConfig) -> Limits:
        return cls(config.manifest_bytes, config.file_bytes, config.total_bytes, config.members)


DEFAULT_LIMITS = Limits.of(BackupLimitsConfig())


@dataclass(frozen=True, slots=True)
class BackupFolder:
    """One folder of a backup source (relative POSIX path, permission bits, mtime)."""

    path: str
    mode: int
    mtime: float


def check_path(name: str) -> str:
    """`name` as a safe relative path (`./` and doubled slashes folded), or BackupError with
    the reason it cannot be restored."""
    shown = repr(name[:200])
    if not name or "\0" in name:
        raise BackupError(f"refused: member name {shown} is empty or holds a NUL")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BackupError(f"refused: member name {shown} is not UTF-8") from None
    if len(raw) > MAX_PATH_BYTES:
        raise BackupError(f"refused: member name of {len(raw)} bytes (at most {MAX_PATH_BYTES})")
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute():
        raise BackupError(f"refused: absolute path {shown} in the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BackupError(f"refused: {shown} climbs out of the target with '..'")
    if not parts:
        raise BackupError(f"refused: member name {shown} names no file")
    if len(parts) > MAX_DEPTH:
        raise BackupError(f"refused: {shown} is {len(parts)} folders deep (at most {MAX_DEPTH})")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise BackupError(f"refused: {shown} has a name longer than {MAX_NAME_BYTES} bytes")
    return "/".join(parts)


class Tally:
    """Members and bytes counted against the limits; BackupError names the limit passed."""

    def __init__(self, limits: Limits, *, writing: bool = False) -> None:
        self.limits = limits
        self.members = 0
        self.total = 0
        self.manifest = _HEAD_BYTES  # the writer's estimate of its manifest
        self._writing = writing

    def member(self, path: str) -> None:
        self.members += 1
        if self.members > self.limits.members:
            self._over("members", f"more than {self.limits.members} files and folders")
        if self._writing:
            self.manifest += len(json.dumps(path)) + _ENTRY_BYTES
            if self.manifest > self.limits.manifest_bytes:
                self._over(
                    "manifest_bytes",
                    f"a file list of more than {self.limits.manifest_bytes} bytes",
                )

    def file(self, path: str, size: int) -> None:
        if size > self.limits.file_bytes:
            self._over(
                "file_bytes", f"{path!r} of {size} bytes, more than {self.limits.file_bytes}"
            )
        self.total += size
        if self.total > self.limits.total_bytes:
            self._over("total_bytes", f"more than {self.limits.total_bytes} bytes of files")

    def _over(self, key: str, what: str) -> None:
        if self._writing:
            raise BackupError(
                f"the backup would hold {what}, which a restore refuses: raise "
                f"backup.limits.{key} or exclude files (backup.excludes)"
            )
        raise BackupError(f"refused: the archive holds {what} (backup.limits.{key})")


class GuardedSource:
    """A backup source, and its folders, checked against the reader's rules as they are
    listed: a backup a restore would refuse fails when it is taken, with the reason, instead
    of being stored and counted as good by retention."""

    def __init__(
        self, source: BackupSource, folders: Iterator[BackupFolder], limits: Limits
    ) -> None:
        self._source = source
        self._folders = folders
        self._tally = Tally(limits, writing=True)

    def folders(self) -> Iterator[BackupFolder]:
        for folder in self._folders:
            self._tally.member(_writable_name(folder.path))
            yield folder

    def files(self) -> Iterator[BackupFile]:
        for item in self._source.files():
            self._tally.member(_writable_name(item.path))
            self._tally.file(item.path, item.size)
            yield item

    def open(self, path: str) -> BinaryIO:
        return self._source.open(path)


def _writable_name(path: str) -> str:
    try:
        if check_path(path) == path:
            return path
    except BackupError as exc:
        reason = str(exc).removeprefix("refused: ")
        raise BackupError(
            f"cannot back up {path[:200]!r}: {reason}; rename it or exclude it (backup.excludes)"
        ) from None
    raise BackupError(f"cannot back up {path[:200]!r}: not a plain relative path")


def manifest_name(taken: Container[str]) -> str:
    """The manifest's member name: `pbx-agent-manifest.json`, unless a source file at the top
    already has that name (left there by a restore with the stock tools): then the first of
    `pbx-agent-manifest-1.json`, `-2`, ... that none has."""
    name, number = MANIFEST, 0
    while name in taken:
        number += 1
        name = f"pbx-agent-manifest-{number}.json"
    return name


def manifest_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    """The manifest's tar header, marked as the agent's."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, mtime
    info.pax_headers = {"comment": MANIFEST_MARK}
    return info


def folder_info(folder: BackupFolder) -> tarfile.TarInfo:
    info = tarfile.TarInfo(folder.path)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, folder.mode, int(folder.mtime)
    return info


def folder_entry(folder: BackupFolder) -> dict[str, object]:
    """A folder's line in the manifest's list (files have no `type`)."""
    return {"path": folder.path, "type": "dir", "mode": folder.mode}


def permission_bits(mode: int) -> int:
    return stat.S_IMODE(mode) & 0o777
