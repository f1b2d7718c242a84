"""Where a command finds the agent's configuration and the daemon's control socket (without
click: `agent.cli.quick` uses them too)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from agent.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/pbx-agent/agent.toml")
DEFAULT_SOCKET = Path("/run/pbx-agent/control.sock")


def default_config() -> str:
    """The configuration file when none is given: $PBX_AGENT_CONFIG, else the packaged one."""
    return os.environ.get("PBX_AGENT_CONFIG", str(DEFAULT_CONFIG))


def socket_from_config(config_path: Path) -> Path:
    """The control socket named in the config, read without loading secrets (which a
    technician's account may not be allowed to read)."""
    from agent.tomlfile import read_toml_text

    try:
        data = tomllib.loads(read_toml_text(config_path))
    except (OSError, ConfigError, tomllib.TOMLDecodeError, RecursionError):
        return DEFAULT_SOCKET
    socket = data.get("control", {}).get("socket") if isinstance(data, dict) else None
    if not isinstance(socket, str):
        return DEFAULT_SOCKET
    return (config_path.parent / socket).resolve()
