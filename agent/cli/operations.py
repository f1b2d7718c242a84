"""The daemon's long operations: list them, and follow one again (after Ctrl-C, or from
another terminal)."""

from __future__ import annotations

from pathlib import Path

import click

from agent import render
from agent.cli.backup import RESULTS, show_result
from agent.cli.common import (
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    json_option,
    jsonl_option,
    print_json,
    socket_option,
)
from agent.cli.paths import socket_from_config
from agent.cli.progress import describe, mode_for, run_followed


@click.command("operations")
@config_option
@socket_option
@json_option
def operations_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """List the daemon's long operations (backups, verifies, restores): running, and the
    last ones that ended.

    \b
    Example:
      pbx-agent operations
    """
    ops = ask(config_path, socket_path, "operations")
    if as_json:
        print_json(ops)
        return
    if not ops:
        click.echo("no operation since the daemon started")
        return
    rows = []
    for op in ops:
        progress = op["progress"]
        parts = describe(progress)
        doing = op["error"] or progress["phase"]
        rows.append(
            [
                str(op["id"]),
                op["command"],
                op["state"],
                render.when(op["started_at"]),
                render.clip(f"{doing} ({parts['files']}, {parts['bytes']})", 70),
            ]
        )
    click.echo(render.table(["ID", "COMMAND", "STATE", "STARTED", "PROGRESS"], rows))


@click.command("follow")
@config_option
@socket_option
@click.argument("operation", type=click.IntRange(1))
@json_option
@jsonl_option
def follow_command(
    config_path: Path, socket_path: Path | None, operation: int, as_json: bool, as_jsonl: bool
) -> None:
    """Follow a long operation of the daemon until it ends, with its progress; print its
    result (also when it already ended).

    \b
    Example:
      pbx-agent follow 3
    """
    if as_json and as_jsonl:
        fail("give --json or --jsonl, not both", EXIT_USAGE)
    socket = socket_path or socket_from_config(config_path)
    ops = {op["id"]: op for op in ask(config_path, socket_path, "operations")}
    command = ops[operation]["command"] if operation in ops else None
    title = RESULTS[command][0] if command in RESULTS else f"operation {operation}"
    result = run_followed(
        socket, "follow", {"id": operation}, title=title, mode=mode_for(as_json, as_jsonl)
    )
    if command in RESULTS:
        show_result(command, result, as_json, as_jsonl)
    else:
        print_json(result)
