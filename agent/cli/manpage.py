"""The pbx-agent(1) man page, built from the click commands themselves (their help, options and
examples), so it never drifts from `--help`.

    python -m agent.cli.manpage pbx-agent.1      # scripts/dev/build-manpage wraps this
    man -l pbx-agent.1
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from agent import __version__

EXIT_STATUS = (
    ("0", "success"),
    ("1", "a check or operation failed (diag found a FAIL, the daemon is not running, ...)"),
    ("2", "a usage or configuration error"),
    ("130", "Ctrl-C stopped following a long operation; the daemon carries on with it"),
)
ENVIRONMENT = (
    ("PBX_AGENT_CONFIG", "the configuration file when --config is not given"),
    ("NO_COLOR", "when set (to anything), no colours"),
    ("CREDENTIALS_DIRECTORY", "where systemd puts the credentials *_credential keys name"),
)
FILES = (
    ("/etc/pbx-agent/agent.toml", "the configuration (pbx-agent config show prints it whole)"),
    ("/etc/pbx-agent/agent.example.toml", "every key, documented"),
    ("/var/lib/pbx-agent/", "state: state.db, backups/, known_hosts, the usage signing key"),
    ("/run/pbx-agent/control.sock", "the daemon's control socket (group pbx-agent)"),
)


def escape(text: str) -> str:
    """Text for roff: backslashes and hyphens escaped, no line starting with a control
    character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def _paragraphs(help_text: str) -> Iterator[str]:
    """Click's help as roff: paragraphs re-flowed, `\\b` blocks (examples) kept as written."""
    for block in inspect.cleandoc(help_text).split("\n\n"):
        if block.startswith("\b"):
            yield ".PP\n.nf\n" + escape(block.lstrip("\b\n")) + "\n.fi"
        else:
            yield ".PP\n" + escape(" ".join(block.split()))


def _walk(group: click.Group, ctx: click.Context) -> Iterator[tuple[click.Context, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = command.make_context(name, [], parent=ctx, resilient_parsing=True)
        if isinstance(command, click.Group):
            yield from _walk(command, sub)
        else:
            yield sub, command


def render(cli: click.Group) -> str:
    root = cli.make_context("pbx-agent", [], resilient_parsing=True)
    short = (cli.help or "").strip().splitlines()[0].rstrip(".")
    out = [
        f'.TH PBX\\-AGENT 1 "" "pbx-agent {escape(__version__)}" "User Commands"',
        ".SH NAME",
        f"pbx\\-agent \\- {escape(short[0].lower() + short[1:])}",
        ".SH SYNOPSIS",
        ".B pbx\\-agent",
        "[\\fB\\-V\\fR] [\\fB\\-h\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        *_paragraphs(cli.help or ""),
        ".PP",
        "Every command has \\fB\\-h\\fR, \\fB\\-\\-help\\fR. Commands other than \\fBrun\\fR, "
        "\\fBconfig\\fR, \\fBusage verify\\fR, \\fBstate\\fR and \\fBsimulate\\fR ask the "
        "running daemon over its control socket and say so plainly when it is not running.",
        ".SH COMMANDS",
    ]
    for ctx, command in _walk(cli, root):
        usage = " ".join(command.collect_usage_pieces(ctx))
        out.append(f'.SS "{escape(ctx.command_path)} {escape(usage)}"')
        out += _paragraphs(command.help or "")
        help_option = command.get_help_option(ctx)
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or param is help_option:
                continue
            out += [".TP", f"\\fB{escape(record[0])}\\fR", escape(record[1] or "")]
    for title, rows in (
        ("EXIT STATUS", EXIT_STATUS),
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
    ):
        out.append(f".SH {title}")
        for key, text in rows:
            out += [".TP", f"\\fB{escape(key)}\\fR", escape(text)]
    out += [
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), \\fBage\\fR(1); the README of the "
        "pbx\\-agent source tree.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    from agent.cli.tree import cli

    page = render(cli)
    if not argv or argv[0] == "-":
        sys.stdout.write(page)
        return 0
    target = Path(argv[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page)
    print(f"wrote {target} (read it with: man -l {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
