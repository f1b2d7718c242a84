"""The folders of a backup source, so that a backup keeps empty folders and each folder's
mode: listed the way the source lists its files (sorted, the same `excludes`, links and
special files never followed), outermost first. Blocking: run in the backup's worker thread."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import paramiko

from agent.backup.members import BackupFolder
from drivers.errors import DriverConnectionError, DriverError
from drivers.sftp_source import SftpClient


def _excluded(relative: str, excludes: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in excludes)


def local_folders(root: Path, excludes: Sequence[str] = ()) -> Iterator[BackupFolder]:
    """Every folder below `root` (not `root` itself)."""
    if not root.is_dir():
        raise DriverError(f"backup source {root} is not a directory")
    pending = [(str(root), "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as entries:
                ordered = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            raise DriverError(f"cannot list {directory}: {exc.strerror}") from exc
        below = []
        for entry in ordered:
            relative = f"{prefix}{entry.name}"
            if _excluded(relative, excludes):
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield BackupFolder(relative, stat.S_IMODE(info.st_mode), info.st_mtime)
                below.append((entry.path, relative + "/"))
        pending.extend(reversed(below))


def sftp_folders(
    sftp: SftpClient, root: str, excludes: Sequence[str] = ()
) -> Iterator[BackupFolder]:
    """Every folder below `root` on the SFTP server (not `root` itself)."""
    top = root.rstrip("/") or "/"
    pending = [top]
    try:
        while pending:
            directory = pending.pop()
            below = []
            for attrs in sorted(sftp.listdir_attr(directory), key=lambda a: a.filename):
                path = posixpath.join(directory, attrs.filename)
                relative = posixpath.relpath(path, top)
                if _excluded(relative, excludes):
                    continue
                mode = attrs.st_mode or 0
                if stat.S_ISDIR(mode):
                    yield BackupFolder(relative, stat.S_IMODE(mode), float(attrs.st_mtime or 0))
                    below.append(path)
            pending.extend(reversed(below))
    except (OSError, paramiko.SSHException) as exc:
        raise DriverConnectionError(f"SFTP listing of {top} failed: {exc}") from exc
