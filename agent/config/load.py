"""Loading a TOML file into `AgentConfig`: every error names the file, the dotted key and
what was expected; relative paths resolve against the config file's directory."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from agent.config.schema import AgentConfig, Section
from agent.config.secrets import (
    environ_or_default,
    read_age_identity,
    read_credential,
    read_secret_file,
)
from agent.errors import ConfigError
from agent.tomlfile import read_toml_text
from drivers.base import Driver
from drivers.registry import available
from drivers.settings import DriverSettings

# Keys holding paths; relative values are taken from the config file's directory.
PATH_KEYS = (
    ("state", "dir"),
    ("control", "socket"),
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


# Secret keys refused when written inline, with what to use instead. Every driver's
# settings table is also checked for DriverSettings.INLINE_SECRET_KEYS.
INLINE_SECRETS = {
    "mqtt.password": "password_file (mode 0600)",
}
PBX_SECRET_INSTEAD = "secret_file (mode 0600) or secret_credential (systemd LoadCredential=)"


def load_config(
    path: Path, *, environ: Mapping[str, str] | None = None, read_secrets: bool = True
) -> AgentConfig:
    """The validated config in `path`, its secrets read (`read_secrets=False` leaves them None:
    for `diag` run by an account that may not read them)."""
    path = Path(path)
    try:
        data = tomllib.loads(read_toml_text(path))
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
    drivers = available()
    inline = _inline_secret_keys(data, drivers)
    if inline:
        key, instead = inline[0]
        raise ConfigError(
            f"{path}: {key}: secrets are never written in the config; use {instead}",
            file=str(path),
            key=key,
        )
    _resolve_paths(data, path.parent, drivers)
    errors: list[str] = []
    cls = _driver_settings(data, drivers, errors, path)
    cfg: AgentConfig | None = None
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        errors += [
            f"{path}: {_describe(err)}"
            for err in exc.errors()
            if not (errors and tuple(err["loc"][:2]) == ("pbx", "settings"))
        ]
    if errors or cls is None or cfg is None:
        raise ConfigError("\n".join(errors) or f"{path}: pbx: invalid", file=str(path)) from None
    if not read_secrets:
        return cfg.model_copy(update={"source": path.resolve()})
    pbx_settings = _with_secret(cfg.pbx.settings, cls.settings_table, path, environ)
    pbx = cfg.pbx.model_copy(update={"settings": pbx_settings})
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


def _inline_secret_keys(
    data: dict[str, Any], drivers: Mapping[str, type[Driver]]
) -> list[tuple[str, str]]:
    found = []
    for key, instead in INLINE_SECRETS.items():
        table: Any = data
        for part in key.split(".")[:-1]:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and key.rsplit(".", 1)[-1] in table:
            found.append((key, instead))
    pbx = data.get("pbx")
    if isinstance(pbx, dict):
        for cls in drivers.values():
            table = pbx.get(cls.settings_table)
            if isinstance(table, dict):
                for name in cls.settings_model.INLINE_SECRET_KEYS:
                    if name in table:
                        found.append((f"pbx.{cls.settings_table}.{name}", PBX_SECRET_INSTEAD))
    return found


def _driver_settings(
    data: dict[str, Any], drivers: Mapping[str, type[Driver]], errors: list[str], path: Path
) -> type[Driver] | None:
    """Validate the configured driver's own table with the model it declares, so its errors
    name `pbx.<table>.<key>`; the validated settings replace the table in `data`."""
    pbx = data.get("pbx")
    if not isinstance(pbx, dict):
        return None  # AgentConfig reports the missing or malformed [pbx]
    name = pbx.get("driver", "asterisk")
    cls = drivers.get(name) if isinstance(name, str) else None
    if cls is None:
        errors.append(
            f"{path}: pbx.driver: unknown PBX driver {name!r}; known drivers: "
            f"{', '.join(sorted(drivers))}"
        )
        return None
    tables = {c.settings_table: n for n, c in drivers.items()}
    known = ["driver", cls.settings_table]
    for key in [k for k in pbx if k not in known]:
        if key in tables:
            errors.append(
                f"{path}: pbx.{key}: [pbx.{key}] configures driver {tables[key]!r}, "
                f"but pbx.driver is {name!r}"
            )
        else:
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            errors.append(
                f'{path}: pbx.{key}: unknown key "{key}" in [pbx]{suggestion}; '
                f"known keys: {', '.join(known)}"
            )
        del pbx[key]
    table = pbx.pop(cls.settings_table, None)
    if not isinstance(table, dict):
        errors.append(
            f"{path}: pbx.{cls.settings_table}: required table is missing "
            f"([pbx.{cls.settings_table}] configures driver {name!r})"
        )
        return cls
    try:
        pbx["settings"] = cls.settings_model.model_validate(table)
    except ValidationError as exc:
        prefix = ("pbx", cls.settings_table)
        errors += [f"{path}: {_describe(err, prefix, cls.settings_model)}" for err in exc.errors()]
    return cls


def _with_secret(
    settings: DriverSettings, table: str, path: Path, environ: Mapping[str, str] | None
) -> DriverSettings:
    env = environ_or_default(environ)
    if settings.secret_file is not None:
        secret = read_secret_file(settings.secret_file, config=path, key=f"pbx.{table}.secret_file")
    else:
        assert settings.secret_credential is not None
        secret = read_credential(
            settings.secret_credential,
            config=path,
            key=f"pbx.{table}.secret_credential",
            environ=env,
        )
    return settings.model_copy(update={"secret": SecretStr(secret)})


def _resolve_paths(
    data: dict[str, Any], base: Path, drivers: Mapping[str, type[Driver]]
) -> None:
    keys = [*PATH_KEYS, *(("pbx", c.settings_table, "secret_file") for c in drivers.values())]
    for path_keys in keys:
        table: Any = data
        for key in path_keys[:-1]:
            table = table.get(key) if isinstance(table, dict) else None
        if isinstance(table, dict) and isinstance(table.get(path_keys[-1]), str):
            value = Path(table[path_keys[-1]]).expanduser()
            table[path_keys[-1]] = value if value.is_absolute() else (base / value).resolve()


def _describe(
    err: ErrorDetails, prefix: tuple[str, ...] = (), root: type[BaseModel] = AgentConfig
) -> str:
    loc = [*prefix, *(str(part) for part in err["loc"])]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        known = _known_keys(loc[len(prefix) : -1], root)
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
        where = f"in [{parent}]" if parent else "at top level"
        return f'{key}: unknown key "{loc[-1]}" {where}{suggestion}; known keys: {", ".join(known)}'
    if kind == "missing":
        return f"{key}: required key is missing"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f", got {got!r}"
    return f"{key}: {err['msg'].removeprefix('Value error, ')}{shown}"


def _known_keys(loc: list[str], root: type[BaseModel]) -> list[str]:
    model: type[BaseModel] = root
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, (Section, BaseModel))):
            return []
        model = annotation
    hidden = {"source", "secret", "password", "settings"}
    return [name for name in model.model_fields if name not in hidden]


__all__ = ["credential_path", "load_config", "load_config_outside_unit"]
