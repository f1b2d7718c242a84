"""Writing the age format (age-encryption.org/v1) to X25519 recipients, with the primitives
of the `cryptography` package; the stock `age -d` and pyrage read what it writes.

Why not pyrage's `encrypt_io` (issue 18): it encrypted at ~600 MB/s holding the GIL, so the
rest of the archive pipeline waited for it. OpenSSL's ChaCha20-Poly1305 seals a 64 KiB chunk
at ~3 GB/s here and releases the GIL, so the encryption runs beside the compression.
pyrage still decrypts (`agent.backup.decrypt`).

The format, as c2sp.org/age specifies it:
- a 16-byte random file key, new for each file;
- per recipient, a stanza ``-> X25519 <share>`` whose body is the file key sealed with
  ChaCha20-Poly1305 (nonce of 12 zero bytes) under HKDF-SHA-256(ikm = X25519(ephemeral
  secret, recipient), salt = share || recipient, info = "age-encryption.org/v1/X25519"),
  the share being X25519(ephemeral secret, base point), a new ephemeral secret per stanza;
- the header's MAC: HMAC-SHA-256 under HKDF-SHA-256(file key, salt = "", info = "header")
  over the header up to and including ``---``;
- the payload: a 16-byte random nonce, then 64 KiB chunks sealed under HKDF-SHA-256(file
  key, salt = nonce, info = "payload") with the 12-byte nonce ``counter (11 bytes, big
  endian) || 0x01 for the final chunk, else 0x00``; the final chunk is short or full but
  never empty, unless the whole payload is.
Base64 is standard, unpadded, bodies wrapped at 64 columns. Recipients are Bech32 (BIP173)
with the human-readable part ``age``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 64 * 1024  # plaintext bytes per payload chunk
VERSION_LINE = b"age-encryption.org/v1\n"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def recipient_key(text: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient; ValueError if it is not one."""
    hrp, data = _bech32_decode(text.strip())
    if hrp != "age":
        raise ValueError(f"an age recipient starts with age1, not {hrp}1")
    key = _regroup(data)
    if len(key) != 32:
        raise ValueError(f"an age X25519 recipient holds 32 bytes, not {len(key)}")
    try:  # a point of small order gives an all-zero shared secret: no key at all
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(key))
    except ValueError:
        raise ValueError("not a usable X25519 public key (a point of small order)") from None
    return key


class AgeEncryptor:
    """One age file being written: `header` first, then what `seal` and `finish` return, in
    order. `seal` takes the plaintext in pieces of any size and returns the sealed whole
    chunks; it holds back the last (up to 64 KiB), which `finish` seals as the final one."""

    def __init__(self, recipients: list[bytes]) -> None:
        if not recipients:
            raise ValueError("an age file needs at least one recipient")
        file_key = os.urandom(16)
        header = VERSION_LINE + b"".join(_x25519_stanza(file_key, r) for r in recipients)
        header += b"---"
        mac = hmac.digest(_hkdf(file_key, b"", b"header"), header, hashlib.sha256)
        nonce = os.urandom(16)
        self.header = header + b" " + _b64(mac) + b"\n" + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._pending = bytearray()

    def seal(self, data: bytes) -> list[bytes]:
        self._pending += data
        whole = (len(self._pending) - 1) // CHUNK  # at least one byte stays for `finish`
        if whole <= 0:
            return []
        with memoryview(self._pending) as view:
            sealed = [self._seal(view[n * CHUNK : (n + 1) * CHUNK], 0) for n in range(whole)]
        del self._pending[: whole * CHUNK]
        return sealed

    def finish(self) -> bytes:
        """The final chunk (the empty one when nothing was sealed)."""
        final = self._seal(bytes(self._pending), 1)
        self._pending.clear()
        return final

    def _seal(self, chunk: memoryview | bytes, last: int) -> bytes:
        nonce = self._counter.to_bytes(11, "big") + bytes((last,))
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, None)


def _x25519_stanza(file_key: bytes, recipient: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    wrap_key = _hkdf(secret, share + recipient, _X25519_INFO)
    body = _b64(ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    if len(lines[-1]) == 64:  # the body ends with a line shorter than 64 columns
        lines.append(b"")
    return b"-> X25519 " + _b64(share) + b"\n" + b"".join(line + b"\n" for line in lines)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _bech32_decode(text: str) -> tuple[str, list[int]]:
    """The human-readable part and the 5-bit data (checksum checked and removed) of a
    Bech32 string, all lower or all upper case; no length limit (age's variant)."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    hrp, separator, rest = text.rpartition("1")
    if not separator or not hrp or len(rest) < 6:
        raise ValueError("not a Bech32 string")
    if any(c not in _BECH32_CHARSET for c in rest):
        raise ValueError("a character outside Bech32's alphabet")
    values = [_BECH32_CHARSET.index(c) for c in rest]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _polymod(expanded + values) != 1:
        raise ValueError("bad checksum")
    return hrp, values[:-6]


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_BECH32_GENERATOR):
            if top >> bit & 1:
                check ^= generator
    return check


def _regroup(data: list[int]) -> bytes:
    """5-bit groups to bytes; the padding left over must be under 5 bits and zero."""
    accumulator = bits = 0
    out = bytearray()
    for value in data:
        accumulator = accumulator << 5 | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(accumulator >> bits & 0xFF)
    if bits >= 5 or accumulator & ((1 << bits) - 1):
        raise ValueError("bad padding")
    return bytes(out)
