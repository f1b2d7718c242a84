"""The licence and the subscription features it switches."""

from __future__ import annotations

from pathlib import Path

import click

from agent import render
from agent.cli.common import (
    EXIT_FAILED,
    ask,
    config_option,
    fail,
    json_option,
    print_json,
    socket_option,
)


@click.group()
def licence() -> None:
    """The support subscription's licence: state, refresh."""


@licence.command("status")
@config_option
@socket_option
@json_option
def licence_status(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show the licence state, days left and the features it allows.

    \b
    Example:
      pbx-agent licence status
    """
    _show_licence(config_path, socket_path, "licence-status", as_json)


@licence.command("refresh")
@config_option
@socket_option
@json_option
def licence_refresh(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Ask the licence server now, then show the state.

    \b
    Example:
      pbx-agent licence refresh
    """
    _show_licence(config_path, socket_path, "licence-refresh", as_json)


def _show_licence(config_path: Path, socket_path: Path | None, command: str, as_json: bool) -> None:
    result = ask(config_path, socket_path, command)
    failed = command == "licence-refresh" and result.get("last_error")
    if failed:  # the server unreachable, or its answer refused: exit 1 (issue 16, defect 5)
        reason = str(result["last_error"]).splitlines()[0]
        if not as_json:
            click.echo(render.licence(result))
        fail(f"licence refresh failed: {reason}", EXIT_FAILED, result=result)
    if as_json:
        print_json(result)
    else:
        click.echo(render.licence(result))


@click.command("features")
@config_option
@socket_option
@json_option
def features_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Each subscription feature: wanted on or off, actual on the PBX, and how it is switched.

    A feature wanted off that is not shows "not switched: REASON" (and is a critical health
    problem); what the PBX cannot switch is named.

    \b
    Example:
      pbx-agent features
    """
    rows = ask(config_path, socket_path, "features")
    if as_json:
        print_json(rows)
        return
    click.echo(render.features(rows))
