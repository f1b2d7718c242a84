"""The state store: recover."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    config_option,
    fail,
    give_to_service,
)
from agent.control_client import request
from agent.errors import AgentError, ConfigError, ControlError, DaemonNotRunning


@click.group("state")
def state_group() -> None:
    """The agent's state store (state.db)."""


@state_group.command("recover")
@config_option
@click.option("--yes", is_flag=True, help="Do it without asking.")
def state_recover(config_path: Path, yes: bool) -> None:
    """Start a new state store when state.db is missing, empty or damaged.

    The daemon must be stopped. The old file is kept beside the new one
    (state.db.damaged-TIME); every row that can still be read is copied into the new
    store, and what could not be read is listed. Signed commands issued before the
    recovery are refused afterwards (their used nonces may be lost).

    \b
    Example:
      systemctl stop pbx-agent
      pbx-agent state recover
      systemctl start pbx-agent
    """
    from agent.config.load import load_config_outside_unit
    from agent.state.recover import describe, diagnose, recover

    try:
        cfg = load_config_outside_unit(config_path)
    except ConfigError as exc:
        fail(f"config error: {exc}", EXIT_USAGE)
    try:
        request(cfg.control.socket, "ping", timeout=5)
    except DaemonNotRunning:
        pass
    except ControlError as exc:
        fail(f"cannot tell whether the daemon is running ({exc}); stop it first", EXIT_FAILED)
    else:
        fail("the daemon is running: stop it first (systemctl stop pbx-agent)", EXIT_FAILED)
    path = cfg.state.dir / "state.db"
    damage = diagnose(path)
    if damage is None:
        click.echo(f"{path} is whole (quick_check ok): nothing to recover")
        return
    click.echo(f"{path}: {damage.splitlines()[0][:300]}")
    if not yes and not click.confirm(
        f"Move {path} aside and start a new state store with what can be read of it?",
        default=False,
    ):
        fail("nothing changed", EXIT_FAILED)
    try:
        result = recover(path)
    except AgentError as exc:
        fail(str(exc), EXIT_FAILED)
    for made in path.parent.glob(f"{path.name}*"):  # the service opens them
        give_to_service(made)
    for line in describe(result, path):
        click.echo(line)
