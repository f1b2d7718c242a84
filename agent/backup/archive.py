"""Writing one backup archive, streamed end to end: files -> tar -> zstd -> age -> a temp
file in the store -> fsync -> rename -> fsync of the directory. Memory stays flat whatever
the size: nothing is held whole.

The manifest (`pbx-agent-manifest.json`, each file's path, size, mode and SHA-256, and each
folder's path and mode) is the tar's last member, so the files are read once; folders come
first (empty ones and their modes are kept). It is told apart by a PAX marker, not by its name
(`agent.backup.members`). The stock tools read the result:
``age -d -i KEY FILE | zstd -d | tar -x``.

How it keeps up with ``tar | zstd | age`` (issue 18), on two cores:
- The caller's thread walks, reads and frames the files and feeds the compressor; tar
  headers come from `tarstream` (no `TarFile`: a third of an early profile), and bytes
  reach the compressor in 1 MiB batches rather than per header or per small file.
- zstd compresses in two worker threads of its own (zstandard's multi-threaded mode),
  outside the GIL, as the stock `zstd` runs in its own process.
- A thread of ours ("backup-write", `stages.SealingSink`) encrypts (`agent.backup.age`:
  OpenSSL's ChaCha20-Poly1305, outside the GIL), hashes and writes the compressed stream;
  another hashes the reads of big files. pyrage's `encrypt_io` held the GIL while it
  encrypted, at a fifth of that speed: everything else waited for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from agent.backup import age, members, tarstream
from agent.backup.members import BackupFolder
from agent.backup.stages import CHUNK as CHUNK  # restore reads in the same pieces
from agent.backup.stages import Hasher, SealingSink
from agent.errors import BackupError
from agent.progress import ProgressCallback
from drivers.backup_source import BackupSource
from drivers.errors import DriverError

MANIFEST = members.MANIFEST
MANIFEST_SCHEMA = "pbx-agent/backup-manifest/1"
# zstd level 3 (the CLI's default) in two worker threads of zstd's own, outside the GIL.
# With one worker, the thread feeding it spent ~1 s per GiB in `compress` (woken for every
# 128 KiB block); with two, ~0.3 s. Jobs of 1 MiB keep their buffers to ~20 MB: zstd's
# default (8 MiB jobs at this level) took peak RSS from 30 to 65 MB with one worker and to
# 126 MB with two (issue 18). No overlap between jobs (overlap_log=1): by default each job
# first loads the end of the one before as its dictionary, a cost per MiB that took 5-8 % of
# the wall time on the 1 GiB tree, for 0.1 % of output size.
ZSTD_PARAMS = zstandard.ZstdCompressionParameters.from_level(
    3, threads=2, job_size=CHUNK, overlap_log=1
)


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    path: Path
    size: int
    sha256: str  # of the encrypted file, as stored: what `backup verify` checks first
    files: int
    content_sha256: str  # of the (path, mode, SHA-256) list: equal for an unchanged configuration
    manifest: dict[str, Any]  # the manifest's header (its file list stays in the archive)


def manifest_entry(path: str, size: int, mode: int, sha256: str) -> bytes:
    """One file of the manifest's list: ``json.dumps(entry, sort_keys=True)``, byte for byte,
    in a fifth of its time (it builds a `JSONEncoder` per call)."""
    return b'{"mode": %d, "path": %s, "sha256": "%s", "size": %d}' % (
        mode,
        json.dumps(path).encode(),
        sha256.encode(),
        size,
    )


def _tar_stream(
    source: BackupSource,
    meta: dict[str, Any],
    summary: dict[str, Any],
    folders: Iterable[BackupFolder] = (),
    progress: ProgressCallback | None = None,
) -> Iterator[bytes]:
    """The uncompressed tar, piece by piece: the folders' headers, then each file's header,
    content and padding, then the manifest and the end of the archive. Each file is hashed as
    it is read; the manifest's list is spooled to a temp file as it grows, so memory does not
    grow with the tree."""
    content = hashlib.sha256()
    count = entries = offset = 0
    taken: set[str] = set()  # names at the top, which the manifest's must differ from
    with tempfile.TemporaryFile() as listing, Hasher() as hasher:
        for folder in folders:
            header = _pax(members.folder_info(folder))
            yield header
            offset += len(header)
            entry = members.folder_entry(folder)
            listing.write((b"," if entries else b"") + json.dumps(entry, sort_keys=True).encode())
            content.update(f"{folder.path}/\0{folder.mode:o}\0dir\n".encode())
            entries += 1
            taken.add(folder.path.partition("/")[0])
        for item in source.files():
            header = tarstream.file_header(item.path, item.size, item.mode, int(item.mtime))
            yield header
            digest = hashlib.sha256()
            update = hasher.update(digest) if item.size >= CHUNK else digest.update
            with source.open(item.path) as raw:
                remaining = item.size
                while remaining:
                    data = raw.read(min(remaining, CHUNK))
                    if not data:
                        raise BackupError(f"{item.path} changed while it was read: try again")
                    update(data)
                    remaining -= len(data)
                    if progress is not None:
                        progress(0, len(data))
                    yield data
            yield tarstream.padding(item.size)
            offset += len(header) + item.size + -item.size % tarstream.BLOCK
            if item.size >= CHUNK:
                hasher.wait()
            sha = digest.hexdigest()
            listing.write(b"," if entries else b"")
            listing.write(manifest_entry(item.path, item.size, item.mode, sha))
            content.update(f"{item.path}\0{item.mode:o}\0{sha}\n".encode())
            count += 1
            entries += 1
            if progress is not None:
                progress(1, 0)
            taken.add(item.path.partition("/")[0])
        head = {"schema": MANIFEST_SCHEMA, "created_at": datetime.now(UTC).isoformat(), **meta}
        opening = (json.dumps(head, sort_keys=True)[:-1] + ', "files": [').encode()
        closing = b"]}"
        size = len(opening) + listing.tell() + len(closing)
        name = members.manifest_name(taken)
        mtime = int(datetime.now(UTC).timestamp())
        header = _pax(members.manifest_info(name, size, mtime))
        yield header + opening
        listing.seek(0)
        while data := listing.read(CHUNK):
            yield data
        yield closing + tarstream.padding(size)
        offset += len(header) + size + -size % tarstream.BLOCK
        yield tarstream.end_of_archive(offset)
    summary.update(head, files=count, content_sha256=content.hexdigest())


def _pax(info: tarfile.TarInfo) -> bytes:
    """The header of a member the agent writes with PAX keywords of its own (folders, the
    marked manifest), as `tarfile` writes it."""
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _batches(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """The pieces joined into batches of at least CHUNK bytes, one compressor call each (a
    call per header or small file costs more than the copy); a big read goes alone, uncopied."""
    batch: list[bytes] = []
    size = 0
    for piece in pieces:
        if len(piece) >= CHUNK // 2:
            if batch:
                yield b"".join(batch)
                batch, size = [], 0
            yield piece
            continue
        batch.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield b"".join(batch)
            batch, size = [], 0
    yield b"".join(batch)


def _compressed(batches: Iterator[bytes]) -> Generator[bytes]:
    """The batches zstd-compressed, as one zstd frame, in chunks of CHUNK bytes (zstandard's
    chunker fills each chunk in place; `compressobj` grows its result 128 KiB at a time,
    copying while it holds the GIL)."""
    chunker = zstandard.ZstdCompressor(compression_params=ZSTD_PARAMS).chunker(chunk_size=CHUNK)
    for batch in batches:
        yield from chunker.compress(batch)
    yield from chunker.finish()  # type: ignore[no-untyped-call]  # untyped in its stubs


def write_archive(
    source: BackupSource,
    store: Path,
    name: str,
    recipients: list[str],
    meta: dict[str, Any],
    folders: Iterable[BackupFolder] = (),
    progress: ProgressCallback | None = None,
) -> ArchiveResult:
    """Write `store/name` atomically; on any failure no file by that name exists and the
    temp file is gone. Blocking: run it in a worker thread. `progress` is told each file
    and the bytes read."""
    try:
        keys = [age.recipient_key(r) for r in recipients]
    except ValueError as exc:
        raise BackupError(f"bad age recipient: {exc}") from exc
    if not keys:
        raise BackupError("no age recipient configured: a backup must be encrypted to someone")
    final = store / name
    temp = store / f".{name}.partial"
    manifest: dict[str, Any] = {}
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw_out:
            out = SealingSink(raw_out, age.AgeEncryptor(keys))
            chunks = _compressed(_batches(_tar_stream(source, meta, manifest, folders, progress)))
            try:
                for chunk in chunks:
                    out.put(chunk)
            except BaseException:
                out.close(complete=False)  # raises a write failure: the cause of it all
                raise
            finally:
                chunks.close()  # the tar generator's open file and temp file close
            out.close()
            if "content_sha256" not in manifest:  # never rename a stream that stopped short
                raise BackupError(f"backup {name}: the archive stream ended early")
            os.fsync(raw_out.fileno())
        os.replace(temp, final)
        _fsync_dir(store)
    except (OSError, DriverError, BackupError) as exc:
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
