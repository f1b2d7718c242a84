"""SFTP to a remote host (paramiko) with the host key pinned: the PBX as a backup source, and
the session the archive host and restores use.

paramiko is blocking: use this from a worker thread. Its errors are translated here; an
unknown or changed host key is refused (never auto-accepted) with the offered fingerprint and
how to pin it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import posixpath
import shlex
import socket
import stat
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Self, cast

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_INIT, CMD_VERSION, CMD_WRITE, SFTPError, int64

from drivers.errors import DriverAuthError, DriverConnectionError, DriverError, DriverTimeout
from drivers.models import BackupFile


class HostKeyRefused(DriverConnectionError):
    """The SSH server's host key is not the pinned one (or none is pinned)."""

    def __init__(self, message: str, *, host: str, port: int, key: paramiko.PKey) -> None:
        self.host, self.port, self.key = host, port, key
        super().__init__(message)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Refuse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        raise _Unknown(hostname, key)


class _Unknown(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        self.hostname, self.key = hostname, key


@dataclass
class SftpSettings:
    host: str
    port: int
    username: str
    key_file: Path
    known_hosts: Path
    root: str = "/etc/asterisk"
    excludes: Sequence[str] = field(default_factory=tuple)
    timeout: float = 15.0
    role: str = "the PBX"  # who the host is, in messages
    pin_command: str = "pbx-agent backup pin-host-key"  # how its host key is pinned


@dataclass(frozen=True, slots=True)
class RemoteSpace:
    """A remote file system's size, as `statvfs@openssh.com` reports it."""

    total: int
    free: int  # bytes available to an unprivileged writer
    read_only: bool


WRITE_CHUNK = 32 * 1024  # the largest SFTP write request servers must accept
WRITE_WINDOW = 64  # write requests in flight at once (2 MiB)


class SftpClient(paramiko.SFTPClient):  # type: ignore[misc]
    """paramiko's SFTP client, also keeping the extensions the server offers in its VERSION
    packet (paramiko drops them), so `fsync@openssh.com` and `statvfs@openssh.com` are used
    only where offered, and writing with every request's status checked."""

    extensions: dict[str, bytes]

    def _send_version(self) -> int:
        # paramiko's own handshake (BaseSFTP._send_version), keeping the extension pairs.
        init = paramiko.Message()
        init.add_int(3)
        self._send_packet(CMD_INIT, init)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        self.extensions = {}
        pairs = paramiko.Message(data[4:])
        try:
            while pairs.get_remainder():
                name = pairs.get_text()
                self.extensions[name] = pairs.get_binary()
        except Exception:  # a malformed list: treated as offering nothing more
            pass
        return int(struct.unpack(">I", data[:4])[0])

    def offers(self, extension: str) -> bool:
        return extension in self.extensions

    def statvfs(self, path: str) -> RemoteSpace | None:
        """The file system holding `path`, or None when the server does not say."""
        if not self.offers("statvfs@openssh.com"):
            return None
        _, reply = self._request(CMD_EXTENDED, "statvfs@openssh.com", path)
        _bsize, frsize, blocks, _bfree, bavail = (reply.get_int64() for _ in range(5))
        for _ in range(4):  # files, ffree, favail, fsid
            reply.get_int64()
        flags = reply.get_int64()
        return RemoteSpace(blocks * frsize, bavail * frsize, bool(flags & 1))

    def write_stream(self, path: str, source: BinaryIO) -> tuple[int, bool]:
        """Create `path` with `source`'s bytes, then fsync it where the server offers
        `fsync@openssh.com`; (bytes written, fsynced). Requests are pipelined and every
        status is read: paramiko's pipelined writes drop failed statuses, which turns a full
        disk into a later "size mismatch". Raises OSError as the server reports it."""
        remote = self.open(path, "wb")
        try:
            pending: deque[int] = deque()
            offset = 0
            while chunk := source.read(WRITE_CHUNK):
                pending.append(
                    self._async_request(
                        type(None), CMD_WRITE, remote.handle, int64(offset), chunk
                    )
                )
                offset += len(chunk)
                if len(pending) >= WRITE_WINDOW:
                    self._read_response(pending.popleft())
            while pending:
                self._read_response(pending.popleft())
            fsynced = self.offers("fsync@openssh.com")
            if fsynced:
                try:
                    self._request(CMD_EXTENDED, "fsync@openssh.com", remote.handle)
                except PermissionError:  # offered, but this account may not (sftp-server -P)
                    fsynced = False
        finally:
            remote.close()
        return offset, fsynced


def open_sftp(s: SftpSettings) -> tuple[paramiko.SSHClient, SftpClient]:
    """An SFTP session to `s.host`, its host key checked against the pinned file."""
    client, session = _open(s, sftp=True)
    assert session is not None
    return client, session


def open_ssh(s: SftpSettings) -> paramiko.SSHClient:
    """An SSH session to `s.host` (for commands), its host key checked as for SFTP."""
    return _open(s, sftp=False)[0]


def _open(s: SftpSettings, *, sftp: bool) -> tuple[paramiko.SSHClient, SftpClient | None]:
    where = f"{s.username}@{s.host}:{s.port}"
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(s.known_hosts))
    except FileNotFoundError:
        pass  # nothing pinned yet: every key is unknown, hence refused
    except Exception as exc:  # paramiko raises several unrelated types for a damaged file
        raise DriverError(f"cannot read pinned host keys {s.known_hosts}: {exc}") from exc
    client.set_missing_host_key_policy(_Refuse())
    try:
        pkey = paramiko.PKey.from_path(str(s.key_file))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DriverError(f"cannot use the SSH key {s.key_file}: {reason}") from exc
    try:
        client.connect(
            s.host,
            s.port,
            username=s.username,
            pkey=pkey,
            timeout=s.timeout,
            banner_timeout=s.timeout,
            auth_timeout=s.timeout,
            channel_timeout=s.timeout,
            allow_agent=False,
            look_for_keys=False,
        )
        session = SftpClient.from_transport(client.get_transport()) if sftp else None
        if session is not None:
            session.get_channel().settimeout(s.timeout)
    except _Unknown as exc:
        client.close()
        raise HostKeyRefused(
            f"{where}: host key {exc.key.get_name()} {fingerprint(exc.key)} is not pinned "
            f"in {s.known_hosts}; check it with {s.role}'s administrator, then pin it with "
            f"`{s.pin_command}`",
            host=s.host,
            port=s.port,
            key=exc.key,
        ) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyRefused(
            f"{where}: HOST KEY CHANGED: offered {exc.key.get_name()} {fingerprint(exc.key)}, "
            f"pinned {fingerprint(exc.expected_key)}. This can be an attack; if {s.role} was "
            f"reinstalled, pin the new key with `{s.pin_command}`",
            host=s.host,
            port=s.port,
            key=exc.key,
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        raise DriverAuthError(f"{where}: SSH login refused: {exc}") from exc
    except TimeoutError as exc:
        client.close()
        raise DriverTimeout(f"{where}: no SSH answer within {s.timeout:g} s") from exc
    except (OSError, paramiko.SSHException, ValueError) as exc:
        client.close()
        raise DriverConnectionError(f"{where}: SSH failed: {exc}") from exc
    return client, session


def remote_disk_free(s: SftpSettings, path: str) -> tuple[int, int]:
    """(total, available) bytes of the filesystem holding `path` on the SSH host (`df -Pk`)."""
    client = open_ssh(s)
    try:
        _, stdout, _ = client.exec_command(f"df -Pk -- {shlex.quote(path)}", timeout=s.timeout)
        lines = stdout.read(64 * 1024).decode(errors="replace").splitlines()
    except (OSError, paramiko.SSHException) as exc:
        raise DriverConnectionError(f"df over SSH failed: {exc}") from exc
    finally:
        client.close()
    try:
        fields = lines[-1].split()
        return int(fields[1]) * 1024, int(fields[3]) * 1024
    except (IndexError, ValueError) as exc:
        raise DriverError(f"unexpected df output: {lines[-1:]!r}") from exc


class SftpSource:
    """`with SftpSource(settings) as source:` lists and opens files under `settings.root`."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.skipped: list[str] = []
        self._client: paramiko.SSHClient | None = None
        self._sftp: SftpClient | None = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def connect(self) -> None:
        self._client, self._sftp = open_sftp(self.settings)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    def _walk(self, directory: str) -> Iterator[tuple[str, paramiko.SFTPAttributes]]:
        assert self._sftp is not None
        for entry in sorted(self._sftp.listdir_attr(directory), key=lambda a: a.filename):
            yield posixpath.join(directory, entry.filename), entry

    def files(self) -> Iterator[BackupFile]:
        if self._sftp is None:
            raise DriverConnectionError("SFTP source used before connect()")
        root = self.settings.root.rstrip("/") or "/"
        stack = [root]
        try:
            while stack:
                directory = stack.pop()
                subdirs = []
                for path, attrs in self._walk(directory):
                    relative = posixpath.relpath(path, root)
                    if any(fnmatch.fnmatch(relative, p) for p in self.settings.excludes):
                        continue
                    mode = attrs.st_mode or 0
                    if stat.S_ISDIR(mode):
                        subdirs.append(path)
                    elif stat.S_ISREG(mode):
                        yield BackupFile(
                            relative,
                            attrs.st_size or 0,
                            stat.S_IMODE(mode),
                            float(attrs.st_mtime or 0),
                        )
                    else:
                        self.skipped.append(relative)
                stack.extend(reversed(subdirs))
        except (OSError, paramiko.SSHException) as exc:
            raise DriverConnectionError(f"SFTP listing of {root} failed: {exc}") from exc

    def open(self, path: str) -> BinaryIO:
        if self._sftp is None:
            raise DriverConnectionError("SFTP source used before connect()")
        full = posixpath.normpath(posixpath.join(self.settings.root, path))
        if not full.startswith(self.settings.root.rstrip("/") + "/"):
            raise DriverError(f"backup path {path!r} escapes {self.settings.root}")
        try:
            remote = self._sftp.open(full, "rb")
            remote.prefetch()
        except (OSError, paramiko.SSHException) as exc:
            raise DriverConnectionError(f"SFTP cannot open {full}: {exc}") from exc
        return cast(BinaryIO, remote)


def fetch_host_key(host: str, port: int, timeout: float) -> paramiko.PKey:
    """The key an SSH server offers, without logging in (for pinning after confirmation)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise DriverConnectionError(f"cannot reach SSH at {host}:{port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return cast(paramiko.PKey, transport.get_remote_server_key())
    except (OSError, paramiko.SSHException) as exc:
        raise DriverConnectionError(f"SSH handshake with {host}:{port} failed: {exc}") from exc
    finally:
        transport.close()


def pin_host_key(known_hosts: Path, host: str, port: int, key: paramiko.PKey) -> None:
    """Add (or replace) the host's key in the pinned known_hosts file (0600)."""
    keys = paramiko.HostKeys()
    if known_hosts.exists():
        keys.load(str(known_hosts))
    name = known_hosts_name(host, port)
    if name in keys:
        del keys[name]
    keys.add(name, key.get_name(), key)
    known_hosts.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    keys.save(str(known_hosts))
    known_hosts.chmod(0o600)
