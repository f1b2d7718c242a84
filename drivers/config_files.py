"""The PBX's configuration folder as files the agent may read and replace: on the local disk
when the agent runs on the PBX host, or over SFTP (pinned host key). Blocking: use from a
worker thread. A write goes to a hidden temp file beside the target and is renamed over it,
keeping the file's mode, so the PBX never reads a half-written file.

What the agent needs: read and write of the files it switches features in (and write of the
folder, for the temp file beside them). A missing file, a permission refused or a read-only
file system is a `ConfigAccessError` that names the file and what to do.

Names are relative to the folder: a plain file name (Asterisk keeps one flat folder) or, for
PBXs whose configuration is a tree (FreeSWITCH), a relative path such as
``directory/bayside.example.xml``; never absolute, never ``..``, never a hidden part. Creating
and removing a file and listing a folder are for the agent's own files in such a tree."""

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
            "its unit needs ReadWritePaths= for that folder (the shipped unit has "
            "ReadWritePaths=-/etc/asterisk and ReadWritePaths=-/etc/freeswitch)"
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

    def create_text(self, name: str, text: str) -> None:
        """Write a new file (mode 0644: the agent's files hold no secret) atomically; an
        existing file is replaced, keeping its mode."""

    def remove(self, name: str) -> None:
        """Delete the file; a file already gone is no error."""

    def list_names(self, folder: str) -> list[str]:
        """The names in `folder` ("" = the top), sorted; a missing folder lists nothing."""


NEW_FILE_MODE = 0o644
ENCODING, ERRORS = "utf-8", "surrogateescape"  # any byte read is written back unchanged


def _plain_name(name: str) -> str:
    parts = name.split("/")
    if not name or any(not part or part.startswith(".") for part in parts):
        raise DriverError(f"config file name {name!r} is not a plain relative name")
    return name


class LocalConfigFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read_text(self, name: str) -> str:
        try:
            # Bytes kept as they are (CRLF, non-UTF-8): undoing a change is byte-exact.
            path = self.root / _plain_name(name)
            with path.open(encoding=ENCODING, errors=ERRORS, newline="") as f:
                return f.read()
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=False) from exc

    def write_text(self, name: str, text: str) -> None:
        try:
            self._write(name, text)
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=True) from exc

    def create_text(self, name: str, text: str) -> None:
        try:
            self._write(name, text, create=True)
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=True) from exc

    def remove(self, name: str) -> None:
        target = self.root / _plain_name(name)
        try:
            target.unlink(missing_ok=True)
            self._sync_folder(target.parent)
        except OSError as exc:
            raise _access_error(name, str(self.root), exc, writing=True) from exc

    def list_names(self, folder: str) -> list[str]:
        where = self.root / _plain_name(folder) if folder else self.root
        try:
            return sorted(p.name for p in where.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _access_error(folder or ".", str(self.root), exc, writing=False) from exc

    def _write(self, name: str, text: str, *, create: bool = False) -> None:
        target = self.root / _plain_name(name)
        try:
            info: os.stat_result | None = target.stat()
        except FileNotFoundError:
            if not create:
                raise
            info = None
        mode = stat.S_IMODE(info.st_mode) if info is not None else NEW_FILE_MODE
        partial = target.with_name(f".{target.name}.pbx-agent-partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "w", encoding=ENCODING, errors=ERRORS, newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(partial, mode)
            if os.geteuid() == 0 and info is not None:
                os.chown(partial, info.st_uid, info.st_gid)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self._sync_folder(target.parent)

    @staticmethod
    def _sync_folder(folder: Path) -> None:
        directory = os.open(folder, os.O_RDONLY)
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
        return data.decode(ENCODING, ERRORS)

    def write_text(self, name: str, text: str) -> None:
        try:
            with SftpTarget(self.settings) as target:
                try:
                    mode = target.sftp.stat(target.full_path(_plain_name(name))).st_mode
                except OSError as exc:
                    raise _access_error(name, self._where, exc, writing=True) from exc
                target.write(name, io.BytesIO(text.encode(ENCODING, ERRORS)), mode or 0o640)
        except DriverConnectionError as exc:
            raise self._translated(name, exc, writing=True) from exc

    def create_text(self, name: str, text: str) -> None:
        try:
            with SftpTarget(self.settings) as target:
                data = io.BytesIO(text.encode(ENCODING, ERRORS))
                target.write(_plain_name(name), data, NEW_FILE_MODE)
        except DriverConnectionError as exc:
            raise self._translated(name, exc, writing=True) from exc

    def remove(self, name: str) -> None:
        try:
            with SftpTarget(self.settings) as target:
                try:
                    target.sftp.remove(target.full_path(_plain_name(name)))
                except FileNotFoundError:
                    return
                except OSError as exc:
                    raise _access_error(name, self._where, exc, writing=True) from exc
        except DriverConnectionError as exc:
            raise self._translated(name, exc, writing=True) from exc

    def list_names(self, folder: str) -> list[str]:
        try:
            with SftpTarget(self.settings) as target:
                path = target.full_path(_plain_name(folder)) if folder else self.settings.root
                try:
                    return sorted(target.sftp.listdir(path))
                except (FileNotFoundError, NotADirectoryError):
                    return []
                except OSError as exc:
                    raise _access_error(folder or ".", self._where, exc, writing=False) from exc
        except DriverConnectionError as exc:
            raise self._translated(folder or ".", exc, writing=False) from exc

    def _translated(self, name: str, exc: DriverConnectionError, writing: bool) -> DriverError:
        """An SFTP refusal (missing file, permission) is an access error; anything else stays
        a connection error (retried later)."""
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno in (errno.ENOENT, errno.EACCES, errno.EROFS):
            return _access_error(name, self._where, cause, writing)
        if isinstance(cause, (FileNotFoundError, PermissionError)):
            return _access_error(name, self._where, cause, writing)
        return exc
