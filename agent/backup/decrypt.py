"""An archive's plaintext as a stream, never on disk: the ciphertext is first checked against
the catalog's size and SHA-256 (a swapped or altered file is refused before anything is
decrypted), then age decrypts it in a worker thread into a bounded queue, and zstd
decompresses what the reader takes. age authenticates chunk by chunk and the last chunk at the
end, so a reader acts on the content only once `finish()` returned: until then a truncated or
tampered archive may still be refused."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pyrage
import zstandard

from agent.errors import BackupError

CHUNK = 1024 * 1024
_HANDOVER = 256 * 1024  # bytes gathered before the decrypting thread hands them over
_QUEUE_DEPTH = 8
MAX_WINDOW = 1 << 27  # zstd's own default cap on a frame's window (128 MiB of memory)


def identities(texts: list[str]) -> list[pyrage.x25519.Identity]:
    try:
        return [pyrage.x25519.Identity.from_str(t.strip()) for t in texts]
    except Exception as exc:  # pyrage raises its own IdentityError
        raise BackupError(f"bad age identity: {exc}") from exc


def open_checked(archive: Path, sha256: str | None, size: int | None = None) -> BinaryIO:
    """`archive`, opened once and checked against the catalog (size, then SHA-256); the
    position is back at the start. The open file is what gets decrypted, so a file swapped
    in after the check is never read."""
    try:
        handle = archive.open("rb")
    except OSError as exc:
        raise BackupError(f"{archive}: cannot open the archive: {exc.strerror}") from exc
    try:
        found = os.fstat(handle.fileno()).st_size
        if size is not None and found != size:
            raise BackupError(
                f"{archive}: size ({found} bytes) differs from the catalog ({size}): the "
                "archive was changed or swapped; nothing was decrypted"
            )
        if sha256 is not None:
            digest = hashlib.sha256()
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise BackupError(
                    f"{archive}: SHA-256 differs from the catalog: the archive was changed "
                    "or swapped; nothing was decrypted"
                )
            handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle


class _Plaintext:
    """The decrypting thread writes (`write`), the reader reads (`read`); `stop` ends both."""

    def __init__(self, source: BinaryIO, keys: list[pyrage.x25519.Identity], name: str) -> None:
        self._name = name
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._gathered = bytearray()
        self._view = memoryview(b"")
        self._ended = False
        self._stopped = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._decrypt, args=(source, keys), name="backup-decrypt", daemon=True
        )
        self._thread.start()

    # -- the decrypting thread -------------------------------------------------------------

    def _decrypt(self, source: BinaryIO, keys: list[pyrage.x25519.Identity]) -> None:
        try:
            pyrage.decrypt_io(source, self, keys)
            self._hand_over()
        except BaseException as exc:
            if not self._stopped.is_set():
                self.failure = exc
        finally:
            self._put(None)

    def write(self, data: bytes) -> int:
        self._gathered += data
        if len(self._gathered) >= _HANDOVER:
            self._hand_over()
        return len(data)

    def _hand_over(self) -> None:
        if self._gathered:
            if not self._put(bytes(self._gathered)):
                raise BrokenPipeError("the reader stopped")
            self._gathered.clear()

    def _put(self, item: bytes | None) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # -- the reader --------------------------------------------------------------------------

    def read(self, size: int = -1, /) -> bytes:
        while not self._view and not self._ended:
            item = self._queue.get()
            if item is None:
                self._ended = True
                self.check()
            else:
                self._view = memoryview(item)
        piece = self._view if size < 0 else self._view[:size]
        self._view = self._view[len(piece) :]
        return piece.tobytes()

    def check(self) -> None:
        if self.failure is not None:
            raise BackupError(
                f"{self._name}: cannot decrypt ({self.failure}): truncated, tampered, or "
                "encrypted to another key"
            ) from self.failure

    def finish(self) -> None:
        """Read to the end (nothing may follow the compressed stream), then wait for the
        decryption to succeed: only then is the content authentic."""
        while self.read(CHUNK):
            raise BackupError("refused: data after the compressed stream")
        self._thread.join()
        self.check()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


@contextlib.contextmanager
def plaintext_tar(
    source: BinaryIO, keys: list[pyrage.x25519.Identity], name: str
) -> Iterator[tuple[zstandard.ZstdDecompressionReader, _Plaintext]]:
    """The decompressed tar stream of the encrypted `source`, and its `_Plaintext` (call
    `finish()` once the tar is read). A decryption failure is the error raised, whatever the
    reader made of the damaged stream first."""
    plain = _Plaintext(source, keys, name)
    try:
        decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        with decompressor.stream_reader(
            cast(BinaryIO, plain), read_size=CHUNK, read_across_frames=True, closefd=False
        ) as tar:
            try:
                yield tar, plain
            except zstandard.ZstdError as exc:
                plain.stop()
                plain.check()
                raise BackupError(f"refused: the archive is damaged: zstd: {exc}") from exc
            except BackupError:
                plain.stop()
                plain.check()
                raise
    finally:
        plain.stop()
