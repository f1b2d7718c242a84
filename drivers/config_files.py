"""The PBX's configuration folder as files the agent may read and replace: on the local disk
when the agent runs on the PBX host, or over SFTP (pinned host key). Blocking: use from a
worker thread. A write goes to a hidden temp file beside the target and is renamed over it,
keeping the file's mode, so the PBX never reads a half-written file.

What the agent needs: read and write of the files it switches features in (and write of the
folder, for the temp file beside them). A missing file, a permission refused or a read-only
file system is a `ConfigAccessError` that names the file and what to do."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Protocol

from drivers.errors import DriverConnectionError, DriverError, UnsafeChange
from drivers.sftp_source import SftpSettings
from drivers.sftp_target import SftpTarget

MAX_CONFIG_BYTES = 8 * 1024 * 1024


class ConfigAccessError(UnsafeChange):
    """The agent cannot read or write a config file; nothing was changed. The message names
    the file and the fix."""


def _access_error(name: str, where: str, exc: OSError, writing: bool) -> ConfigAccessError:
    verb = "write" if writing else "read"
    if isinstance(exc, FileNotFoundError):
        return ConfigAccessError(f"{name} does not exist in {where}")
    if exc.errno == errno.EROFS:
        return ConfigAccessError(
            f"cannot write {name}: {where} is read-only for the agent; installed on the PBX host "
            "its unit needs ReadWritePaths=-/etc/asterisk (scripts/install sets it)"
        )
    if isinstance(exc, PermissionError):
        return ConfigAccessError(
            f"cannot {verb} {name} in {where}: permission denied; give the agent's user "
            f"{verb} access (e.g. group asterisk with g+rw on the file and g+w on the folder)"
        )
    return ConfigAccessError(f"cannot {verb} {name} in {where}: {exc.strerror or exc}")


class ConfigFiles(Protocol):
    """Blocking access to the PBX's configuration folder (run in a thread)."""

    def read_text(self, name: str) -> str: ...

    def write_text(self, name: str, text: str) -> None:
        """Replace the file atomically, keeping its mode."""


def _plain_name(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise DriverError(f"config file name {name!r} is not a plain file name")
    return name


class LocalConfigFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read_text(self, name: str) -> str:
        try:
            return (self.root / _plain_name(name)).read_text(encoding="utf-8")
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=False) from exc

    def write_text(self, name: str, text: str) -> None:
        try:
            self._write(name, text)
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=True) from exc

    def _write(self, name: str, text: str) -> None:
        target = self.root / _plain_name(name)
        info = target.stat()
        partial = target.with_name(f".{name}.pbx-agent-partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IMODE(info.st_mode))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(partial, stat.S_IMODE(info.st_mode))
            if os.geteuid() == 0:
                os.chown(partial, info.st_uid, info.st_gid)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class SftpConfigFiles:
    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings

    @property
    def _where(self) -> str:
        return f"{self.settings.root} on {self.settings.host} (SFTP)"

    def read_text(self, name: str) -> str:
        try:
            with SftpTarget(self.settings) as target:
                data = target.read(_plain_name(name), MAX_CONFIG_BYTES + 1)
        except DriverConnectionError as exc:
            raise self._translated(name, exc, writing=False) from exc
        if len(data) > MAX_CONFIG_BYTES:
            raise DriverError(f"{name} is larger than {MAX_CONFIG_BYTES} bytes")
        return data.decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        try:
            with SftpTarget(self.settings) as target:
                try:
                    mode = target.sftp.stat(target.full_path(_plain_name(name))).st_mode
                except OSError as exc:
                    raise _access_error(name, self._where, exc, writing=True) from exc
                target.write(name, io.BytesIO(text.encode("utf-8")), mode or 0o640)
        except DriverConnectionError as exc:
            raise self._translated(name, exc, writing=True) from exc

    def _translated(self, name: str, exc: DriverConnectionError, writing: bool) -> DriverError:
        """An SFTP refusal (missing file, permission) is an access error; anything else stays
        a connection error (retried later)."""
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOENT, errno.EACCES, errno.EROFS):
            return _access_error(name, self._where, cause, writing)
        if isinstance(cause, (FileNotFoundError, PermissionError)):
            return _access_error(name, self._where, cause, writing)
        return exc
