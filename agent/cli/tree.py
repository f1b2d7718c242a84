"""The click command tree: the group, its lazily imported commands (`COMMANDS`), and the
whole command line as `agent.cli.main` runs it when `agent.cli.quick` does not answer."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import NoReturn

import click

import agent

# Each command's module is imported when the command runs (or a help lists it): a
# technician's `pbx-agent count` loads what it uses, not the backup, config or simulator
# commands (about 15 ms of its 0.08 s start).
COMMANDS = {
    "run": "run:run",
    "status": "status:status",
    "count": "status:count_command",
    "inventory": "status:inventory_command",
    "keys": "status:keys_command",
    "events": "status:events_command",
    "licence": "licence:licence",
    "features": "licence:features_command",
    "diag": "diag:diag_command",
    "usage": "usage:usage",
    "backup": "backup:backup",
    "operations": "operations:operations_command",
    "follow": "operations:follow_command",
    "config": "config:config_group",
    "state": "state:state_group",
    "simulate": "simulate:simulate",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, _, name = where.partition(":")
        command: click.Command = getattr(importlib.import_module(f"agent.cli.{module}"), name)
        return command


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"pbx-agent, version {agent.__version__}")
        ctx.exit()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """On-premises agent for phone-system support subscriptions.

    \b
    Example:
      pbx-agent status --config /etc/pbx-agent/agent.toml
    """


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion_command(shell: str) -> None:
    """Print the shell completion script.

    \b
    Example:
      pbx-agent completion bash > /etc/bash_completion.d/pbx-agent
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None
    click.echo(completion(cli, {}, "pbx-agent", "_PBX_AGENT_COMPLETE").source())


def run(args: list[str]) -> NoReturn:
    """The command line through click: its usage errors exit 2, and with --json or --jsonl
    they are also a JSON error object on stdout, like every other failure."""
    color = False if os.environ.get("NO_COLOR") else None
    try:
        code = cli.main(args, prog_name="pbx-agent", standalone_mode=False, color=color)
    except click.ClickException as exc:
        if "--json" in args or "--jsonl" in args:
            message = exc.format_message()
            click.echo(json.dumps({"ok": False, "error": message, "exit_code": exc.exit_code}))
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
