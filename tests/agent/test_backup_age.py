"""The age writer: the stock `age -d` and pyrage read what it writes at every chunk boundary,
each recipient can open it, and a recipient string is checked as age checks it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.backup.age import (
    CHUNK,
    AgeEncryptor,
    _bech32_decode,
    _polymod,
    _regroup,
    recipient_key,
)
from agent.config.schema import _check_age_recipient

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the stock age CLI is needed")


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def encrypt(data: bytes, recipients: list[str], piece: int) -> bytes:
    """`data` through an `AgeEncryptor`, handed over `piece` bytes at a time."""
    encryptor = AgeEncryptor([recipient_key(r) for r in recipients])
    out = [encryptor.header]
    for start in range(0, len(data), piece):
        out += encryptor.seal(data[start : start + piece])
    out.append(encryptor.finish())
    return b"".join(out)


def stock_decrypt(blob: bytes, identity: pyrage.x25519.Identity, tmp_path: Path) -> bytes:
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    done = subprocess.run(
        ["age", "-d", "-i", str(key)], input=blob, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 16 * CHUNK, 3 * CHUNK + 5]
)
@pytest.mark.parametrize("piece", [1000, CHUNK, 1024 * 1024])
def test_the_stock_age_cli_and_pyrage_decrypt_it_at_every_chunk_boundary(
    size: int, piece: int, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    data = os.urandom(size)
    blob = encrypt(data, [str(identity.to_public())], piece)
    assert stock_decrypt(blob, identity, tmp_path) == data
    assert pyrage.decrypt(blob, [identity]) == data


def test_each_recipient_opens_it_and_no_two_files_share_a_key(
    identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    other = pyrage.x25519.Identity.generate()
    data = b"[100]\ntype = endpoint\n" * 5000
    recipients = [str(identity.to_public()), str(other.to_public())]
    first, second = encrypt(data, recipients, 4096), encrypt(data, recipients, 4096)
    assert first.count(b"\n-> X25519 ") == 2
    assert stock_decrypt(first, other, tmp_path) == data
    assert pyrage.decrypt(first, [identity]) == data
    assert first[:200] != second[:200] and first[-100:] != second[-100:]
    assert data[:20] not in first


def test_a_file_cut_at_a_chunk_boundary_is_refused(
    identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    """Without its final chunk the stream must not pass for whole (age's STREAM rule)."""
    encryptor = AgeEncryptor([recipient_key(str(identity.to_public()))])
    blob = encryptor.header + b"".join(encryptor.seal(os.urandom(3 * CHUNK)))
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    done = subprocess.run(["age", "-d", "-i", str(key)], input=blob, capture_output=True)
    assert done.returncode != 0
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(blob, [identity])


def test_a_recipient_is_the_public_key_of_its_identity() -> None:
    """Cross-checked with another Bech32 string: the identity's secret, whose X25519 public
    key `cryptography` computes, must be the 32 bytes `recipient_key` reads."""
    for _ in range(20):
        identity = pyrage.x25519.Identity.generate()
        hrp, data = _bech32_decode(str(identity))
        assert hrp == "age-secret-key-"
        public = X25519PrivateKey.from_private_bytes(_regroup(data)).public_key()
        assert recipient_key(str(identity.to_public())) == public.public_bytes_raw()
        assert recipient_key(str(identity.to_public()).upper()) == public.public_bytes_raw()


def flip(text: str, at: int) -> str:
    alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    return text[:at] + alphabet[(alphabet.index(text[at]) + 1) % 32] + text[at + 1 :]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda r: flip(r, 20), "bad checksum"),
        (lambda r: flip(r, len(r) - 1), "bad checksum"),
        (lambda r: r[:10] + r[10:].upper(), "mixed case"),
        (lambda r: r[:20] + "b" + r[21:], "outside Bech32's alphabet"),
        (lambda r: "age1notakey", "not a Bech32 string|outside"),
        (lambda r: "", "not a Bech32 string"),
        (lambda r: r[:30] + r[31:], "bad checksum"),
    ],
)
def test_a_damaged_recipient_is_refused_with_the_reason(damage: object, reason: str) -> None:
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    text = damage(recipient)  # type: ignore[operator]
    with pytest.raises(ValueError, match=reason):
        recipient_key(text)
    with pytest.raises(ValueError, match="is not an age X25519 public key"):
        _check_age_recipient(text)


def test_an_identity_is_not_taken_for_a_recipient() -> None:
    with pytest.raises(ValueError, match="starts with age1, not age-secret-key-1"):
        recipient_key(str(pyrage.x25519.Identity.generate()))


def bech32(hrp: str, data: bytes) -> str:
    """`data` as Bech32 with `hrp` (BIP173), to make recipients age-keygen would never print."""
    accumulator = bits = 0
    groups = []
    for byte in data:
        accumulator, bits = accumulator << 8 | byte, bits + 8
        while bits >= 5:
            bits -= 5
            groups.append(accumulator >> bits & 31)
    if bits:
        groups.append(accumulator << (5 - bits) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    check = _polymod(expanded + groups + [0] * 6) ^ 1
    groups += [check >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join("qpzry9x8gf2tvdw0s3jn54khce6mua7l"[g] for g in groups)


def test_a_recipient_of_small_order_or_wrong_size_is_refused() -> None:
    """A well-formed string that holds no usable key is refused when read (config check),
    not when the first backup runs."""
    genuine = recipient_key(str(pyrage.x25519.Identity.generate().to_public()))
    assert recipient_key(bech32("age", genuine)) == genuine  # the helper writes real ones
    with pytest.raises(ValueError, match="small order"):
        recipient_key(bech32("age", bytes(32)))
    with pytest.raises(ValueError, match="32 bytes, not 31"):
        recipient_key(bech32("age", genuine[:31]))
