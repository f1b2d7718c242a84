"""The `pbx-agent` command line. Exit codes: 0 ok, 1 failed check or operation, 2 usage or
config error (130: stopped following a long operation with Ctrl-C; it goes on). Commands
other than `run`, `config`, `usage verify`, `state` and `simulate` ask the running daemon over
its control socket. `NO_COLOR` (any value) turns colours off.

Click and the command tree (`agent.cli.tree`) load only when `agent.cli.quick` does not answer
the command line by itself."""

from __future__ import annotations

import sys
from typing import NoReturn

from agent.cli import quick


def main(argv: list[str] | None = None) -> NoReturn:
    """The `pbx-agent` entry point."""
    args = sys.argv[1:] if argv is None else argv
    quick.answer(args)
    from agent.cli import tree

    tree.run(args)
