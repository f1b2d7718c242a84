"""The hand-offs of the archive pipeline (`agent.backup.archive`): where the compressed
stream goes (`SealingSink`: encrypted, hashed and written by a thread of its own), and the
thread that hashes the reads of big files (`Hasher`). The threads do only work that
releases the GIL (encrypting, hashing, writing), and take it over in 1 MiB pieces.

`CHUNK` is the size of those pieces.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from agent.backup.age import AgeEncryptor

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


class SealingSink:
    """Where the compressed stream goes: a thread of its own ("backup-write") seals it into
    the age format (`AgeEncryptor`), hashes and writes it to the archive's file. Sealing,
    hashing and writing all release the GIL, so they overlap the reading and compressing
    that the caller's thread does. At most `DEPTH` pieces wait in between.

    A failure of the thread is kept in `failure` and raised at the next `put` and by
    `close`."""

    DEPTH = 4

    def __init__(self, raw: BinaryIO, encryptor: AgeEncryptor) -> None:
        self._raw = raw
        self._encryptor = encryptor
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.DEPTH)
        self._thread = threading.Thread(target=self._drain, name="backup-write", daemon=True)
        self.digest = hashlib.sha256()
        self.count = 0
        self.failure: BaseException | None = None
        self._finished = False
        self._thread.start()

    def put(self, data: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self._queue.put(data)

    def close(self, complete: bool = True) -> None:
        """Wait until everything put is written, with the final chunk when `complete` (a
        stream cut short gets none: no reader takes it for whole); raise a failure."""
        if self._thread.is_alive():
            self._finished = complete
            self._queue.put(None)
            self._thread.join()
        if self.failure is not None:
            raise self.failure

    def _drain(self) -> None:
        try:
            self._write([self._encryptor.header])
            while (data := self._queue.get()) is not None:
                self._write(self._encryptor.seal(data))
            if self._finished:
                self._write([self._encryptor.finish()])
        except BaseException as exc:
            self.failure = exc
            while self._queue.get() is not None:  # keep taking, so that `put` never blocks
                pass

    def _write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.digest.update(piece)
            self.count += len(piece)
        fd = self._raw.fileno()
        while pieces:
            written = os.writev(fd, pieces[:64])  # a regular file may take less than asked
            while pieces and written >= len(pieces[0]):
                written -= len(pieces.pop(0))
            if pieces and written:
                pieces[0] = pieces[0][written:]
