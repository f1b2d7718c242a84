"""A small, real file system for the archive host's folder: a tmpfs mounted for the test (so
needs root; tests skip with that reason otherwise), which the test fills up (the disk is
full: ENOSPC), remounts read-only (EROFS) and gives back."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

FILLER = ".other-sites-data"  # what fills the disk: not this site's, never touched by the agent


class ArchiveDisk:
    def __init__(self, mountpoint: Path, size: str = "2m") -> None:
        self.path = mountpoint
        self.size = size

    def mount(self) -> ArchiveDisk:
        if os.geteuid() != 0:
            pytest.skip("a real full / read-only archive disk needs a tmpfs mount: run as root")
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for the archive disk: {done.stderr.strip()}")
        return self

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)

    def fill(self) -> None:
        """Write until the file system refuses (ENOSPC)."""
        with (self.path / FILLER).open("ab") as filler:
            chunk = b"\0" * 65536
            try:
                while True:
                    filler.write(chunk)
                    filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        # Single pages too, so not even a small archive fits.
        with (self.path / FILLER).open("ab", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 512)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def archives(self) -> set[str]:
        """This site's archives as the disk holds them (read directly, not over SFTP)."""
        return {p.name for p in self.path.iterdir() if p.name.endswith(".tar.zst.age")}
