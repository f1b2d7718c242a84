"""The PBX's configuration folder as files the agent may read and replace: on the local disk
when the agent runs on the PBX host, or over SFTP (pinned host key). Blocking: use from a
worker thread. A write goes to a hidden temp file beside the target and is renamed over it,
keeping the file's mode, so the PBX never reads a half-written file."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Protocol

from drivers.errors import DriverError
from drivers.sftp_source import SftpSettings
from drivers.sftp_target import SftpTarget

MAX_CONFIG_BYTES = 8 * 1024 * 1024


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
        return (self.root / _plain_name(name)).read_text(encoding="utf-8")

    def write_text(self, name: str, text: str) -> None:
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

    def read_text(self, name: str) -> str:
        with SftpTarget(self.settings) as target:
            data = target.read(_plain_name(name), MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise DriverError(f"{name} is larger than {MAX_CONFIG_BYTES} bytes")
        return data.decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        with SftpTarget(self.settings) as target:
            mode = target.sftp.stat(target.full_path(_plain_name(name))).st_mode or 0o640
            target.write(name, io.BytesIO(text.encode("utf-8")), mode)
