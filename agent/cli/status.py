"""What the running daemon sees: status, count, inventory, keys, events. The plain-text
renderers load only for the commands that print plain text (`count --json` starts faster)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    fail_from_control,
    json_option,
    print_json,
    socket_option,
)
from agent.cli.paths import socket_from_config
from agent.control_client import request
from agent.errors import ControlError, DaemonNotRunning


@click.command()
@config_option
@socket_option
@click.option("--endpoints", is_flag=True, help="Also list the PBX's endpoints.")
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for the daemon to start and finish its first poll.",
)
@json_option
def status(
    config_path: Path, socket_path: Path | None, endpoints: bool, wait: float, as_json: bool
) -> None:
    """Show the daemon's state and what it sees of the PBX.

    \b
    Example:
      pbx-agent status --endpoints
    """
    path = socket_path or socket_from_config(config_path)
    deadline = time.monotonic() + wait
    while True:
        try:
            result = request(path, "status")
            if result["pbx"]["last_poll"] is not None or time.monotonic() >= deadline:
                break
        except DaemonNotRunning as exc:
            if time.monotonic() >= deadline:
                fail(str(exc), EXIT_FAILED)
        except ControlError as exc:
            fail_from_control(exc)
        time.sleep(0.2)
    if as_json:
        print_json(result)
    else:
        from agent import render

        click.echo(render.status(result, endpoints=endpoints))


@click.command("count")
@config_option
@socket_option
@click.option("--explain", is_flag=True, help="One line per seat and per object not counted.")
@click.option(
    "--report",
    is_flag=True,
    help="Also record this count and send its signed usage report upstream (as the "
    "daemon's scheduled counts do).",
)
@json_option
def count_command(
    config_path: Path, socket_path: Path | None, explain: bool, report: bool, as_json: bool
) -> None:
    """Count the billable users now and show how.

    A count from here is for looking: nothing is recorded or sent upstream unless --report
    (the daemon counts every counting.interval and reports those).

    \b
    Examples:
      pbx-agent count --explain
      pbx-agent count --report
    """
    undecoded = ("report",) if as_json else ()  # printed as the daemon encoded it, when piped
    result = ask(config_path, socket_path, "count", undecoded=undecoded, report=report)
    counted = result["report"]
    if as_json:
        print_json(counted)
        return
    from agent.counting.explain import explain as render_explain
    from agent.counting.explain import summary

    click.echo(render_explain(counted) if explain else summary(counted))
    if report:
        click.echo(f"usage report {result['usage']['payload']['id']} recorded and queued upstream")


@click.command("inventory")
@config_option
@socket_option
@json_option
def inventory_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show everything the counting rules look at on the PBX, with each endpoint's
    effective options as Asterisk applies them (templates and (+) additions merged).

    \b
    Example:
      pbx-agent inventory --json > inventory.json
    """
    inventory = ask(config_path, socket_path, "inventory")
    if as_json:
        print_json(inventory)
        return
    from agent import render

    click.echo(render.inventory(inventory))


@click.command("keys")
@config_option
@socket_option
@json_option
def keys_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show the agent's public key (usage reports are signed with it).

    \b
    Example:
      pbx-agent keys
    """
    info = ask(config_path, socket_path, "keys")
    if as_json:
        print_json(info)
    else:
        click.echo(f"{info['algorithm']} key {info['key_id']}\npublic key: {info['public_key']}")


@click.command("events")
@config_option
@socket_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
    help="How many recent events.",
)
@json_option
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per line (streams).")
def events_command(
    config_path: Path,
    socket_path: Path | None,
    follow: bool,
    limit: int,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Show recent health events (problems, resolutions, notices) from the local store.

    --json prints one JSON array; --jsonl one event per line, and with --follow goes on
    streaming (--follow --json cannot be one document).

    \b
    Examples:
      pbx-agent events
      pbx-agent events --json
      pbx-agent events --follow --jsonl
    """
    if as_json and (follow or as_jsonl):
        fail("--json prints one document: use --jsonl to stream with --follow", EXIT_USAGE)
    after = 0  # 0: the newest `limit`; then everything after the last one shown
    rows = ask(config_path, socket_path, "events", after=after, limit=limit)
    if as_json:
        print_json(rows)
        return
    from agent import render

    try:
        while True:
            for row in rows:
                click.echo(render.json_line(row) if as_jsonl else render.event_line(row))
                after = row["seq"]
            if not follow:
                return
            time.sleep(1.0)
            rows = ask(config_path, socket_path, "events", after=after, limit=500)
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends
