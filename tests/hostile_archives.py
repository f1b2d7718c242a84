"""Malformed and hostile backup archives, built byte by byte: every layer (age, zstd, tar
headers, PAX records, member kinds and names, sizes against the limits, the manifest) is
broken in turn. Each is encrypted to the test's identity, so that what comes after the
decryption is tried too. `hostile_archives(recipient)` gives (label, archive bytes).

The archives are meant for a store whose `[backup.limits]` are `SMALL_LIMITS`."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pyrage
import zstandard

from agent.backup.members import MANIFEST, MANIFEST_MARK

SMALL_LIMITS = """
[backup.limits]
manifest_bytes = 1048576
file_bytes = 1048576
total_bytes = 4194304
members = 300
"""
LIMIT_FILE = 1024 * 1024
LIMIT_MEMBERS = 300
BLOCK = 512

Inputs = list[tuple[str, bytes]]


# -- tar pieces, written by hand so that any field can be wrong ------------------------------


def header(
    name: bytes | str,
    size: int = 0,
    kind: bytes = b"0",
    *,
    mode: int = 0o644,
    linkname: bytes = b"",
    magic: bytes = b"ustar\x0000",
    size_field: bytes | None = None,
    checksum: bool = True,
) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    block = bytearray(BLOCK)
    block[0 : len(raw[:100])] = raw[:100]
    block[100:108] = b"%07o\x00" % mode
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = size_field if size_field is not None else b"%011o\x00" % size
    block[136:148] = b"00000000000\x00"
    block[156:157] = kind
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = magic
    block[148:156] = b" " * 8
    total = sum(block) if checksum else sum(block) + 1
    block[148:156] = b"%06o\x00 " % total
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax(records: dict[str, bytes]) -> bytes:
    body = b""
    for key, value in records.items():
        line = b" " + key.encode() + b"=" + value + b"\n"
        length = len(line) + 1
        while len(str(length)) + len(line) != length:
            length += 1
        body += str(length).encode() + line
    return header("././@PaxHeader", len(body), b"x") + pad(body)


def member(name: bytes | str, data: bytes = b"", *, mode: int = 0o644) -> bytes:
    return header(name, len(data), b"0", mode=mode) + pad(data)


def folder(name: str, *, mode: int = 0o755) -> bytes:
    return header(name, 0, b"5", mode=mode)


def end() -> bytes:
    return bytes(2 * BLOCK)


def entry(path: str, data: bytes, mode: int = 0o644) -> dict[str, object]:
    return {
        "path": path,
        "size": len(data),
        "mode": mode,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def manifest(entries: list[dict[str, object]], **changes: object) -> bytes:
    head: dict[str, object] = {
        "schema": "pbx-agent/backup-manifest/1",
        "created_at": "2026-12-01T02:30:00+00:00",
        "driver": "asterisk",
        "files": entries,
    }
    return json.dumps(head | changes).encode()


def marked(data: bytes, name: str = MANIFEST) -> bytes:
    return pax({"comment": MANIFEST_MARK.encode()}) + member(name, data, mode=0o600)


def good_tar(files: dict[str, bytes], *, extra: bytes = b"", listing: bytes | None = None) -> bytes:
    """A consistent tar of `files` (plus `extra` members before the manifest)."""
    body = b"".join(member(p, d) for p, d in files.items()) + extra
    listed = listing if listing is not None else manifest([entry(p, d) for p, d in files.items()])
    return body + marked(listed) + end()


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def encrypt(plain: bytes, recipient: pyrage.x25519.Recipient) -> bytes:
    return bytes(pyrage.encrypt(plain, [recipient]))


CONF = {"pjsip.conf": b"[100]\ntype = endpoint\n", "sub/extensions.conf": b"[default]\n"}


def spaces_manifest(size: int) -> bytes:
    """A tar whose manifest member claims (and holds) `size` bytes of spaces, zstd-compressed
    as it is produced: 1 GiB becomes about 33 KB (issue 14, defect 7)."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor().compressobj()
    out.write(compressor.compress(marked_header(size)))
    chunk = b" " * (1 << 20)
    left = size
    while left:
        piece = chunk[: min(left, len(chunk))]
        out.write(compressor.compress(piece))
        left -= len(piece)
    out.write(compressor.compress(bytes(-size % BLOCK) + end()))
    out.write(compressor.flush())
    return out.getvalue()


def marked_header(size: int) -> bytes:
    return pax({"comment": MANIFEST_MARK.encode()}) + header(MANIFEST, size, b"0", mode=0o600)


def big_window_frame(data: bytes) -> bytes:
    """A zstd frame whose header asks for a 1 GiB window (memory a reader must refuse)."""
    params = zstandard.ZstdCompressionParameters.from_level(
        3, window_log=30, write_content_size=False
    )
    compressor = zstandard.ZstdCompressor(compression_params=params)
    out = io.BytesIO()
    with compressor.stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


def _tar_layer() -> list[tuple[str, bytes]]:
    """(label, plaintext tar) for everything inside the compression."""
    ok_manifest = manifest([entry(p, d) for p, d in CONF.items()])
    files = b"".join(member(p, d) for p, d in CONF.items())
    evil = b"evil\n"
    cases: list[tuple[str, bytes]] = [
        # names
        ("absolute path", good_tar({"/etc/passwd": evil})),
        ("dot-dot", good_tar({"../../outside.txt": evil})),
        ("dot-dot inside", good_tar({"a/../../outside.txt": evil})),
        ("backslash absolute", good_tar({"\\etc\\passwd": evil})),
        ("empty name", files + member("", evil) + marked(ok_manifest) + end()),
        ("name is a dot", files + member(".", evil) + marked(ok_manifest) + end()),
        ("name not UTF-8", files + member(b"caf\xe9.conf", evil) + marked(ok_manifest) + end()),
        (
            "PAX path not UTF-8",
            files
            + pax({"path": b"\xff\xfe.conf"})
            + member("x", evil)
            + marked(ok_manifest)
            + end(),
        ),
        (
            "PAX binary charset",
            files
            + pax({"hdrcharset": b"BINARY", "path": b"x\xff"})
            + member("x", evil)
            + marked(ok_manifest)
            + end(),
        ),
        (
            "PAX path with NUL",
            files + pax({"path": b"a\x00b"}) + member("x", evil) + marked(ok_manifest) + end(),
        ),
        (
            "path of 5000 bytes",
            files + pax({"path": b"a/" * 2500}) + member("x", evil) + marked(ok_manifest) + end(),
        ),
        ("100 folders deep", good_tar({"d/" * 100 + "f": evil})),
        ("a name of 300 bytes", good_tar({"n" * 300 + "/f": evil})),
        # member kinds
        (
            "symbolic link",
            files + header("link", 0, b"2", linkname=b"/etc/shadow") + marked(ok_manifest) + end(),
        ),
        (
            "hard link",
            files + header("hard", 0, b"1", linkname=b"/etc/shadow") + marked(ok_manifest) + end(),
        ),
        ("character device", files + header("tty", 0, b"3") + marked(ok_manifest) + end()),
        ("block device", files + header("sda", 0, b"4") + marked(ok_manifest) + end()),
        ("FIFO", files + header("fifo", 0, b"6") + marked(ok_manifest) + end()),
        ("contiguous file", files + header("c", 5, b"7") + pad(evil) + marked(ok_manifest) + end()),
        (
            "GNU long name",
            files
            + header("././@LongLink", 10, b"L")
            + pad(b"x" * 10)
            + marked(ok_manifest)
            + end(),
        ),
        ("GNU sparse", files + header("s", 5, b"S") + pad(evil) + marked(ok_manifest) + end()),
        ("global header", files + header("g", 0, b"g") + marked(ok_manifest) + end()),
        ("unknown type", files + header("q", 0, b"Q") + marked(ok_manifest) + end()),
        (
            "PAX linkpath on a file",
            files
            + pax({"linkpath": b"/etc/shadow"})
            + member("x", evil)
            + marked(ok_manifest)
            + end(),
        ),
        (
            "PAX sparse map",
            files
            + pax({"GNU.sparse.map": b"0,5"})
            + member("x", evil)
            + marked(ok_manifest)
            + end(),
        ),
        # headers
        (
            "extended header of 1 MiB",
            files + header("big", 1 << 20, b"x") + pad(b"9" * (1 << 20)) + end(),
        ),
        (
            "extended record of the wrong length",
            files + header("p", 20, b"x") + pad(b"99 path=x\n") + member("x") + end(),
        ),
        (
            "extended record without a key",
            files + header("p", 10, b"x") + pad(b"10 =abcde\n") + member("x") + end(),
        ),
        (
            "two extended headers in a row",
            files + pax({"path": b"a"}) + pax({"path": b"b"}) + member("x") + end(),
        ),
        ("extended header describing nothing", files + pax({"path": b"a"}) + end()),
        (
            "bad header checksum",
            files + header("x", 0, checksum=False) + marked(ok_manifest) + end(),
        ),
        ("old v7 header", files + header("x", 0, magic=bytes(8)) + marked(ok_manifest) + end()),
        (
            "size not octal",
            files + header("x", 0, size_field=b"99999999999\x00") + marked(ok_manifest) + end(),
        ),
        (
            "negative base-256 size",
            files + header("x", 0, size_field=b"\xff" * 12) + marked(ok_manifest) + end(),
        ),
        ("a lone zero block", files + bytes(BLOCK) + marked(ok_manifest) + end()),
        ("data after the end", good_tar(CONF) + b"hidden payload" + bytes(BLOCK)),
        ("tar cut mid-member", files + header("cut", 4096) + b"only a little"),
        ("tar without end blocks", files + marked(ok_manifest)),
        ("empty tar", b""),
        # sizes against the limits
        ("a file of 5 GiB", files + header("huge.db", 5 << 30) + b"\0" * BLOCK),
        (
            "files over the total",
            b"".join(member(f"z{i}", bytes(LIMIT_FILE)) for i in range(5)) + end(),
        ),
        ("too many members", b"".join(member(f"m{i}") for i in range(LIMIT_MEMBERS + 1)) + end()),
        ("manifest of 2 MiB", files + marked(b" " * (2 << 20)) + end()),
        # duplicates and shapes
        ("the same file twice", files + member("pjsip.conf", evil) + marked(ok_manifest) + end()),
        (
            "a file and a folder of one name",
            files + folder("pjsip.conf") + marked(ok_manifest) + end(),
        ),
        (
            "a folder and a file of one name",
            folder("d") + member("d", evil) + marked(ok_manifest) + end(),
        ),
        (
            "a file used as a folder",
            files + member("pjsip.conf/inner", evil) + marked(ok_manifest) + end(),
        ),
        ("a member after the manifest", files + marked(ok_manifest) + member("late", evil) + end()),
        ("no manifest", files + end()),
        ("manifest in a folder", files + marked(ok_manifest, "sub/" + MANIFEST) + end()),
        (
            "manifest marked on a folder",
            files + pax({"comment": MANIFEST_MARK.encode()}) + folder("m") + end(),
        ),
        (
            "two marked manifests",
            files + marked(ok_manifest) + marked(ok_manifest, "again.json") + end(),
        ),
    ]
    # the manifest's content
    broken = [
        ("manifest not JSON", b"{not json"),
        ("manifest nested 5000 deep", b"[" * 5000 + b"]" * 5000),
        (
            "manifest with a 5000-digit number",
            manifest([entry(p, d) for p, d in CONF.items()], n=0)[:-1]
            + b', "x": '
            + b"9" * 5000
            + b"}",
        ),
        ("manifest is a list", b"[]"),
        (
            "manifest of another program",
            manifest([entry(p, d) for p, d in CONF.items()], schema="other/1"),
        ),
        (
            "manifest without a file list",
            json.dumps({"schema": "pbx-agent/backup-manifest/1"}).encode(),
        ),
        (
            "manifest lists a missing file",
            manifest([*[entry(p, d) for p, d in CONF.items()], entry("ghost.conf", b"x")]),
        ),
        ("manifest omits a file", manifest([entry("pjsip.conf", CONF["pjsip.conf"])])),
        (
            "manifest SHA-256 differs",
            manifest(
                [
                    entry("pjsip.conf", b"other"),
                    entry("sub/extensions.conf", CONF["sub/extensions.conf"]),
                ]
            ),
        ),
        ("manifest size differs", manifest([{**entry(p, d), "size": 1} for p, d in CONF.items()])),
        ("manifest mode differs", manifest([entry(p, d, 0o4755) for p, d in CONF.items()])),
        ("manifest lists a file twice", manifest([entry(p, d) for p, d in CONF.items()] * 2)),
        (
            "manifest entry absolute",
            manifest([{**entry(p, d), "path": "/" + p} for p, d in CONF.items()]),
        ),
        (
            "manifest SHA-256 not hex",
            manifest([{**entry(p, d), "sha256": "Z" * 64} for p, d in CONF.items()]),
        ),
        (
            "manifest with a duplicate key",
            b'{"schema": "pbx-agent/backup-manifest/1", "files": [], "files": []}',
        ),
        (
            "manifest with a lone surrogate",
            manifest([entry(p, d) for p, d in CONF.items()], driver="\ud800"),
        ),
        ("manifest in UTF-16", ok_manifest.decode().encode("utf-16")),
        (
            "manifest lists a folder not there",
            manifest(
                [
                    *[entry(p, d) for p, d in CONF.items()],
                    {"path": "gone", "type": "dir", "mode": 0o755},
                ]
            ),
        ),
        (
            "manifest entry of an unknown type",
            manifest([{**entry(p, d), "type": "link"} for p, d in CONF.items()]),
        ),
    ]
    cases += [(label, files + marked(data) + end()) for label, data in broken]
    folder_manifest = manifest([{"path": "d", "type": "dir", "mode": 0o700}])
    cases.append(
        (
            "folder mode differs from the manifest",
            folder("d", mode=0o755) + marked(folder_manifest) + end(),
        )
    )
    return cases


def hostile_archives(recipient: pyrage.x25519.Recipient) -> Inputs:
    """(label, archive) pairs; none may restore or verify."""
    plain_tar = good_tar(CONF)
    other = pyrage.x25519.Identity.generate().to_public()
    whole = encrypt(zstd(plain_tar), recipient)
    flipped = bytearray(whole)
    flipped[len(flipped) // 2] ^= 1
    archives: Inputs = [
        ("empty file", b""),
        ("random bytes", os.urandom(4096)),
        ("age header only", whole[:60]),
        ("age to another key", encrypt(zstd(plain_tar), other)),
        ("ciphertext truncated", whole[: len(whole) - 20]),
        ("ciphertext with a flipped bit", bytes(flipped)),
        ("tar not compressed", encrypt(plain_tar, recipient)),
        ("zstd truncated", encrypt(zstd(plain_tar)[:-12], recipient)),
        ("zstd then garbage", encrypt(zstd(plain_tar) + b"\x28\xb5\x2f\xfdgarbage", recipient)),
        ("zstd asking for a 1 GiB window", encrypt(big_window_frame(plain_tar), recipient)),
        ("manifest of 1 GiB of spaces (33 KB)", encrypt(spaces_manifest(1 << 30), recipient)),
    ]
    archives += [(label, encrypt(zstd(tar), recipient)) for label, tar in _tar_layer()]
    return archives


def good_archive(recipient: pyrage.x25519.Recipient) -> bytes:
    return encrypt(zstd(good_tar(CONF)), recipient)
