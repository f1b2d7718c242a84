"""What the running daemon sees: status, count, inventory, keys, events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from agent import render
from agent.cli.common import (
    EXIT_FAILED,
    ask,
    config_option,
    fail,
    json_option,
    print_json,
    socket_from_config,
    socket_option,
)
from agent.control import request
from agent.errors import ControlError, DaemonNotRunning


@click.command()
@config_option
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), help="Control socket.")
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
                if as_json:
                    print_json({"daemon": {"running": False, "reason": str(exc)}})
                fail(str(exc), EXIT_FAILED)
        except ControlError as exc:
            fail(str(exc), EXIT_FAILED)
        time.sleep(0.2)
    if as_json:
        print_json(result)
    else:
        click.echo(render.status(result, endpoints=endpoints))


@click.command("count")
@config_option
@socket_option
@click.option("--explain", is_flag=True, help="One line per seat and per object not counted.")
@json_option
def count_command(
    config_path: Path, socket_path: Path | None, explain: bool, as_json: bool
) -> None:
    """Count the billable users now and show how.

    \b
    Example:
      pbx-agent count --explain
    """
    from agent.counting.explain import explain as render_explain
    from agent.counting.explain import summary

    result = ask(config_path, socket_path, "count")
    report = result["report"]
    if as_json:
        print_json(report)
    elif explain:
        click.echo(render_explain(report))
    else:
        click.echo(summary(report))


@click.command("inventory")
@config_option
@socket_option
@json_option
def inventory_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show everything the counting rules look at on the PBX.

    \b
    Example:
      pbx-agent inventory --json > inventory.json
    """
    inventory = ask(config_path, socket_path, "inventory")
    if as_json:
        print_json(inventory)
        return
    rows = []
    by_aor: dict[str, list[dict[str, Any]]] = {}
    for contact in inventory["contacts"]:
        by_aor.setdefault(contact["aor"], []).append(contact)
    for e in inventory["endpoints"]:
        contacts = [c for aor in e["aors"] for c in by_aor.get(aor, [])]
        agents = "; ".join(c["user_agent"][:30] for c in contacts) or "-"
        cid = e["callerid_number"] or "-"
        rows.append([e["name"], e["technology"], cid, ",".join(e["aors"]) or "-", agents])
    click.echo(render.table(["ENDPOINT", "TECH", "CID", "AORS", "DEVICES"], rows))
    click.echo(
        f"\n{len(inventory['endpoints'])} endpoints, {len(inventory['contacts'])} registered "
        f"contacts, {len(inventory['mailboxes'])} mailboxes, {len(inventory['queues'])} queues, "
        f"{len(inventory['dialplan'])} dialplan objects"
    )
    for warning in inventory["warnings"]:
        click.echo(f"WARNING {warning}")


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
@click.option("--limit", default=50, show_default=True, help="How many recent events.")
@json_option
def events_command(
    config_path: Path, socket_path: Path | None, follow: bool, limit: int, as_json: bool
) -> None:
    """Show recent health events (problems, resolutions, notices) from the local store.

    \b
    Examples:
      pbx-agent events
      pbx-agent events --follow --json
    """
    import time

    after = 0  # 0: the newest `limit`; then everything after the last one shown
    rows = ask(config_path, socket_path, "events", after=after, limit=limit)
    while True:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True) if as_json else render.event_line(row))
            after = row["seq"]
        if not follow:
            return
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return
        rows = ask(config_path, socket_path, "events", after=after, limit=500)
