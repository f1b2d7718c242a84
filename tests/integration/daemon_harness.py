"""Starts the real daemon as a subprocess against a config written for the test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.control import request
from agent.errors import ControlError

AMI_SECRET = "nwT3st-ami-agent-8Kq2"


def write_config(
    tmp: Path, ami_port: int, *, secret: str = AMI_SECRET, extra: str = "", pbx: str = ""
) -> Path:
    """A daemon config reaching the AMI simulator on `ami_port`, or the PBX named by `pbx`
    (a ``[pbx]`` section whose table reads its secret from ``secret_file = "pbx-secret"``)."""
    secret_file = tmp / ("pbx-secret" if pbx else "ami-secret")
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    pbx = pbx or f"""[pbx]
driver = "asterisk"
[pbx.ami]
host = "127.0.0.1"
port = {ami_port}
username = "agent"
secret_file = "ami-secret"
"""
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f"""
site_id = "test-site"
{pbx}connect_timeout = 2.0
action_timeout = 2.0
reconnect_initial = 0.1
reconnect_max = 0.5
[poll]
interval = 5
[state]
dir = "state"
[control]
socket = "state/control.sock"
[logging]
level = "debug"
format = "json"
{extra}
"""
    )
    return cfg


def ssh_table(name: str, host: str, port: int, user: str, key_file: Path) -> str:
    """A TOML table reaching a test sshd (`[backup.ssh]`, `[backup.offsite]`)."""
    return (
        f'[{name}]\nhost = "{host}"\nport = {port}\nusername = "{user}"\n'
        f'key_file = "{key_file}"\ntimeout = 5\n'
    )


def agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`pbx-agent ARGS` in a subprocess, off the event loop (the test's simulator and broker
    keep running meanwhile)."""
    return await asyncio.to_thread(
        subprocess.run, agent_command(*args), capture_output=True, text=True, timeout=60
    )


class DaemonProcess(subprocess.Popen[str]):
    """The daemon's process; its output goes to files, never to a pipe nobody reads (a full
    pipe blocks the daemon's logging, and with it the daemon)."""

    output: Any
    errors: Any


def start_daemon(
    config: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> DaemonProcess:
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop_daemon
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = DaemonProcess(
        agent_command("run", "--config", str(config)),
        stdout=output,
        stderr=errors,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    proc.output, proc.errors = output, errors
    return proc


def stop_daemon(proc: DaemonProcess, timeout: float = 10) -> tuple[int, str, str]:
    """SIGTERM (if still running), then its exit code and output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    texts = []
    for stream in (proc.output, proc.errors):
        stream.seek(0)
        texts.append(stream.read())
        stream.close()
    return proc.returncode, texts[0], texts[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, *, every: float = 0.05
) -> Any:
    """Poll `predicate` every `every` s until it returns something truthy; fail with `what`
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def status_when(socket: Path, predicate: Callable[[dict[str, Any]], bool]) -> Any:
    def probe() -> Any:
        try:
            result = request(socket, "status", timeout=2)
        except ControlError:
            return None
        return result if predicate(result) else None

    return probe
