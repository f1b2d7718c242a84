"""`pbx-agent run`: the daemon in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    config_option,
)
from agent.errors import AgentError, ConfigError


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Run one poll cycle, then stop (exit 1 if it failed).")
def run(config_path: Path, once: bool) -> None:
    """Run the daemon in the foreground (systemd runs this).

    \b
    Example:
      pbx-agent run --config /etc/pbx-agent/agent.toml
    """
    import asyncio  # here, not at the top: the commands that ask the daemon start without it

    import structlog

    from agent.config import load_config
    from agent.daemon import Daemon
    from agent.logs import configure_logging

    log = structlog.get_logger("agent.cli")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        configure_logging()  # structured like every later line (the journal gets priority 3)
        log.error("config error", error=str(exc), file=exc.file, key=exc.key)
        sys.exit(EXIT_USAGE)
    configure_logging(cfg.logging.level, cfg.logging.format, secrets=cfg.secret_values())
    try:
        code = asyncio.run(Daemon(cfg, once=once).run())
    except AgentError as exc:
        log.error("daemon failed", error=str(exc))
        sys.exit(EXIT_FAILED)
    sys.exit(code)
