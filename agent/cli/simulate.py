"""PBX simulators for demos and tests."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    fail,
)


@click.group()
def simulate() -> None:
    """Run a PBX simulator for demos and tests."""


@simulate.command("asterisk")
@click.option(
    "--office",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Office description (TOML).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=5038, show_default=True)
def simulate_asterisk(office: Path, host: str, port: int) -> None:
    """Serve an office over the Asterisk Manager Interface (AMI) protocol.

    \b
    Example:
      pbx-agent simulate asterisk --office config/demo/office.toml --port 15038
    """
    from drivers.asterisk.simulator import serve

    _serve_simulator(serve, "AMI", office, host, port)


@simulate.command("freeswitch")
@click.option(
    "--office",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Office description (TOML) naming its FreeSWITCH configuration tree.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8021, show_default=True)
def simulate_freeswitch(office: Path, host: str, port: int) -> None:
    """Serve an office over FreeSWITCH's event socket (ESL) protocol.

    \b
    Example:
      pbx-agent simulate freeswitch --office tests/fixtures/offices/bayside-coastal.toml \\
        --port 18021
    """
    from drivers.freeswitch.simulator import serve

    _serve_simulator(serve, "ESL", office, host, port)


def _serve_simulator(
    serve: Callable[..., Coroutine[Any, Any, None]],
    protocol: str,
    office: Path,
    host: str,
    port: int,
) -> None:
    """Run a simulator's `serve` until interrupted; bad offices are usage errors."""
    import asyncio  # here, not at the top: the commands that ask the daemon start without it

    def ready(bound: int) -> None:
        click.echo(f"{protocol} simulator serving {office} on {host}:{bound}", err=True)

    try:
        asyncio.run(serve(office, host, port, ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)
    except ValueError as exc:  # a bad office file, or a configuration that does not load
        fail(str(exc), EXIT_USAGE)
