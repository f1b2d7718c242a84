"""An office to simulate: its Asterisk config directory plus its runtime state, from TOML.

name = "Northwind Dental Group"
config_dir = "pbx-config"      # relative to the TOML file
[pbx]
version = "22.10.1"
ami_version = "11.0.0"
system_name = "nw-pbx01"
not_built = ["res_fax.so"]     # modules this Asterisk build lacks (optional)
# ... plus the runtime tables documented in `live.py`
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.asterisk.sim.base import SimContext
from drivers.asterisk.sim.conffile import ConfigStore
from drivers.asterisk.sim.live import LiveState


class OfficeError(ValueError):
    """The office file is missing, is not TOML, or lacks a required key."""


@dataclass(frozen=True)
class Office:
    path: Path
    name: str
    config_dir: Path
    version: str
    ami_version: str
    system_name: str | None
    raw: dict[str, Any]
    not_built: tuple[str, ...] = ()

    def context(self) -> SimContext:
        """A fresh simulation: a private copy of the config files (UpdateConfig never touches
        the source) and runtime state from the office file."""
        scratch = Path(tempfile.mkdtemp(prefix="pbx-sim-"))
        shutil.copytree(self.config_dir, scratch / "etc", dirs_exist_ok=True)
        try:
            live = LiveState.from_toml(self.raw)
        except ValueError as exc:
            raise OfficeError(f"{self.path}: {exc}") from exc
        return SimContext(
            config=ConfigStore(scratch / "etc"),
            live=live,
            system_name=self.system_name,
            version=self.version,
            ami_version=self.ami_version,
            scratch=scratch,
            not_built=self.not_built,
        )


def load_office(path: Path) -> Office:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OfficeError(f"{path}: office file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise OfficeError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OfficeError(f"{path}: not valid TOML: {exc}") from exc
    pbx = raw.get("pbx", {})
    for key, table in (("name", raw), ("config_dir", raw), ("version", pbx)):
        if not isinstance(table.get(key), str):
            where = key if table is raw else f"pbx.{key}"
            raise OfficeError(f"{path}: {where}: required string is missing")
    config_dir = (path.parent / raw["config_dir"]).resolve()
    if not config_dir.is_dir():
        raise OfficeError(f"{path}: config_dir: {config_dir} is not a directory")
    return Office(
        path=path,
        name=raw["name"],
        config_dir=config_dir,
        version=pbx["version"],
        ami_version=str(pbx.get("ami_version", "11.0.0")),
        system_name=pbx.get("system_name"),
        raw=raw,
        not_built=tuple(str(m) for m in pbx.get("not_built", ())),
    )
