"""Configuration commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.common import (
    EXIT_USAGE,
    fail,
    json_option,
    print_json,
)
from agent.errors import ConfigError


@click.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def config_check(file: Path, as_json: bool) -> None:
    """Validate a configuration file (exit 0 if valid, 2 if not).

    \b
    Example:
      pbx-agent config check /etc/pbx-agent/agent.toml
    """
    from agent.config import load_config

    try:
        cfg = load_config(file)
    except ConfigError as exc:
        if as_json:
            print_json({"file": str(file), "valid": False, "errors": str(exc).splitlines()})
            sys.exit(EXIT_USAGE)
        fail(f"config error: {exc}", EXIT_USAGE)
    if as_json:
        print_json({"file": str(file), "valid": True, "site_id": cfg.site_id})
    else:
        click.echo(f"{file}: OK (site {cfg.site_id})")
