"""The off-site copy: archives uploaded to the reseller's archive host over SFTP (host key
pinned), atomically (upload under a temp name, then rename), and pruned there by the same
retention as locally."""

from __future__ import annotations

import contextlib
import posixpath
from pathlib import Path

import paramiko

from drivers.errors import DriverConnectionError
from drivers.sftp_source import SftpSettings, open_sftp


class OffsiteArchive:
    """Blocking (paramiko): call from a worker thread. `settings.root` is the remote folder."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings

    def upload(self, local: Path) -> None:
        client, sftp = open_sftp(self.settings)
        remote_dir = self.settings.root
        final = posixpath.join(remote_dir, local.name)
        partial = posixpath.join(remote_dir, f".{local.name}.partial")
        try:
            sftp.put(str(local), partial, confirm=True)
            with contextlib.suppress(OSError):
                sftp.remove(final)  # a retried copy replaces an earlier one
            sftp.posix_rename(partial, final)
        except (OSError, paramiko.SSHException) as exc:
            with contextlib.suppress(OSError, paramiko.SSHException):
                sftp.remove(partial)
            raise DriverConnectionError(f"off-site upload of {local.name} failed: {exc}") from exc
        finally:
            client.close()

    def delete(self, name: str) -> None:
        client, sftp = open_sftp(self.settings)
        try:
            sftp.remove(posixpath.join(self.settings.root, name))
        except FileNotFoundError:
            pass
        except (OSError, paramiko.SSHException) as exc:
            raise DriverConnectionError(f"off-site delete of {name} failed: {exc}") from exc
        finally:
            client.close()
