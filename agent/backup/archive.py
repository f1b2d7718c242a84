"""Writing one backup archive, streamed end to end: files -> tar -> zstd -> age -> a temp
file in the store -> fsync -> rename -> fsync of the directory. Memory stays flat whatever
the size: nothing is held whole, and the stages overlap (tar+zstd in one thread, age in the
other, joined by a pipe).

The manifest (`pbx-agent-manifest.json`, each file's path, size, mode and SHA-256) is the
tar's last member, so the files are read once. The stock tools read the result:
``age -d -i KEY FILE | zstd -d | tar -x``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
import zstandard

from agent.errors import BackupError
from agent.progress import ProgressCallback
from drivers.backup_source import BackupSource
from drivers.errors import DriverError

MANIFEST = "pbx-agent-manifest.json"
MANIFEST_SCHEMA = "pbx-agent/backup-manifest/1"
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    path: Path
    size: int
    sha256: str  # of the encrypted file, as stored: what `backup verify` checks first
    files: int
    content_sha256: str  # of the (path, mode, SHA-256) list: equal for an unchanged configuration
    manifest: dict[str, Any]  # the manifest's header (its file list stays in the archive)


class _HashingReader:
    """Reads a source file for tarfile while hashing it (tarfile only calls `read(n)`)."""

    def __init__(self, raw: BinaryIO, progress: ProgressCallback | None = None) -> None:
        self._raw = raw
        self._progress = progress
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = _read_full(self._raw, size)
        self.digest.update(data)
        self.count += len(data)
        if self._progress is not None:
            self._progress(0, len(data))
        return data


def _read_full(stream: Any, size: int) -> bytes:
    """`size` bytes unless the stream ends first: tarfile treats a short read as a
    truncated file, and pipes, sockets and SFTP may return less than asked."""
    if size < 0:
        return bytes(stream.read())
    chunks, wanted = [], size
    while wanted > 0:
        data = stream.read(wanted)
        if not data:
            break
        chunks.append(bytes(data))
        wanted -= len(data)
    return b"".join(chunks)


class _HashingWriter:
    """The encrypted output: written to the temp file, hashed and counted on the way."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.digest.update(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()


def _tar_into(
    source: BackupSource,
    out: BinaryIO,
    meta: dict[str, Any],
    summary: dict[str, Any],
    progress: ProgressCallback | None = None,
) -> None:
    """Producer stage: the tar stream, zstd-compressed, written to `out`. The manifest's file
    list is spooled to a temp file as it grows, so memory does not grow with the tree."""
    compressor = zstandard.ZstdCompressor(level=3)
    content = hashlib.sha256()
    count = 0
    with (
        tempfile.TemporaryFile() as listing,
        compressor.stream_writer(out, closefd=False) as zstd_out,
        tarfile.open(fileobj=zstd_out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for item in source.files():
            info = tarfile.TarInfo(item.path)
            info.size, info.mode, info.mtime = item.size, item.mode, int(item.mtime)
            with source.open(item.path) as raw:
                reader = _HashingReader(raw, progress)
                tar.addfile(info, reader)
            # TarFile remembers every member it wrote; a streaming writer never reads them
            # back, and 100,000 remembered headers would make memory grow with the tree.
            tar.members.clear()  # type: ignore[attr-defined]  # CPython attribute, no stub
            if reader.count != item.size:
                raise BackupError(f"{item.path} changed while it was read: try again")
            digest = reader.digest.hexdigest()
            entry = {"path": item.path, "size": item.size, "mode": item.mode, "sha256": digest}
            listing.write((b"," if count else b"") + json.dumps(entry, sort_keys=True).encode())
            content.update(f"{item.path}\0{item.mode:o}\0{digest}\n".encode())
            count += 1
            if progress is not None:
                progress(1, 0)
        head = {"schema": MANIFEST_SCHEMA, "created_at": datetime.now(UTC).isoformat(), **meta}
        opening = (json.dumps(head, sort_keys=True)[:-1] + ', "files": [').encode()
        closing = b"]}"
        size = len(opening) + listing.tell() + len(closing)
        listing.seek(0)
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = size, 0o600, int(datetime.now(UTC).timestamp())
        tar.addfile(info, _Concat(io.BytesIO(opening), listing, io.BytesIO(closing)))
        summary.update(head, files=count, content_sha256=content.hexdigest())


class _Concat:
    """Several binary streams read as one (tarfile only calls `read(n)`)."""

    def __init__(self, *parts: Any) -> None:
        self._parts = list(parts)

    def read(self, size: int = -1) -> bytes:
        chunks, wanted = [], size
        while self._parts and (size < 0 or wanted > 0):
            data = _read_full(self._parts[0], wanted)
            if len(data) < wanted or size < 0:
                self._parts.pop(0)
            chunks.append(data)
            wanted -= len(data)
        return b"".join(chunks)


def write_archive(
    source: BackupSource,
    store: Path,
    name: str,
    recipients: list[str],
    meta: dict[str, Any],
    progress: ProgressCallback | None = None,
) -> ArchiveResult:
    """Write `store/name` atomically; on any failure no file by that name exists and the
    temp file is gone. Blocking: run it in a worker thread. `progress` is told each file
    and the bytes read."""
    try:
        keys = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:  # pyrage raises its own RecipientError
        raise BackupError(f"bad age recipient: {exc}") from exc
    if not keys:
        raise BackupError("no age recipient configured: a backup must be encrypted to someone")
    final = store / name
    temp = store / f".{name}.partial"
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # Linux: a 1 MiB pipe, fewer wake-ups
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, CHUNK)
    manifest: dict[str, Any] = {}
    failure: list[BaseException] = []

    def produce() -> None:
        with os.fdopen(write_fd, "wb", buffering=CHUNK) as pipe_out:
            try:
                _tar_into(source, pipe_out, meta, manifest, progress)
            except BaseException as exc:  # reported to the consumer side below
                failure.append(exc)

    producer = threading.Thread(target=produce, name="backup-tar", daemon=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw_out, os.fdopen(read_fd, "rb", buffering=CHUNK) as pipe_in:
            out = _HashingWriter(raw_out)
            producer.start()
            try:
                pyrage.encrypt_io(pipe_in, out, keys)
            except BaseException:
                pipe_in.close()  # unblocks a producer stuck writing into a full pipe
                producer.join()
                raise
            producer.join()
            if failure:
                raise failure[0]
            raw_out.flush()
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


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(0, len(chunk))
    return digest.hexdigest()
