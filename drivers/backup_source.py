"""Where a configuration backup's files come from: a source lists them and opens them.

`LocalSource` reads a directory on this host (`source = "local"` when the agent runs on the
PBX); an SFTP source for a remote PBX follows the same protocol.
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from drivers.errors import DriverError
from drivers.models import BackupFile


class BackupSource(Protocol):
    def files(self) -> Iterator[BackupFile]:
        """Every regular file to back up, in a stable (sorted) order."""
        ...

    def open(self, path: str) -> BinaryIO:
        """The file's content as a binary stream, to be read to the end once."""
        ...


class LocalSource:
    """A directory tree on this host. Symbolic links and special files are skipped: a
    backup holds configuration, and restoring links is how archives escape their target."""

    def __init__(self, root: Path, excludes: Sequence[str] = ()) -> None:
        self.root = root
        self._prefix = os.path.join(root, "")  # "root/", for the paths `open` builds
        self.excludes = tuple(excludes)
        self.skipped: list[str] = []

    def _excluded(self, relative: str) -> bool:
        return any(fnmatch.fnmatch(relative, pattern) for pattern in self.excludes)

    def files(self) -> Iterator[BackupFile]:
        if not self.root.is_dir():
            raise DriverError(f"backup source {self.root} is not a directory")
        yield from self._scan(str(self.root), "")

    def _scan(self, directory: str, prefix: str) -> Iterator[BackupFile]:
        with os.scandir(directory) as entries:
            ordered = sorted(entries, key=lambda e: e.name)
        for entry in ordered:
            relative = f"{prefix}{entry.name}"
            if self._excluded(relative):
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield from self._scan(entry.path, relative + "/")
            elif stat.S_ISREG(info.st_mode):
                yield BackupFile(relative, info.st_size, stat.S_IMODE(info.st_mode), info.st_mtime)
            else:
                self.skipped.append(relative)

    def open(self, path: str) -> BinaryIO:
        parts = path.split("/")
        if path.startswith("/") or ".." in parts:
            raise DriverError(f"backup path {path!r} escapes {self.root}")
        try:  # O_NOFOLLOW: a file swapped for a link since it was listed is not followed
            fd = os.open(self._prefix + path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise DriverError(f"cannot read {self.root / path}: {exc.strerror}") from exc
        return io.FileIO(fd, "rb")  # unbuffered: the archive reads in big pieces
