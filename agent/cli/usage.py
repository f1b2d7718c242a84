"""Signed usage reports: export and verify."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    json_option,
    print_json,
    socket_option,
)


@click.group()
def usage() -> None:
    """Signed usage reports."""


@usage.command("export")
@config_option
@socket_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
def usage_export(config_path: Path, socket_path: Path | None, file: Path) -> None:
    """Write the signed usage reports to FILE, one JSON envelope per line (JSON Lines);
    FILE "-" writes them to stdout.

    \b
    Examples:
      pbx-agent usage export usage.jsonl
      pbx-agent usage export - | gzip > usage.jsonl.gz
    """
    envelopes = ask(config_path, socket_path, "usage-export")
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in envelopes)
    if str(file) == "-":
        click.echo(text, nl=False)
        click.echo(f"{len(envelopes)} usage reports written to stdout", err=True)
        return
    try:
        file.write_text(text)
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror}", EXIT_FAILED)
    click.echo(f"{len(envelopes)} usage reports written to {file}")


@usage.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--public-key", required=True, help="The agent's public key (base64).")
@json_option
def usage_verify(file: Path, public_key: str, as_json: bool) -> None:
    """Prove a usage report chain untampered: every signature and every link. FILE "-"
    reads stdin.

    \b
    Example:
      pbx-agent usage verify usage.jsonl --public-key "$(pbx-agent keys --json | jq -r .public_key)"
    """
    from agent.usage.chain import ChainError, verify
    from agent.usage.keys import AgentKeyError, public_from_b64

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)
    try:
        key = public_from_b64(public_key)
        envelopes = [json.loads(line) for line in text.splitlines() if line.strip()]
        verified = verify(envelopes, key)
    except (AgentKeyError, ValueError) as exc:
        fail(f"{file}: {exc}", EXIT_USAGE)
    except ChainError as exc:
        fail(f"{file}: TAMPERED or broken: {exc}", EXIT_FAILED)
    if as_json:
        print_json({"file": str(file), "verified": verified, "intact": True})
    else:
        click.echo(f"{file}: {verified} usage reports verified, chain intact")
