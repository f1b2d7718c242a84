"""`backup.read_mb_per_second`: the PBX's files are read no faster than the limit over the
whole backup (a burst of a quarter second allowed), byte for byte the same content."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from agent.backup.throttle import BURST, ReadBudget, ThrottledSource
from drivers.models import BackupFile


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MemorySource:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.content = files

    def files(self) -> Iterator[BackupFile]:
        for path, data in sorted(self.content.items()):
            yield BackupFile(path, len(data), 0o640, 0.0)

    def open(self, path: str) -> BinaryIO:
        return io.BytesIO(self.content[path])


def test_reading_keeps_to_the_rate_across_files_and_content_is_unchanged() -> None:
    time = FakeTime()
    mb = 1_000_000
    files = {"a.wav": bytes(range(256)) * 20_000, "b.wav": b"x" * 3 * mb, "c.conf": b"[x]\n"}
    source = ThrottledSource(MemorySource(files), ReadBudget(2 * mb, time.clock, time.sleep))
    read = {}
    for item in source.files():
        with source.open(item.path) as fh:
            pieces = []
            while piece := fh.read(1 << 20):
                pieces.append(piece)
            read[item.path] = b"".join(pieces)
    assert read == files
    total = sum(map(len, files.values()))
    # 8.12 MB at 2 MB/s: about 4 s, less the burst the first reads may take at once.
    assert total / (2 * mb) - BURST - 0.01 <= time.now - 100.0 <= total / (2 * mb)
    assert time.slept, "the reads were held back"


def test_a_slow_source_is_never_held_back() -> None:
    time = FakeTime()
    budget = ReadBudget(1_000_000, time.clock, time.sleep)
    for _ in range(5):
        time.now += 1.0  # the source itself gives 0.5 MB/s, under the limit
        budget.spend(500_000)
    assert time.slept == []
