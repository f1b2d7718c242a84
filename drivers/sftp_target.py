"""Writing a configuration tree back to a (replacement) PBX over SFTP, for restores.

paramiko is blocking: use this from a worker thread. Each file is written to a hidden
`.NAME.pbx-agent-partial` beside its target, then renamed over it (POSIX rename on the server),
so the PBX never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import stat
from pathlib import Path
from typing import BinaryIO

import paramiko

from drivers.errors import DriverConnectionError, DriverError
from drivers.sftp_source import SftpClient, SftpSource

CHUNK = 32 * 1024  # one SFTP request


class SftpTarget(SftpSource):
    """`with SftpTarget(settings) as target:` lists, reads and writes files under
    `settings.root`."""

    @property
    def sftp(self) -> SftpClient:
        if self._sftp is None:
            raise DriverConnectionError("SFTP target used before connect()")
        return self._sftp

    def full_path(self, relative: str) -> str:
        root = self.settings.root.rstrip("/") or "/"
        full = posixpath.normpath(posixpath.join(root, relative))
        if not full.startswith(root.rstrip("/") + "/"):
            raise DriverError(f"path {relative!r} escapes {root}")
        return full

    def sha256(self, relative: str) -> str | None:
        """The remote file's SHA-256, or None when it does not exist."""
        try:
            with self.sftp.open(self.full_path(relative), "rb") as remote:
                digest = hashlib.sha256()
                while chunk := remote.read(CHUNK):
                    digest.update(chunk)
                return digest.hexdigest()
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException) as exc:
            raise DriverConnectionError(f"SFTP cannot read {relative}: {exc}") from exc

    def read(self, relative: str, limit: int) -> bytes:
        """Up to `limit` bytes of the remote file (for showing a diff)."""
        try:
            with self.sftp.open(self.full_path(relative), "rb") as remote:
                data = b""
                while len(data) < limit and (chunk := remote.read(min(CHUNK, limit - len(data)))):
                    data += chunk
                return data
        except (OSError, paramiko.SSHException) as exc:
            raise DriverConnectionError(f"SFTP cannot read {relative}: {exc}") from exc

    def write(self, relative: str, source: BinaryIO, mode: int) -> None:
        """Replace (or create) the remote file with `source`'s bytes, atomically."""
        full = self.full_path(relative)
        directory, name = posixpath.split(full)
        partial = posixpath.join(directory, f".{name}.pbx-agent-partial")
        try:
            self._makedirs(directory)
            with self.sftp.open(partial, "wb") as remote:
                remote.set_pipelined(True)
                while chunk := source.read(CHUNK):
                    remote.write(chunk)
            self.sftp.chmod(partial, stat.S_IMODE(mode))
            self.sftp.posix_rename(partial, full)
        except (OSError, paramiko.SSHException) as exc:
            with contextlib.suppress(OSError, paramiko.SSHException):
                self.sftp.remove(partial)
            raise DriverConnectionError(f"SFTP cannot write {relative}: {exc}") from exc

    def _makedirs(self, directory: str) -> None:
        missing: list[str] = []
        while True:
            try:
                if not stat.S_ISDIR(self.sftp.stat(directory).st_mode or 0):
                    raise DriverError(f"{directory} on the PBX is not a folder")
                break
            except FileNotFoundError:
                missing.append(directory)
                directory = posixpath.dirname(directory)
        for path in reversed(missing):
            self.sftp.mkdir(path, 0o750)


def upload_tree(target: SftpTarget, tree: Path, paths: list[str]) -> None:
    """Write each of `paths` (relative, under `tree`) to the target, keeping file modes."""
    for relative in paths:
        local = tree / relative
        with local.open("rb") as source:
            target.write(relative, source, local.stat().st_mode)
