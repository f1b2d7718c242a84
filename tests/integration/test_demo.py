"""Issue 16, defect 8: `scripts/demo` as a new user runs it, on a pseudo-terminal: Ctrl-C ends
it with exit 0 and no process left behind (the simulator, the agent and the log `tail`); a
second demo started beside it says plainly that one is running and touches nothing; a port
held by another program is named instead of talked to.

The demo runs from a copy of the scripts and config (its own `demo-state`, the office on a
free port) with the project's virtualenv, so it never meets a demo a developer is running."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pty_session import PtySession

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo_copy(tmp_path: Path) -> tuple[Path, int]:
    """The demo's scripts and config in `tmp_path`, the office on a free port, and a `.venv`
    that runs the project's own (so nothing is installed)."""
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    (tmp_path / "scripts").mkdir()
    for name in ("demo", "_venv.sh"):
        shutil.copy2(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv_bin = Path(sys.executable).parent
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    for name in ("python", "pbx-agent"):
        wrapper = tmp_path / ".venv" / "bin" / name
        wrapper.write_text(f'#!/bin/sh\nexec "{venv_bin / name}" "$@"\n')
        wrapper.chmod(0o755)
    (tmp_path / ".venv" / ".pbx-agent-installed").write_text(".\n")  # newer than pyproject
    port = free_port()
    config = tmp_path / "config" / "demo.toml"
    config.write_text(config.read_text().replace("port = 15038", f"port = {port}"))
    return tmp_path, port


def children(pid: int) -> list[tuple[int, str]]:
    shown = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return [(int(line.split()[0]), line.strip()) for line in shown.stdout.splitlines()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_ctrl_c_ends_the_demo_cleanly_and_a_second_one_is_told(
    demo_copy: tuple[Path, int],
) -> None:
    root, port = demo_copy
    demo = PtySession(["/bin/bash", "scripts/demo"], cwd=root)
    assert await asyncio.to_thread(demo.read_until, b"Ctrl-C stops the demo", 120), demo.text
    assert "Total: 11 seats" in demo.text
    started = children(demo.pid)
    names = " ".join(line for _, line in started)
    assert "simulate asterisk" in names and "run --config" in names and "tail" in names, names

    second = await asyncio.to_thread(
        subprocess.run, ["bash", "scripts/demo"], cwd=root, capture_output=True, text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"another asterisk demo is already running (pid {demo.pid})" in second.stderr
    assert all(alive(pid) for pid, _ in started), "the second demo touched nothing"

    demo.type(b"\x03")  # Ctrl-C
    assert await asyncio.to_thread(demo.wait, 60) == 0, demo.text
    assert "demo stopped (Ctrl-C)" in demo.text
    assert not [line for pid, line in started if alive(pid)], "no process left behind"
    with socket.socket() as probe:  # the simulator's port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def test_a_taken_port_is_named(demo_copy: tuple[Path, int]) -> None:
    root, port = demo_copy
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        shown = await asyncio.to_thread(
            subprocess.run, ["bash", "scripts/demo"], cwd=root, capture_output=True, text=True,
            timeout=60,
        )
    assert shown.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken by another program" in shown.stderr
    assert "ss -ltnp" in shown.stderr
    assert not (root / "demo-state" / "agent.log").exists(), "no agent was started"
