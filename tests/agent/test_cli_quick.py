"""`pbx-agent count --json` answered before click loads (`agent.cli.quick`): the same bytes,
exit codes and error messages as through the full command line, and every other form of the
command (`--report`, a folder for a config) still goes through it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.control import ControlServer
from agent.daemon import CONTROL_ARGS

REPORT = {
    "billable": 2,
    "seats": [{"extension": "101", "name": "Zoë Müller"}, {"extension": "102", "name": "Bo"}],
}
# `pbx-agent ARGS`, then on stderr whether click was ever imported
PROBE = (
    "import sys; from agent.cli import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "finally:\n    print('click loaded:', 'click' in sys.modules, file=sys.stderr)\n"
)
# the same command line through click
THROUGH_CLICK = "import sys; from agent.cli import tree; tree.run(sys.argv[1:])"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Path, list[Mapping[str, Any]]]]:
    """A control socket serving `count` as the daemon does (its arguments checked, the
    report sent as a line of its own); yields the socket and the arguments of each count."""
    asked: list[Mapping[str, Any]] = []

    async def count(args: Mapping[str, Any]) -> dict[str, Any]:
        asked.append(args)
        return {"report": REPORT, "usage": None}

    server = ControlServer(
        tmp_path / "control.sock", {"count": count}, CONTROL_ARGS, attached={"count": ("report",)}
    )
    await server.start()
    yield server.path, asked
    await server.stop()


async def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_count_json_prints_what_the_full_command_line_prints_without_loading_click(
    daemon: tuple[Path, list[Mapping[str, Any]]], tmp_path: Path
) -> None:
    sock, asked = daemon
    config = tmp_path / "agent.toml"
    config.write_text(f'[control]\nsocket = "{sock.name}"\n')
    expected = await run(THROUGH_CLICK, "count", "--json", "--socket", str(sock))
    assert expected.returncode == 0, expected.stderr
    assert json.loads(expected.stdout) == REPORT
    for args in (
        ["count", "--json", "--socket", str(sock)],
        ["count", f"--socket={sock}", "--json"],
        ["count", "--config", str(config), "--json"],  # the socket named in the config
    ):
        quick = await run(PROBE, *args)
        assert quick.returncode == 0, quick.stderr
        assert quick.stdout == expected.stdout, args
        assert "click loaded: False" in quick.stderr, args
    assert asked == [{"report": False}] * 4  # as the full command line asks


async def test_other_forms_of_count_go_through_click(
    daemon: tuple[Path, list[Mapping[str, Any]]], tmp_path: Path
) -> None:
    sock, asked = daemon
    reported = await run(PROBE, "count", "--json", "--report", "--socket", str(sock))
    assert reported.returncode == 0, reported.stderr
    assert json.loads(reported.stdout) == REPORT
    assert "click loaded: True" in reported.stderr
    assert asked == [{"report": True}]  # not dropped: the count is recorded and sent

    folder = await run(PROBE, "count", "--json", "--config", str(tmp_path))
    assert folder.returncode == 2
    assert "is a directory" in folder.stderr
    assert json.loads(folder.stdout)["exit_code"] == 2


async def test_a_daemon_that_is_not_running_fails_as_through_click(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "nothing.sock")
    quick = await run(PROBE, "count", "--json", "--socket", nowhere)
    full = await run(THROUGH_CLICK, "count", "--json", "--socket", nowhere)
    assert quick.returncode == full.returncode == 1
    assert quick.stdout == full.stdout
    assert json.loads(quick.stdout) == {
        "ok": False,
        "error": f"the daemon is not running (no socket at {nowhere})",
        "exit_code": 1,
    }
    assert f"pbx-agent: the daemon is not running (no socket at {nowhere})" in quick.stderr
