"""CLI conventions: every command's --help shows an example; shell completion is printable;
plain output carries no colour codes when not on a TTY."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from agent.cli.tree import cli


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's path, as `pbx-agent` finds them (its commands load when asked for)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None and command.name == name, f"{name} finds {command}"
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, path)
        else:
            yield path


@pytest.mark.parametrize("path", list(commands(cli)), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"pbx-agent {' '.join(path)} --help has no example"


def test_completion_script_for_bash() -> None:
    result = CliRunner().invoke(cli, ["completion", "bash"])
    assert result.exit_code == 0 and "_PBX_AGENT_COMPLETE" in result.output


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2
    assert CliRunner().invoke(cli, ["backup", "restore"]).exit_code == 2
