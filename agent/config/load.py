"""Loading a TOML file into `AgentConfig`: every error names the file, the dotted key and
what was expected; relative paths resolve against the config file's directory."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails

from agent.config.schema import AgentConfig, AmiConfig, Section
from agent.config.secrets import (
    environ_or_default,
    read_age_identity,
    read_credential,
    read_secret_file,
)
from agent.errors import ConfigError

# Keys holding paths; relative values are taken from the config file's directory.
PATH_KEYS = (
    ("state", "dir"),
    ("control", "socket"),
    ("pbx", "ami", "secret_file"),
    ("backup", "store"),
    ("backup", "identity_file"),
    ("backup", "ssh", "key_file"),
    ("backup", "ssh", "known_hosts"),
    ("backup", "offsite", "key_file"),
    ("backup", "offsite", "known_hosts"),
    ("mqtt", "password_file"),
    ("mqtt", "tls", "ca_file"),
    ("mqtt", "tls", "cert_file"),
    ("mqtt", "tls", "key_file"),
    ("licence", "ca_file"),
)


# Secret keys refused when written inline, with what to use instead.
INLINE_SECRETS = {
    "pbx.ami.secret": "secret_file (mode 0600) or secret_credential (systemd LoadCredential=)",
    "mqtt.password": "password_file (mode 0600)",
}


def load_config(
    path: Path, *, environ: Mapping[str, str] | None = None, read_secrets: bool = True
) -> AgentConfig:
    """The validated config in `path`, its secrets read (`read_secrets=False` leaves them None:
    for `diag` run by an account that may not read them)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", file=str(path)) from exc
    except RecursionError:
        raise ConfigError(
            f"{path}: not valid TOML for this agent: arrays or tables nested too deeply",
            file=str(path),
        ) from None
    for key, instead in INLINE_SECRETS.items():
        table: Any = data
        for part in key.split(".")[:-1]:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and key.rsplit(".", 1)[-1] in table:
            raise ConfigError(
                f"{path}: {key}: secrets are never written in the config; use {instead}",
                file=str(path),
                key=key,
            )
    _resolve_paths(data, path.parent)
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_describe(err)}" for err in exc.errors()]
        raise ConfigError("\n".join(lines), file=str(path)) from None
    if not read_secrets:
        return cfg.model_copy(update={"source": path.resolve()})
    ami = cfg.pbx.ami
    env = environ_or_default(environ)
    if ami.secret_file is not None:
        secret = read_secret_file(ami.secret_file, config=path, key="pbx.ami.secret_file")
    else:
        assert ami.secret_credential is not None
        secret = read_credential(
            ami.secret_credential, config=path, key="pbx.ami.secret_credential", environ=env
        )
    ami = ami.model_copy(update={"secret": SecretStr(secret)})
    pbx = cfg.pbx.model_copy(update={"ami": ami})
    if cfg.backup.identity_file is not None:
        read_age_identity(cfg.backup.identity_file, config=path, key="backup.identity_file")
    mqtt = cfg.mqtt
    if mqtt.password_file is not None:
        password = read_secret_file(mqtt.password_file, config=path, key="mqtt.password_file")
        mqtt = mqtt.model_copy(update={"password": SecretStr(password)})
    return cfg.model_copy(update={"pbx": pbx, "mqtt": mqtt, "source": path.resolve()})


def load_config_outside_unit(path: Path, *, read_secrets: bool = True) -> AgentConfig:
    """The config as a command run by hand (`config check`, `diag`, `backup pin-host-key`)
    loads it. Outside the unit there is no `$CREDENTIALS_DIRECTORY`; the installer keeps the
    files that the unit's `LoadCredential=` hands to the service beside the config, so a
    `*_credential` secret is read from the config's folder then."""
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(_credentials_dir(path))}
    return load_config(path, environ=env, read_secrets=read_secrets)


def credential_path(name: str, config: Path) -> Path:
    """The file `load_config_outside_unit` reads the credential `name` from."""
    return _credentials_dir(config) / name


def _credentials_dir(config: Path) -> Path:
    return Path(os.environ.get("CREDENTIALS_DIRECTORY") or Path(config).resolve().parent)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for keys in PATH_KEYS:
        table: Any = data
        for key in keys[:-1]:
            table = table.get(key) if isinstance(table, dict) else None
        if isinstance(table, dict) and isinstance(table.get(keys[-1]), str):
            value = Path(table[keys[-1]]).expanduser()
            table[keys[-1]] = value if value.is_absolute() else (base / value).resolve()


def _describe(err: ErrorDetails) -> str:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        known = _known_keys(loc[:-1])
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
        where = f"in [{parent}]" if parent else "at top level"
        return f'{key}: unknown key "{loc[-1]}" {where}{suggestion}; known keys: {", ".join(known)}'
    if kind == "missing":
        return f"{key}: required key is missing"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f", got {got!r}"
    return f"{key}: {err['msg'].removeprefix('Value error, ')}{shown}"


def _known_keys(loc: list[str]) -> list[str]:
    model: type[Section] = AgentConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return []
        model = annotation
    hidden = {"source", "secret", "password"}
    return [name for name in model.model_fields if name not in hidden]


__all__ = ["AmiConfig", "credential_path", "load_config", "load_config_outside_unit"]
