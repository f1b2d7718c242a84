"""Progress of a long operation (a backup, a verify, a restore): the code doing the work
reports files and bytes through a callback, from whatever thread it runs in; whoever follows
the operation (the control socket, streaming to the CLI) reads snapshots.

A phase names what is being done now ("reading the PBX's files", "decrypting") and may know
its totals, exactly (a verify knows the archive's size) or as an estimate (a backup expects
about as many files as the last one held).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# What the worker code is given: advance(files, nbytes). It knows nothing else.
ProgressCallback = Callable[[int, int], None]


class Progress:
    """Counters for one operation; `advance` may be called from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = self._phase_started = clock()
        self._phase = "starting"
        self._files = self._bytes = 0
        self._files_total: int | None = None
        self._bytes_total: int | None = None
        self._estimated = False
        self.version = 0  # bumped by every change, so a follower sends only what is new

    def phase(
        self,
        name: str,
        *,
        files: int | None = None,
        nbytes: int | None = None,
        estimated: bool = False,
    ) -> None:
        """Start a phase: counters back to zero, with its totals when known."""
        with self._lock:
            self._phase, self._phase_started = name, self._clock()
            self._files = self._bytes = 0
            self._files_total, self._bytes_total = files, nbytes
            self._estimated = estimated
            self.version += 1

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """`files` more files and `nbytes` more bytes done (the worker's callback)."""
        with self._lock:
            self._files += files
            self._bytes += nbytes
            self.version += 1

    def snapshot(self) -> dict[str, Any]:
        """The state now, as sent to followers (JSON-ready)."""
        with self._lock:
            now = self._clock()
            return {
                "phase": self._phase,
                "files": self._files,
                "files_total": self._files_total,
                "bytes": self._bytes,
                "bytes_total": self._bytes_total,
                "estimated": self._estimated,
                "phase_seconds": round(now - self._phase_started, 3),
                "elapsed": round(now - self._started, 3),
            }


def callback(progress: Progress | None) -> ProgressCallback | None:
    """The callback to hand to worker code, or None when nobody follows."""
    return None if progress is None else progress.advance


class CountingReader:
    """A binary stream read through, each read's bytes reported to `progress` (e.g. the
    ciphertext as it is decrypted); the readers it feeds only call `read(n)`."""

    def __init__(self, raw: Any, progress: ProgressCallback | None) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._raw.read(size)
        if self._progress is not None and data:
            self._progress(0, len(data))
        return data
