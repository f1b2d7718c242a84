"""What every command shares: options, failing with an exit code, JSON output, asking the
daemon over the control socket."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn

import click

from agent.control import request
from agent.errors import ControlError

DEFAULT_CONFIG = Path("/etc/pbx-agent/agent.toml")
DEFAULT_SOCKET = Path("/run/pbx-agent/control.sock")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("PBX_AGENT_CONFIG", str(DEFAULT_CONFIG)),
    show_default="$PBX_AGENT_CONFIG or /etc/pbx-agent/agent.toml",
    help="Agent configuration file.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"pbx-agent: {message}", err=True)
    sys.exit(code)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))



socket_option = click.option(
    "--socket", "socket_path", type=click.Path(path_type=Path), help="Control socket."
)


def ask(config_path: Path, socket_path: Path | None, command: str, **args: Any) -> Any:
    """One request to the running daemon; exits 1 with a plain message when it fails."""
    try:
        return request(socket_path or socket_from_config(config_path), command, args, timeout=120)
    except ControlError as exc:
        fail(str(exc), EXIT_FAILED)



def socket_from_config(config_path: Path) -> Path:
    """The control socket named in the config, read without loading secrets (which a
    technician's account may not be allowed to read)."""
    try:
        with config_path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_SOCKET
    socket = data.get("control", {}).get("socket") if isinstance(data, dict) else None
    if not isinstance(socket, str):
        return DEFAULT_SOCKET
    return (config_path.parent / socket).resolve()

