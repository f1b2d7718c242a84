"""A bounded reader of the tar streams the agent writes: ustar blocks and PAX extended headers,
regular files and folders. Every length is checked before anything is read into memory (an
extended header is at most 64 KiB, where `tarfile` would read one of any size whole), every
header's checksum is checked, and any other kind of member (links, devices, FIFOs, sparse
files, GNU long names, global headers) is refused with its name. Sizes are only reported: the
caller holds them against its limits before it reads a member's content.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from agent.errors import BackupError

BLOCK = 512
PAX_MAX = 64 * 1024  # an extended header's records (a path is at most 4 KiB)
TRAILER_MAX = 64 * 1024  # zeros after the end-of-archive blocks (tar pads to a 10 KiB record)
CHUNK = 1024 * 1024

_REFUSED_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"g": "a global extended header",
    b"L": "a GNU long name",
    b"K": "a GNU long link name",
    b"S": "a GNU sparse file",
    b"V": "a volume label",
    b"M": "a multi-volume continuation",
}
# PAX keywords that change what a member is, which the agent never writes.
_REFUSED_KEYS = ("linkpath", "GNU.sparse.")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Member:
    path: str  # as written (the caller checks it)
    kind: str  # "file" or "dir"
    size: int
    mode: int
    comment: str | None  # the PAX `comment`, how the agent marks its manifest


def damaged(why: str) -> BackupError:
    return BackupError(f"refused: the archive is damaged: {why}")


class TarReader:
    """`for member in reader.members():` then `reader.content()` for a file's bytes (what is
    not read is skipped before the next member)."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._left = 0  # bytes of the current member's content not yet read
        self._padding = 0
        self.bytes_read = 0

    def _read(self, size: int) -> bytes:
        parts, wanted = [], size
        while wanted:
            data = self._stream.read(min(wanted, CHUNK))
            if not data:
                raise damaged("the tar stream ends early")
            parts.append(data)
            wanted -= len(data)
        self.bytes_read += size
        return b"".join(parts)

    def _skip(self, size: int) -> None:
        while size:
            size -= len(self._read(min(size, CHUNK)))

    def content(self) -> Iterator[bytes]:
        """The current member's content, in chunks of at most 1 MiB."""
        while self._left:
            data = self._read(min(self._left, CHUNK))
            self._left -= len(data)
            yield data

    def read_all(self) -> bytes:
        """The current member's content at once (the caller bounded its size)."""
        data = self._read(self._left)
        self._left = 0
        return data

    def members(self) -> Iterator[Member]:
        pax: dict[str, bytes] | None = None
        while True:
            self._skip(self._left + self._padding)
            self._left = self._padding = 0
            block = self._read(BLOCK)
            if block == bytes(BLOCK):
                if pax is not None:
                    raise damaged("an extended header describes no member")
                self._end()
                return
            name, mode, size, kind = _header(block)
            if kind == b"x":
                if pax is not None:
                    raise damaged("two extended headers in a row")
                if size > PAX_MAX:
                    raise BackupError(
                        f"refused: an extended header of {size} bytes (at most {PAX_MAX})"
                    )
                pax = _pax_records(self._read(size))
                self._padding = -size % BLOCK
                continue
            path, comment = name, None
            if pax is not None:
                path, size, comment = _apply_pax(pax, path, size)
                pax = None
            if kind in (b"0", b"\0"):
                member = Member(path, "file", size, mode, comment)
            elif kind == b"5":
                member = Member(path, "dir", 0, mode, comment)
                size = 0  # a folder has no content, whatever its header says
            elif kind in _REFUSED_TYPES:
                raise BackupError(
                    f"refused: {path[:200]!r} is {_REFUSED_TYPES[kind]} "
                    "(backups hold only files and folders)"
                )
            else:
                raise BackupError(f"refused: {path[:200]!r} has the unknown tar type {kind!r}")
            self._left, self._padding = size, -size % BLOCK
            yield member

    def _end(self) -> None:
        """After the first zero block: the second, then nothing but zero padding."""
        if self._read(BLOCK) != bytes(BLOCK):
            raise damaged("a zero block inside the tar stream")
        seen = 0
        while data := self._stream.read(BLOCK):
            seen += len(data)
            if data.count(0) != len(data) or seen > TRAILER_MAX:
                raise BackupError("refused: data after the end of the tar archive")


def _octal(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:  # base-256, for values past the octal field
        if field[0] != 0x80:
            raise damaged(f"a negative or oversized {what}")
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not digits:
        return 0
    if len(digits) > 22 or any(c not in b"01234567" for c in digits):
        raise damaged(f"the {what} field is not an octal number")
    return int(digits, 8)


def _header(block: bytes) -> tuple[str, int, int, bytes]:
    """(name, mode, size, type) of a ustar header block, its checksum and magic checked."""
    if block[257:263] not in (b"ustar\x00", b"ustar "):
        raise damaged("a header that is not ustar or PAX")
    stored = _octal(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b >= 128)
    if stored not in (unsigned, signed):
        raise damaged("a header's checksum does not match")
    name = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0] if block[257:263] == b"ustar\x00" else b""
    if prefix:
        name = prefix + b"/" + name
    return (
        _text(name, "member name"),
        _octal(block[100:108], "mode"),
        _octal(block[124:136], "size"),
        block[156:157],
    )


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupError(f"refused: a {what} that is not UTF-8: {raw[:200]!r}") from None


def _pax_records(data: bytes) -> dict[str, bytes]:
    """The records `LEN KEY=VALUE\\n` of an extended header."""
    records: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        if data[at:].count(0) == len(data) - at:
            break  # padding some writers leave
        space = data.find(b" ", at, at + 8)
        if space < 0 or not data[at:space].isdigit():
            raise damaged("an extended header record without its length")
        length = int(data[at:space])
        record = data[at : at + length]
        if length <= space - at or len(record) != length or not record.endswith(b"\n"):
            raise damaged("an extended header record of the wrong length")
        key, equals, value = record[space - at + 1 : -1].partition(b"=")
        if not equals or not key:
            raise damaged("an extended header record without a key")
        records[_text(key, "extended header key")] = value
        at += length
    return records


def _apply_pax(pax: dict[str, bytes], path: str, size: int) -> tuple[str, int, str | None]:
    for key in pax:
        if key.startswith(_REFUSED_KEYS):
            raise BackupError(
                f"refused: {path[:200]!r} carries {key!r} (a link or sparse file: "
                "backups hold only files and folders)"
            )
    if pax.get("hdrcharset", b"") not in (b"", b"ISO-IR 10646 2000 UTF-8"):
        raise BackupError(f"refused: {path[:200]!r} has a name that is not UTF-8")
    if "path" in pax:
        path = _text(pax["path"], "member name")
    if "size" in pax:
        raw = pax["size"]
        if not raw.isdigit() or len(raw) > 20:
            raise damaged(f"the extended size of {path[:200]!r} is not a number")
        size = int(raw)
    comment = _text(pax["comment"], "comment") if "comment" in pax else None
    return path, size, comment
