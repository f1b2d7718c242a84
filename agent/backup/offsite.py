"""The reseller's archive host over SFTP (host key pinned): list this site's copies, upload one,
delete one, and say how much room there is.

An upload goes to a hidden temp name with every write request's status checked, is fsynced
where the server offers `fsync@openssh.com`, is read back and hashed, and only then renamed
into place: a copy under its final name is always a verified one. Every failure is an
`OffsiteError` whose message names the cause (host down, host key, login, folder missing,
disk full, read-only, permission denied), never the SFTP library's own text.

Blocking (paramiko): call from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

import paramiko

from agent.errors import BackupError
from drivers.errors import DriverAuthError, DriverConnectionError, DriverError, DriverTimeout
from drivers.sftp_source import HostKeyRefused, RemoteSpace, SftpClient, SftpSettings
from drivers.sftp_target import SftpTarget

ARCHIVE_NAME = re.compile(r"^(\d{8}T\d{12}Z)\.tar\.zst\.age$")
PARTIAL_NAME = re.compile(r"^\.(\d{8}T\d{12}Z\.tar\.zst\.age)\.partial$")
PROBE_NAME = ".pbx-agent-probe"
READ_CHUNK = 1024 * 1024

Cause = Literal[
    "down", "host_key", "login", "local", "missing_folder", "disk_full", "read_only",
    "permission", "damaged", "refused",
]  # fmt: skip


class OffsiteError(BackupError):
    """The archive host could not be reached, or refused an operation; `cause` says why."""

    def __init__(self, cause: Cause, message: str) -> None:
        self.cause = cause
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Listing:
    """What the archive host's folder holds of this site: archive name -> size in bytes."""

    copies: dict[str, int] = field(default_factory=dict)
    partials: list[str] = field(default_factory=list)  # interrupted uploads (temp names)


@dataclass(frozen=True, slots=True)
class Uploaded:
    size: int
    sha256: str  # of the bytes read back from the archive host
    fsynced: bool  # False where the server does not offer fsync@openssh.com


class ArchiveHost:
    """`with ArchiveHost(settings) as host:` one SFTP session; `settings.root` is the folder."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self._session = SftpTarget(settings)

    def __enter__(self) -> Self:
        try:
            self._session.connect()
        except DriverError as exc:
            raise self._unreachable(exc) from exc
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def sftp(self) -> SftpClient:
        return self._session.sftp

    def _path(self, name: str) -> str:
        return posixpath.join(self.settings.root, name)

    # -- operations ------------------------------------------------------------------------

    def listing(self) -> Listing:
        try:
            entries = self.sftp.listdir_attr(self.settings.root)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._failed(exc, "list") from exc
        copies: dict[str, int] = {}
        partials: list[str] = []
        for entry in entries:
            if not stat.S_ISREG(entry.st_mode or 0):
                continue
            if ARCHIVE_NAME.match(entry.filename):
                copies[entry.filename] = int(entry.st_size or 0)
            elif PARTIAL_NAME.match(entry.filename):
                partials.append(entry.filename)
        return Listing(copies, sorted(partials))

    def upload(self, local: Path, sha256: str) -> Uploaded:
        """Copy `local` under its own name; it is renamed into place only once the bytes
        read back from the archive host hash to `sha256`."""
        final, partial = self._path(local.name), self._path(f".{local.name}.partial")
        try:
            source = local.open("rb")
            size = os.fstat(source.fileno()).st_size
        except OSError as exc:
            message = f"cannot read {local} for the off-site copy: {exc.strerror}"
            raise OffsiteError("local", message) from exc
        try:
            with source:
                written, fsynced = self.sftp.write_stream(partial, source)
            landed = self.sftp.stat(partial).st_size
            if written != size or landed != size:
                raise OffsiteError(
                    "damaged",
                    f"the archive host kept {landed} of the {size} bytes of {local.name}",
                )
            digest = self._sha256(partial)
            if digest != sha256:
                raise OffsiteError(
                    "damaged",
                    f"{local.name} read back from the archive host differs from the backup "
                    "(SHA-256): the copy was discarded",
                )
            if self.sftp.offers("posix-rename@openssh.com"):
                self.sftp.posix_rename(partial, final)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.sftp.remove(final)
                self.sftp.rename(partial, final)
        except OffsiteError:
            self._discard(partial)
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            error = self._failed(exc, "write", local.name, needed=size)
            self._discard(partial)
            raise error from exc
        return Uploaded(size, digest, fsynced)

    def delete(self, name: str) -> None:
        """Remove one file of this site's (already gone counts as done)."""
        try:
            self.sftp.remove(self._path(name))
        except FileNotFoundError:
            pass
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._failed(exc, "delete", name) from exc

    def space(self) -> RemoteSpace | None:
        """The archive folder's file system, where the server reports it (statvfs)."""
        try:
            return self.sftp.statvfs(self.settings.root)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._failed(exc, "measure") from exc

    def probe_write(self) -> bool:
        """Write, fsync and remove a small file (for `diag`); True when fsync was offered."""
        path = self._path(PROBE_NAME)
        try:
            _, fsynced = self.sftp.write_stream(path, io.BytesIO(b"pbx-agent write probe\n"))
            self.sftp.remove(path)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            error = self._failed(exc, "write", PROBE_NAME, needed=1)
            self._discard(path)
            raise error from exc
        return fsynced

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.sftp.open(path, "rb") as remote:
            remote.prefetch()
            while chunk := remote.read(READ_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _discard(self, path: str) -> None:
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError, DriverError):
            self.sftp.remove(path)

    # -- naming the cause ------------------------------------------------------------------

    def _where(self) -> str:
        s = self.settings
        return f"the archive host {s.host}:{s.port}"

    def _unreachable(self, exc: DriverError) -> OffsiteError:
        s = self.settings
        if isinstance(exc, HostKeyRefused):
            return OffsiteError("host_key", str(exc))
        if isinstance(exc, DriverAuthError):
            return OffsiteError(
                "login",
                f"{self._where()} refused the login of {s.username!r} with the key "
                f"{s.key_file} (is its public key in the account's authorized_keys?)",
            )
        if isinstance(exc, DriverTimeout):
            return OffsiteError(
                "down", f"{self._where()} is down or unreachable: no answer within {s.timeout:g} s"
            )
        if isinstance(exc, DriverConnectionError):
            return OffsiteError("down", f"{self._where()} is down or unreachable: {_why(exc)}")
        return OffsiteError("local", f"{self._where()} not tried: {exc}")  # our key, our pins

    def _failed(
        self, exc: BaseException, action: str, name: str = "", needed: int = 0
    ) -> OffsiteError:
        """Translate an SFTP failure: the server's status says little (OpenSSH reports a full
        disk and a read-only file system both as "Failure"), so the file system is asked."""
        folder = self.settings.root
        what = f"{action} {name}".strip()
        if isinstance(exc, (paramiko.SSHException, EOFError, TimeoutError, ConnectionError)):
            return OffsiteError("down", f"{self._where()} stopped answering during {what}")
        if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
            return OffsiteError(
                "permission",
                f"permission denied on the archive host: cannot {what} in {folder} "
                f"(account {self.settings.username!r})",
            )
        if isinstance(exc, FileNotFoundError) and action in ("list", "write"):
            return OffsiteError(
                "missing_folder", f"the folder {folder} does not exist on the archive host"
            )
        space = None
        with contextlib.suppress(OSError, paramiko.SSHException, EOFError, DriverError):
            space = self.sftp.statvfs(folder)
        if space is not None and space.read_only:
            return OffsiteError(
                "read_only", f"the archive host's file system holding {folder} is read-only"
            )
        if space is not None and needed and space.free < needed:
            return OffsiteError(
                "disk_full",
                f"the archive host's disk is full: {space.free} bytes free in {folder}, "
                f"{needed} needed",
            )
        return OffsiteError(
            "refused",
            f"the archive host refused to {what} in {folder} without saying why "
            "(a quota, or a server-side error; its logs tell)",
        )


def _why(exc: BaseException) -> str:
    """A short reason for a failed connection, from the OS error underneath."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, paramiko.ssh_exception.NoValidConnectionsError):
            # paramiko's summary of one failed connect per address; the first one says why
            cause = next(iter(cause.errors.values()), None)
            continue
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__
    return "the SSH session could not be set up"
