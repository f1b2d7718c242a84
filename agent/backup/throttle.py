"""A backup that reads the PBX's files at a limited rate (`backup.read_mb_per_second`): a PBX
that records calls or plays music on hold from the same disk, or whose files come over a
thin link (SFTP), keeps its bandwidth while a big folder (recordings, sound files) is backed
up. The rate is kept over the whole backup, not per file: reading runs ahead by at most
`BURST` seconds' worth and then waits.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from drivers.backup_source import BackupSource
from drivers.models import BackupFile

BURST = 0.25  # seconds of reading allowed ahead of the rate (a 1 MiB piece never waits alone)


class ReadBudget:
    """The bytes read so far against the bytes the rate allows since the budget was made
    (as the backup starts); a read that is ahead waits (in the backup's worker thread,
    never on the event loop)."""

    def __init__(
        self,
        bytes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a read limit must be positive")
        self.rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._started = clock()
        self._read = 0

    def spend(self, nbytes: int) -> None:
        now = self._clock()
        self._read += nbytes
        ahead = self._started + self._read / self.rate - now
        if ahead > BURST:
            self._sleep(ahead - BURST)


class ThrottledSource:
    """`source`, its files read within `budget`."""

    def __init__(self, source: BackupSource, budget: ReadBudget) -> None:
        self._source = source
        self._budget = budget

    def files(self) -> Iterator[BackupFile]:
        return self._source.files()

    def open(self, path: str) -> BinaryIO:
        return cast(BinaryIO, _ThrottledReader(self._source.open(path), self._budget))


class _ThrottledReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO, budget: ReadBudget) -> None:
        super().__init__()
        self._raw = raw
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self._budget.spend(size)
        return size

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
