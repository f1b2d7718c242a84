"""Signed usage reports: export and verify."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    socket_option,
)


@click.group()
def usage() -> None:
    """Signed usage reports."""


@usage.command("export")
@config_option
@socket_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def usage_export(config_path: Path, socket_path: Path | None, file: Path) -> None:
    """Write the signed usage reports to FILE (one JSON envelope per line).

    \b
    Example:
      pbx-agent usage export usage.jsonl
    """
    envelopes = ask(config_path, socket_path, "usage-export")
    file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in envelopes))
    click.echo(f"{len(envelopes)} usage reports written to {file}")


@usage.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", required=True, help="The agent's public key (base64).")
def usage_verify(file: Path, public_key: str) -> None:
    """Prove a usage report chain untampered: every signature and every link.

    \b
    Example:
      pbx-agent usage verify usage.jsonl --public-key "$(pbx-agent keys --json | jq -r .public_key)"
    """
    from agent.usage.chain import ChainError, verify
    from agent.usage.keys import AgentKeyError, public_from_b64

    try:
        key = public_from_b64(public_key)
        envelopes = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        verified = verify(envelopes, key)
    except (AgentKeyError, ValueError) as exc:
        fail(f"{file}: {exc}", EXIT_USAGE)
    except ChainError as exc:
        fail(f"{file}: TAMPERED or broken: {exc}", EXIT_FAILED)
    click.echo(f"{file}: {verified} usage reports verified, chain intact")
