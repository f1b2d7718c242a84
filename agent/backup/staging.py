"""Where decrypted backup content may exist, and for how long: only in one private folder of
the state directory (`staging/`, mode 0700), removed when the operation ends however it
ends, and emptied at the next start after a crash.

A restore into a target folder builds the tree beside the target (so that it is renamed into
place in one step on the same file system): that folder's path is recorded in `staging/`
(written and fsynced) before it is created, so the next start removes it too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

BESIDE_PREFIX = ".pbx-agent-restore-"
RECORD_SUFFIX = ".beside"  # a record: the path of a folder built beside a restore target


class Staging:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _prepare(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_mode & 0o077:
            self.root.chmod(0o700)

    @contextlib.contextmanager
    def scratch(self, purpose: str) -> Iterator[Path]:
        """A new private folder for one operation, removed at the end."""
        self._prepare()
        folder = Path(tempfile.mkdtemp(prefix=f"{purpose}-", dir=self.root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def beside(self, target: Path) -> Iterator[Path]:
        """A new private folder beside `target`, recorded first; removed at the end unless it
        was renamed into place."""
        self._prepare()
        record = self.root / f"{secrets.token_hex(8)}{RECORD_SUFFIX}"
        folder = target.parent / f"{BESIDE_PREFIX}{secrets.token_hex(8)}"
        _write_synced(record, str(folder.absolute()))
        try:
            folder.mkdir(mode=0o700)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            record.unlink(missing_ok=True)

    def clean(self) -> list[str]:
        """At start: remove the recorded folders beside restore targets, then everything in
        `staging/`; what was removed (for one log line)."""
        if not self.root.is_dir():
            return []
        self._prepare()
        removed = []
        for record in sorted(self.root.glob(f"*{RECORD_SUFFIX}")):
            try:
                folder = Path(record.read_text().strip())
            except (OSError, UnicodeDecodeError):
                folder = None
            if (
                folder is not None
                and folder.is_absolute()
                and folder.name.startswith(BESIDE_PREFIX)
                and folder.is_dir()
                and not folder.is_symlink()
            ):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
            record.unlink(missing_ok=True)
        for leftover in self.root.iterdir():
            removed.append(str(leftover))
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if removed:
            log.warning("plaintext left by an interrupted restore or verify removed", paths=removed)
        return removed


def _write_synced(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
