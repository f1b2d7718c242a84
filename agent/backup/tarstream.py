"""The pieces of a tar stream, byte for byte as Python's `tarfile` writes it in PAX format
(`tarfile.open(mode="w|", format=tarfile.PAX_FORMAT)` with `addfile` for regular files), so
that the archive pipeline can emit headers, contents and padding itself, in the chunks it
wants, without a `TarFile` in between.

Why not `TarFile.addfile`: at tens of thousands of small configuration files its per-member
cost (a copy of the `TarInfo`, `tobuf` at ~18 µs, 10 KiB record buffering) was a third of the
backup's time in the profile of issue 18. An ordinary member (ASCII path of at most 100
characters, size and mtime that fit the octal fields) gets its ustar block built here in a
few microseconds; anything else goes through `TarInfo.tobuf`, which adds the PAX extended
header. Both give the same bytes (tests/agent/test_backup_archive.py checks it).
"""

from __future__ import annotations

import tarfile

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: tarfile pads the end of the archive to a record
_OCTAL_LIMIT = 8**11  # what 11 octal digits hold (the size and mtime fields)
# Everything after the checksum field of a regular file's ustar block: type "0", no link
# name, POSIX magic "ustar\0" + version "00", empty user/group names, no device numbers, no
# prefix, and the block's last 12 bytes.
_TAIL = b"0" + bytes(100) + b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
_TAIL_SUM = 8 * ord(" ") + sum(_TAIL)  # the checksum counts its own field as 8 spaces


def file_header(path: str, size: int, mode: int, mtime: int) -> bytes:
    """The header block(s) of a regular file `path` (relative, POSIX) of `size` bytes."""
    try:
        name = path.encode("ascii")
    except UnicodeEncodeError:
        return _pax_header(path, size, mode, mtime)
    if len(name) > 100 or not 0 <= size < _OCTAL_LIMIT or not 0 <= mtime < _OCTAL_LIMIT:
        return _pax_header(path, size, mode, mtime)
    # name, mode, uid 0, gid 0, size, mtime: the 148 bytes before the checksum field
    head = name.ljust(100, b"\0") + b"%07o\x000000000\x000000000\x00%011o\x00%011o\x00" % (
        mode & 0o7777,
        size,
        mtime,
    )
    return head + b"%06o\x00 " % (_TAIL_SUM + sum(head)) + _TAIL


def _pax_header(path: str, size: int, mode: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = size, mode, mtime
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def padding(size: int) -> bytes:
    """The zeros that fill a member of `size` bytes up to a whole block."""
    return bytes(-size % BLOCK)


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros to the end of the record, for a stream `offset` bytes long
    so far (what `TarFile.close` writes)."""
    return bytes(2 * BLOCK + (-(offset + 2 * BLOCK) % RECORD))
