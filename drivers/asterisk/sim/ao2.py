"""The order in which Asterisk lists the objects of an ao2 hash container: bucket by bucket
(djb2 string hash, `ast_str_hash`), then within a bucket in the container's sort order or, for
unsorted containers, in insertion order. Capture 2 shows it for the maintenance set and the
IAX2 peers."""

from __future__ import annotations

from collections.abc import Iterable


def str_hash(text: str) -> int:
    """ast_str_hash: djb2 (hash * 33 ^ byte) on 32 bits, restricted to a positive int."""
    value = 5381
    for byte in text.encode():
        value = ((value * 33) & 0xFFFFFFFF) ^ byte
    return value & 0x7FFFFFFF


def hash_order(names: Iterable[str], buckets: int, *, sort_in_bucket: bool) -> list[str]:
    indexed = list(enumerate(names))
    return [
        name
        for _, name in sorted(
            indexed,
            key=lambda item: (
                str_hash(item[1]) % buckets,
                item[1].encode() if sort_in_bucket else b"",
                item[0],
            ),
        )
    ]
