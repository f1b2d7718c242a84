"""Writing one backup archive, streamed end to end: files -> tar -> zstd -> age -> a temp
file in the store -> fsync -> rename -> fsync of the directory. Memory stays flat whatever
the size: nothing is held whole.

The manifest (`pbx-agent-manifest.json`, each file's path, size, mode and SHA-256) is the
tar's last member, so the files are read once. The stock tools read the result:
``age -d -i KEY FILE | zstd -d | tar -x``.

How it keeps up with ``tar | zstd | age`` (issue 18). One Python thread drives the chain
from the far end: pyrage's `encrypt_io` holds the GIL while it encrypts and reads its input
through Python calls, so rather than a second thread feeding it through a pipe (every hand-off
a fight for the GIL), it pulls the compressed tar from a generator that reads, hashes and
frames the files on demand. zstd compresses in its own worker thread (zstandard's
multi-threaded mode, outside the GIL), as the stock `zstd` runs in its own process. Tar headers
come from `tarstream` (no `TarFile`), and bytes reach the compressor and the disk in 1 MiB
batches, not per header or per 64 KiB age chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
import zstandard

from agent.backup import tarstream
from agent.errors import BackupError
from drivers.backup_source import BackupSource
from drivers.errors import DriverError

MANIFEST = "pbx-agent-manifest.json"
MANIFEST_SCHEMA = "pbx-agent/backup-manifest/1"
CHUNK = 1024 * 1024
# zstd level 3 (the CLI's default) with one worker thread: compression overlaps the Python
# work. Jobs of 1 MiB keep the worker's buffers to ~10 MB; zstd's default job (8 MiB at this
# level) took peak RSS from 30 to 65 MB for no measurable speed (issue 18).
ZSTD_PARAMS = zstandard.ZstdCompressionParameters.from_level(3, threads=1, job_size=CHUNK)
_manifest_entry = json.JSONEncoder(sort_keys=True).encode  # json.dumps builds one per call


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    path: Path
    size: int
    sha256: str  # of the encrypted file, as stored: what `backup verify` checks first
    files: int
    content_sha256: str  # of the (path, SHA-256) list: equal for an unchanged configuration
    manifest: dict[str, Any]  # the manifest's header (its file list stays in the archive)


def _tar_stream(
    source: BackupSource, meta: dict[str, Any], summary: dict[str, Any]
) -> Iterator[bytes]:
    """The uncompressed tar, piece by piece: each file's header, content and padding, then
    the manifest and the end of the archive. Each file is hashed as it is read; the
    manifest's file list is spooled to a temp file as it grows, so memory does not grow
    with the tree."""
    content = hashlib.sha256()
    count = offset = 0
    with tempfile.TemporaryFile() as listing:
        for item in source.files():
            header = tarstream.file_header(item.path, item.size, item.mode, int(item.mtime))
            yield header
            digest = hashlib.sha256()
            with source.open(item.path) as raw:
                remaining = item.size
                while remaining:
                    data = raw.read(min(remaining, CHUNK))
                    if not data:
                        raise BackupError(f"{item.path} changed while it was read: try again")
                    digest.update(data)
                    remaining -= len(data)
                    yield data
            yield tarstream.padding(item.size)
            offset += len(header) + item.size + -item.size % tarstream.BLOCK
            sha = digest.hexdigest()
            entry = {"path": item.path, "size": item.size, "mode": item.mode, "sha256": sha}
            listing.write((b"," if count else b"") + _manifest_entry(entry).encode())
            content.update(f"{item.path}\0{sha}\n".encode())
            count += 1
        head = {"schema": MANIFEST_SCHEMA, "created_at": datetime.now(UTC).isoformat(), **meta}
        opening = (json.dumps(head, sort_keys=True)[:-1] + ', "files": [').encode()
        closing = b"]}"
        size = len(opening) + listing.tell() + len(closing)
        header = tarstream.file_header(MANIFEST, size, 0o600, int(datetime.now(UTC).timestamp()))
        yield header + opening
        listing.seek(0)
        while data := listing.read(CHUNK):
            yield data
        yield closing + tarstream.padding(size)
        offset += len(header) + size + -size % tarstream.BLOCK
        yield tarstream.end_of_archive(offset)
    summary.update(head, files=count, content_sha256=content.hexdigest())


def _compressed(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """`pieces` zstd-compressed, handed to the compressor a batch of at least CHUNK bytes at a
    time (a call per header or small file would cost more than the copy into a batch)."""
    compressor = zstandard.ZstdCompressor(compression_params=ZSTD_PARAMS).compressobj()
    batch: list[bytes] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= CHUNK:
            if out := compressor.compress(b"".join(batch)):
                yield out
            batch.clear()
            size = 0
    yield compressor.compress(b"".join(batch)) + compressor.flush()


class _PullReader:
    """What pyrage's `encrypt_io` reads (8 KiB `read` calls): the chunks of an iterator.

    pyrage turns an exception raised in `read` into an `EncryptError` carrying only its
    text, and a generator that raised is exhausted, so it would look like a clean end of
    input: the exception is kept in `failure` and raised again on every later read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._view = memoryview(b"")
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if self.failure is not None:
            raise self.failure
        while not self._view:
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.failure = exc
                raise
            if chunk is None:
                return b""
            self._view = memoryview(chunk)
        piece = self._view if size < 0 else self._view[:size]
        self._view = self._view[len(piece) :]
        return piece.tobytes()


class _HashingWriter:
    """The encrypted output: gathered into CHUNK-sized writes to the temp file (pyrage writes
    64 KiB at a time), hashed and counted on the way. A failed write is kept in `failure`,
    as for `_PullReader`."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._batch = bytearray()
        self.digest = hashlib.sha256()
        self.count = 0
        self.failure: BaseException | None = None

    def write(self, data: bytes) -> int:
        self._batch += data
        if len(self._batch) >= CHUNK:
            self._drain()
        return len(data)

    def flush(self) -> None:
        """pyrage flushes when it finishes; the rest of the batch goes out here."""
        self._drain()

    def _drain(self) -> None:
        if self.failure is not None:
            raise self.failure
        try:
            self.digest.update(self._batch)
            with memoryview(self._batch) as view:
                written = 0
                while written < len(view):  # an unbuffered FileIO may write less than asked
                    written += self._raw.write(view[written:]) or 0
            self.count += len(self._batch)
            self._batch.clear()
        except BaseException as exc:
            self.failure = exc
            raise


def write_archive(
    source: BackupSource,
    store: Path,
    name: str,
    recipients: list[str],
    meta: dict[str, Any],
) -> ArchiveResult:
    """Write `store/name` atomically; on any failure no file by that name exists and the
    temp file is gone. Blocking: run it in a worker thread."""
    try:
        keys = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:  # pyrage raises its own RecipientError
        raise BackupError(f"bad age recipient: {exc}") from exc
    if not keys:
        raise BackupError("no age recipient configured: a backup must be encrypted to someone")
    final = store / name
    temp = store / f".{name}.partial"
    manifest: dict[str, Any] = {}
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw_out:
            plain = _PullReader(_compressed(_tar_stream(source, meta, manifest)))
            out = _HashingWriter(raw_out)
            try:
                pyrage.encrypt_io(plain, out, keys)
            except pyrage.EncryptError:
                if plain.failure is None and out.failure is None:
                    raise
            if failure := plain.failure or out.failure:
                raise failure  # the cause itself, not pyrage's retelling of it
            if "content_sha256" not in manifest:  # never rename a stream that stopped short
                raise BackupError(f"backup {name}: the archive stream ended early")
            out.flush()
            os.fsync(raw_out.fileno())
        os.replace(temp, final)
        _fsync_dir(store)
    except (OSError, DriverError, BackupError, pyrage.EncryptError) as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"backup {name} failed: {exc}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ArchiveResult(
        final,
        out.count,
        out.digest.hexdigest(),
        manifest["files"],
        manifest["content_sha256"],
        manifest,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
