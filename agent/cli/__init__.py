"""The `pbx-agent` command line. Exit codes: 0 ok, 1 failed check or operation, 2 usage or
config error. Commands other than `run`, `config check` and `simulate` ask the running daemon
over its control socket."""

from __future__ import annotations

import click

from agent import __version__
from agent.cli import backup, config, diag, licence, run, simulate, state, status, usage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pbx-agent")
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


for command in (
    run.run,
    status.status,
    status.count_command,
    status.inventory_command,
    status.keys_command,
    status.events_command,
    licence.licence,
    licence.features_command,
    diag.diag_command,
    usage.usage,
    backup.backup,
    config.config_group,
    state.state_group,
    simulate.simulate,
):
    cli.add_command(command)


def main() -> None:
    cli()
