"""`pbx-agent diag`: every dependency checked, and the support bundle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    config_option,
    fail,
    json_option,
    print_json,
    socket_option,
)
from agent.cli.paths import socket_from_config
from agent.control_client import request
from agent.errors import ControlError


@click.command("diag")
@config_option
@socket_option
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a support bundle (tar.gz, secrets masked) to this file.",
)
@json_option
def diag_command(
    config_path: Path, socket_path: Path | None, bundle: Path | None, as_json: bool
) -> None:
    """Check everything the agent depends on: PASS/WARN/FAIL, the value, a hint (SKIP: not
    configured on this site).

    Config, PBX AMI login and round trip, SSH host key, the archive host (reachable, key
    pinned, writable, free space), MQTT broker (TLS, credentials), licence server and token,
    certificate expiry, clock skew, disk, permissions, the daemon with its outbox and tasks,
    and its open health problems (one line each). Exit 1 when any check FAILs.

    \b
    Examples:
      pbx-agent diag
      pbx-agent diag --bundle /tmp/pbx-agent-support.tar.gz
    """
    import asyncio  # here, not at the top: the other commands start without it

    from agent.diag.bundle import DAEMON_VIEWS, write_bundle
    from agent.diag.checks import run_checks

    socket = socket_path or socket_from_config(config_path)
    checks = asyncio.run(run_checks(config_path, socket))
    written: list[str] = []
    if bundle is not None:
        views: dict[str, Any] = {}
        for view in DAEMON_VIEWS:
            try:
                views[view] = request(socket, view, {}, timeout=10)
            except ControlError as exc:
                views[view] = {"error": str(exc)}
        try:
            written = write_bundle(bundle, config_path, checks, views)
        except OSError as exc:
            fail(f"cannot write the support bundle {bundle}: {exc.strerror}", EXIT_FAILED)
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        print_json(
            {
                "checks": [c.to_json() for c in checks],
                "failed": failed,
                "bundle": str(bundle) if bundle else None,
            }
        )
    else:
        colours = {"PASS": "green", "WARN": "yellow", "FAIL": "red", "SKIP": "bright_black"}
        for c in checks:
            status = click.style(f"{c.status:<4}", fg=colours[c.status], bold=True)
            click.echo(f"{status}  {c.name:<14} {c.value}")
            if c.hint:
                click.echo(f"      {'':<14} hint: {c.hint}")
        if bundle is not None:
            click.echo(f"support bundle: {bundle} ({len(written)} files, secrets masked)")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)
