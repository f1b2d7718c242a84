"""Reading secrets from files (mode 0600 or stricter) or systemd credentials."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from pathlib import Path

from agent.errors import ConfigError


def read_secret_file(path: Path, *, config: Path, key: str) -> str:
    """The secret in `path`, refusing a file that group or others may read or write."""
    where = f"{config}: {key}"
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{where}: secret file {path} does not exist", file=str(config), key=key
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read secret file {path}: {exc.strerror}", file=str(config), key=key
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"{where}: secret file {path} is not a regular file", file=str(config), key=key
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{where}: secret file {path} has mode {mode:04o}, readable or writable by group "
            f"or others; expected 0600 or stricter (fix: chmod 600 {path})",
            file=str(config),
            key=key,
        )
    return _read(path, where, config=config, key=key)


def read_credential(name: str, *, config: Path, key: str, environ: Mapping[str, str]) -> str:
    """A systemd credential (`LoadCredential=`), from `$CREDENTIALS_DIRECTORY/<name>`."""
    where = f"{config}: {key}"
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"{where}: credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
            "(use LoadCredential= in the systemd unit, or secret_file instead)",
            file=str(config),
            key=key,
        )
    path = Path(directory) / name
    if not path.is_file():
        raise ConfigError(
            f"{where}: credential {name!r} not found in {directory}", file=str(config), key=key
        )
    return _read(path, where, config=config, key=key)


def _read(path: Path, where: str, *, config: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except PermissionError as exc:
        raise ConfigError(
            f"{where}: {path} may not be read by user {user_name()} (a secret is readable by root "
            "and the service only: run this as root)",
            file=str(config),
            key=key,
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc}", file=str(config), key=key) from exc
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if not text:
        raise ConfigError(f"{where}: secret in {path} is empty", file=str(config), key=key)
    return text


def user_name() -> str:
    """The name of the account this process runs as."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def read_age_identity(path: Path, *, config: Path, key: str) -> None:
    """Check an age identity file (the backups' private key): a secret file (0600 or
    stricter) holding at least one `AGE-SECRET-KEY-1...` line, every one valid."""
    import pyrage

    text = read_secret_file(path, config=config, key=key)
    lines = [line.strip() for line in text.splitlines()]
    found = [line for line in lines if line.startswith("AGE-SECRET-KEY-")]
    if not found:
        raise ConfigError(
            f"{config}: {key}: {path} holds no age identity (an AGE-SECRET-KEY-1... line, "
            "as age-keygen writes it)",
            file=str(config),
            key=key,
        )
    for number, identity in enumerate(found, 1):
        try:
            pyrage.x25519.Identity.from_str(identity)
        except Exception:  # pyrage.IdentityError; the key itself is never shown
            raise ConfigError(
                f"{config}: {key}: identity {number} in {path} is not a valid age X25519 identity",
                file=str(config),
                key=key,
            ) from None


def environ_or_default(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ
