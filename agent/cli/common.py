"""What every command shares: options, failing with an exit code (and, for a `--json`
command, a JSON error object on stdout), JSON output, asking the daemon over the control
socket."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from agent import compact_json
from agent.cli.paths import default_config, socket_from_config
from agent.control_client import COMMAND_TIMEOUT, Encoded, request
from agent.errors import CommandFailed, ControlError

# 130: the technician stopped following a long operation with Ctrl-C (it goes on).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_config,
    show_default="$PBX_AGENT_CONFIG or /etc/pbx-agent/agent.toml",
    help="Agent configuration file.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (for scripts)."
)
jsonl_option = click.option(
    "--jsonl", "as_jsonl", is_flag=True, help="Stream JSON Lines: progress, then the result."
)
socket_option = click.option(
    "--socket", "socket_path", type=click.Path(path_type=Path), help="Control socket."
)


def wants_json() -> bool:
    """Whether the running command was asked for JSON (`--json` or `--jsonl`)."""
    ctx = click.get_current_context(silent=True)
    params = ctx.params if ctx is not None else {}
    return bool(params.get("as_json") or params.get("as_jsonl"))


def fail(message: str, code: int, *, as_json: bool | None = None, **details: Any) -> NoReturn:
    """Exit with `code`, saying why on stderr; a `--json` command also prints the error as
    JSON on stdout (`details` added to it), so a script reading stdout always gets one JSON
    document. `as_json`: whether it is one, when not run through click (`agent.cli.quick`)."""
    if wants_json() if as_json is None else as_json:
        print_json({"ok": False, "error": message, "exit_code": code, **details})
    click.echo(f"pbx-agent: {message}", err=True)
    sys.exit(code)


def fail_from_control(exc: ControlError, *, as_json: bool | None = None) -> NoReturn:
    """A failed request: exit 2 when the site's configuration does not allow it, else 1."""
    config = isinstance(exc, CommandFailed) and exc.kind == "config"
    fail(str(exc), EXIT_USAGE if config else EXIT_FAILED, as_json=as_json)


def print_json(value: Any) -> None:
    """Indented for a person at a terminal; one compact line for a program (piped or
    redirected), keys sorted (`compact_json`): a 10,000-seat count is 6.6 MB indented, and
    `indent` makes `json` encode in Python, 0.2 s of the command's time."""
    terminal = sys.stdout.isatty()
    if isinstance(value, Encoded):  # compact, keys sorted, by the daemon
        if not terminal:
            click.echo(value)  # as it came: no decoding and encoding again
            return
        value = json.loads(value)
    if terminal:
        click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
    else:
        click.echo(compact_json.dumps(value))


def ask(
    config_path: Path,
    socket_path: Path | None,
    command: str,
    *,
    undecoded: tuple[str, ...] = (),
    **args: Any,
) -> Any:
    """One request to the running daemon; exits 1 (2 for a configuration refusal) with a
    plain message when it fails. `undecoded`: as `request` takes it."""
    socket = socket_path or socket_from_config(config_path)
    try:
        return request(socket, command, args, timeout=COMMAND_TIMEOUT, undecoded=undecoded)
    except ControlError as exc:
        fail_from_control(exc)


def give_to_service(made: Path, *, mode: int | None = None) -> None:
    """Run as root, a file the service opens itself (known_hosts, a recovered state.db) takes
    its folder's owner (the service's account), and `mode` if given; otherwise untouched."""
    if os.geteuid() != 0:
        return
    folder = made.parent.stat()
    os.chown(made, folder.st_uid, folder.st_gid)
    if mode is not None:
        made.chmod(mode)
