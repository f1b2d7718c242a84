"""The effective configuration (`pbx-agent config show`): every key the agent uses, its value
after defaults and path resolution, and where it came from: the file, the built-in default,
or for secrets the credential or file they were read from (never the secret itself)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config.schema import AgentConfig
from agent.tomlfile import read_toml_text

HIDDEN = "(hidden)"


@dataclass(frozen=True, slots=True)
class Entry:
    key: str  # dotted, as written in TOML: pbx.ami.host
    value: Any  # JSON-ready; None when not set
    source: str  # "file", "default", or for a secret "credential NAME" / "file PATH"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source}


def effective(cfg: AgentConfig, path: Path) -> list[Entry]:
    """Every key of `cfg` (loaded from `path`) with its value and source, in TOML order."""
    raw = tomllib.loads(read_toml_text(path))
    dumped = cfg.model_dump(mode="json", exclude={"pbx"})
    table = cfg.pbx.table
    pbx = {
        "driver": cfg.pbx.driver,
        table: cfg.pbx.settings.model_dump(mode="json", exclude={"secret"}),
    }
    tree = {"site_id": dumped.pop("site_id"), "pbx": pbx, **dumped}
    entries: list[Entry] = []
    _walk(tree, raw, (), entries)
    settings = cfg.pbx.settings
    if settings.secret_credential is not None:
        source = f"credential {settings.secret_credential}"
    else:
        source = f"file {settings.secret_file}"
    entries.insert(_after(entries, f"pbx.{table}."), Entry(f"pbx.{table}.secret", HIDDEN, source))
    if cfg.mqtt.password is not None:
        at = _after(entries, "mqtt.")
        entries.insert(at, Entry("mqtt.password", HIDDEN, f"file {cfg.mqtt.password_file}"))
    return entries


def _walk(value: Any, raw: Any, key: tuple[str, ...], out: list[Entry]) -> None:
    """Tables are walked; anything else is one entry. Dicts of free keys (endpoint overrides,
    command keys) are one entry each."""
    in_file = isinstance(raw, dict)
    if isinstance(value, dict) and key and key[-1] in ("endpoints", "command_keys", "keys"):
        out.append(Entry(".".join(key), value, "file" if value else "default"))
        return
    if isinstance(value, dict):
        for name, item in value.items():
            _walk(item, raw.get(name) if in_file else None, (*key, name), out)
        return
    out.append(Entry(".".join(key), value, "file" if raw is not None else "default"))


def _after(entries: list[Entry], prefix: str) -> int:
    """The index just after the last entry whose key starts with `prefix`."""
    last = max((i for i, e in enumerate(entries) if e.key.startswith(prefix)), default=-1)
    return last + 1 if last >= 0 else len(entries)


def as_toml(entries: list[Entry], path: Path) -> str:
    """The entries as a TOML file, each line commented with its source; keys not set are
    comments. Secrets show as comments too (their value is never printed)."""
    lines = [
        f"# The effective configuration of {path}",
        "# (file: written there; default: built in; secrets: where they are read from)",
    ]
    tables: dict[tuple[str, ...], list[Entry]] = {}  # a table's keys together, parents first
    for entry in entries:
        tables.setdefault(tuple(entry.key.split(".")[:-1]), []).append(entry)
    for table, members in tables.items():
        if table:
            lines += ["", f"[{'.'.join(table)}]"]
        for entry in members:
            name = entry.key.rsplit(".", 1)[-1]
            if entry.value == HIDDEN:
                text = f"# {name} = {HIDDEN}"
            elif entry.value is None:
                text = f"# {name}: not set"
            else:
                text = f"{name} = {_toml_value(entry.value)}"
            lines.append(f"{text.ljust(48)}  # {entry.source}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(
            f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None
        )
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings (basic TOML strings), numbers
