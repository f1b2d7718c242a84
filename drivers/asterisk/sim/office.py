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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.asterisk.sim.base import SimContext
from drivers.asterisk.sim.conffile import ConfigStore
from drivers.asterisk.sim.live import LiveState
from drivers.sim_server import OfficeError, read_office


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
    raw, config_dir = read_office(path)
    pbx = raw.get("pbx", {})
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
