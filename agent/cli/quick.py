"""`pbx-agent count --json` answered without loading click: monitoring and billing scripts run
it in loops, and importing click with the command tree was 0.04 s of the command's own 0.11 s
(issue 19: the daemon path of a count is measured against the count itself).

Only that command line is answered here, its report going out as the daemon encoded it: with
`--config FILE` and `--socket PATH` (either spelling, `--x V` or `--x=V`), to a pipe or a file.
Anything else (another option, a terminal to print for, a config path that is a folder) is
left to the full command line (`agent.cli.tree`), which says it as every command does; a
failed request fails as there (`agent.cli.common.fail_from_control`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from agent.cli.paths import default_config, socket_from_config
from agent.control_client import COMMAND_TIMEOUT, request
from agent.errors import ControlError

_VALUED = ("--config", "--socket")


def answer(args: Sequence[str]) -> None:
    """Answer `args` and exit when it is `count --json` printed for a program; else return."""
    given = _count_json(args)
    if given is None or sys.stdout.isatty():
        return
    config = Path(given.get("--config") or default_config())
    if config.is_dir():  # click's message for it
        return
    socket = Path(given["--socket"]) if "--socket" in given else socket_from_config(config)
    try:
        result = request(
            socket, "count", {"report": False}, timeout=COMMAND_TIMEOUT, undecoded=("report",)
        )
    except ControlError as exc:
        from agent.cli.common import fail_from_control

        fail_from_control(exc, as_json=True)
    out = sys.stdout.buffer
    out.write(result["report"] + b"\n")
    out.flush()
    sys.exit(0)


def _count_json(args: Sequence[str]) -> dict[str, str] | None:
    """The options of `count --json [--config FILE] [--socket PATH]` (the last of each, as
    click takes them), or None for any other command line."""
    if not args or args[0] != "count" or "--json" not in args:
        return None
    given: dict[str, str] = {}
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--json":
            continue
        name, equals, value = arg.partition("=")
        if name not in _VALUED:
            return None
        if not equals:
            value = next(rest, "")
        if not value:
            return None
        given[name] = value
    return given
