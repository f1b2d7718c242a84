"""The agent's Ed25519 key pair: created on first start, private key 0600 in the state dir."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import AgentError

KEY_FILE = "agent-ed25519.pem"


class AgentKeyError(AgentError):
    """The agent key cannot be created, read or used."""


def load_or_create(state_dir: Path) -> Ed25519PrivateKey:
    path = state_dir / KEY_FILE
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise AgentKeyError(
                f"{path}: private key has mode {mode:04o}; expected 0600 (chmod 600 {path})"
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise AgentKeyError(f"{path}: not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise AgentKeyError(f"{path}: not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return key


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    return base64.b64encode(public_raw(key)).decode()


def public_keys(configured: Mapping[str, str]) -> dict[str, Ed25519PublicKey]:
    """Pinned public keys from config (key id -> base64), e.g. vendor or central keys."""
    return {kid: public_from_b64(value) for kid, value in configured.items()}


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short, stable name for the key: the first 16 hex digits of SHA-256 of its bytes."""
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def public_from_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise AgentKeyError(f"not a base64 Ed25519 public key: {exc}") from exc
