"""The hand-offs of the archive pipeline (`agent.backup.archive`): what pyrage reads from
(`PullReader`), where its output goes (`FileSink`: hashed and written by a thread of its
own), and the thread that hashes the reads of big files (`Hasher`). The threads do only
work that releases the GIL (hashing, writing), and take it over in 1 MiB pieces.

`CHUNK` is the size of those pieces.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

CHUNK = 1024 * 1024


class Hasher:
    """Hashes the reads of big files in a thread of its own ("backup-hash"; hashlib releases
    the GIL), so that hashing one MiB overlaps reading, framing and compressing the next.
    (A small file is better hashed in place: the hand-over would cost more than its hash.)"""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[hashlib._Hash, bytes] | None] = queue.Queue(4)
        self._thread = threading.Thread(target=self._run, name="backup-hash", daemon=True)
        self._failure: BaseException | None = None

    def __enter__(self) -> Hasher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()

    def update(self, digest: hashlib._Hash) -> Callable[[bytes], None]:
        """What `digest.update` would be, done in the thread (in order: one queue)."""
        return lambda data: self._queue.put((digest, data))

    def wait(self) -> None:
        """Until every update handed over is done."""
        self._queue.join()
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if self._failure is None:
                    job[0].update(job[1])
            except BaseException as exc:
                self._failure = exc
            finally:
                self._queue.task_done()


class PullReader(io.RawIOBase):
    """What pyrage's `encrypt_io` reads: the chunks of an iterator, behind a `BufferedReader`
    (`buffered`) that serves pyrage's 8 KiB reads in C and calls `readinto` once a chunk.

    pyrage turns an exception raised while reading into an `EncryptError` carrying only its
    text, and a generator that raised is exhausted, so it would look like a clean end of
    input: the exception is kept in `failure` and raised again on every later read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._view = memoryview(b"")
        self.failure: BaseException | None = None
        self.buffered = io.BufferedReader(self, CHUNK)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        if self.failure is not None:
            raise self.failure
        while not self._view:
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.failure = exc
                raise
            if chunk is None:
                return 0
            self._view = memoryview(chunk)
        size = min(len(buffer), len(self._view))
        buffer[:size] = self._view[:size]
        self._view = self._view[size:]
        return size


class FileSink:
    """The encrypted output (pyrage writes 64 KiB at a time), gathered into CHUNK-sized
    buffers that a thread of its own ("backup-write") hashes and writes to the temp file:
    both release the GIL, so they overlap the encryption rather than follow it. At most
    `DEPTH` buffers wait; the buffers are reused (a fresh or growing one per MiB costs page
    faults and copies).

    A failed write is kept in `failure` and raised at the next `write` and by `close`."""

    DEPTH = 4

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue(self.DEPTH)
        self._empty: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._buffer = bytearray(CHUNK)
        self._used = 0
        self._thread = threading.Thread(target=self._drain, name="backup-write", daemon=True)
        self._thread.start()
        self.digest = hashlib.sha256()
        self.count = 0
        self.failure: BaseException | None = None

    def write(self, data: bytes) -> int:
        if self.failure is not None:
            raise self.failure
        size = len(data)
        if self._used + size > CHUNK:
            self._hand_over()
        if size > CHUNK:  # never from pyrage (64 KiB chunks); kept correct all the same
            self._full.put((bytearray(data), size))
            return size
        self._buffer[self._used : self._used + size] = data
        self._used += size
        return size

    def flush(self) -> None:
        """Nothing to do: pyrage flushes when it finishes, and `close` writes the rest."""

    def close(self) -> None:
        """Hand over the last buffer, wait until everything is written; raise a failure."""
        if self._thread.is_alive():
            if self.failure is None:
                self._hand_over()
            self._full.put(None)
            self._thread.join()
        if self.failure is not None:
            raise self.failure

    def _hand_over(self) -> None:
        if self._used:
            self._full.put((self._buffer, self._used))
            try:
                self._buffer = self._empty.get_nowait()
            except queue.Empty:
                self._buffer = bytearray(CHUNK)
            self._used = 0

    def _drain(self) -> None:
        while (job := self._full.get()) is not None:
            buffer, used = job
            if self.failure is None:  # after a failure, keep taking so `write` never blocks
                try:
                    with memoryview(buffer) as whole, whole[:used] as view:
                        self.digest.update(view)
                        written = 0
                        while written < used:  # an unbuffered FileIO may write less
                            written += self._raw.write(view[written:]) or 0
                    self.count += used
                except BaseException as exc:
                    self.failure = exc
            self._empty.put(buffer)
