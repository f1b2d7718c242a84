"""The daemon as a real subprocess against the AMI simulator over TCP."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.control import request
from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    AMI_SECRET,
    agent_command,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_daemon_serves_status_and_stops_cleanly_on_sigterm(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        result = await asyncio.to_thread(
            wait_for,
            status_when(sock, lambda r: r["pbx"]["last_poll"] is not None),
            20,
            "the first poll",
        )
        assert sock.stat().st_mode & 0o777 == 0o660
        poll = result["pbx"]["last_poll"]
        assert poll["ok"], poll["error"]
        assert poll["facts"]["version"] == "22.10.1"
        assert poll["facts"]["system_name"] == "nw-pbx01"
        names = [e["name"] for e in poll["endpoints"]]
        assert len(names) == 16 and "trunk-provider" in names and "102-app" in names
        assert result["daemon"]["site_id"] == "test-site"

        cli = await asyncio.to_thread(
            subprocess.run,
            agent_command("status", "--config", str(config), "--endpoints"),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert cli.returncode == 0, cli.stderr
        assert "22.10.1" in cli.stdout and "trunk-backup" in cli.stdout
    finally:
        code, out, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
    assert not sock.exists(), "the control socket is removed on a clean stop"
    events = [line["event"] for line in _json_lines(err)]
    assert "daemon started" in events and "daemon stopped" in events
    assert AMI_SECRET not in out + err
    assert (tmp_path / "state" / "state.db").exists()


async def test_once_polls_and_exits_zero(ami_simulator: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    proc = await asyncio.create_subprocess_exec(
        *agent_command("run", "--config", str(config), "--once"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert AMI_SECRET not in (out + err).decode()


def test_bad_config_exits_2_naming_file_and_key_before_touching_anything(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5038)
    config.write_text(config.read_text().replace("port = 5038", 'port = "five"'))
    proc = subprocess.run(
        agent_command("run", "--config", str(config)), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert str(config) in proc.stderr and "pbx.ami.port" in proc.stderr
    assert not (tmp_path / "state").exists(), "nothing is created before the config is valid"


def test_status_says_plainly_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    proc = subprocess.run(
        agent_command("status", "--socket", str(tmp_path / "none.sock")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "not running" in proc.stderr


def test_config_check_exit_codes(tmp_path: Path) -> None:
    good = write_config(tmp_path, 5038)
    ok = subprocess.run(agent_command("config", "check", str(good)), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    good.write_text(good.read_text() + "\nbogus_key = 1\n")
    bad = subprocess.run(
        agent_command("config", "check", str(good)), capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "bogus_key" in bad.stderr and str(good) in bad.stderr


async def test_systemd_notify_ready_watchdog_stopping(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(10)
    config = write_config(tmp_path, ami_simulator.port)
    proc = start_daemon(config, env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})
    received: list[str] = []

    def collect_until(state: str) -> None:
        while not any(state in message for message in received):
            received.append(listener.recv(4096).decode())

    try:
        await asyncio.to_thread(collect_until, "READY=1")
        await asyncio.to_thread(collect_until, "WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(collect_until, "STOPPING=1")
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
        listener.close()
    assert code == 0, err


async def test_daemon_keeps_running_through_pbx_faults_and_recovers(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: r["pbx"]["last_poll"] is not None), 20, "poll"
        )
        ami_simulator.faults.stall = True
        failed = await asyncio.to_thread(request, sock, "poll-now", timeout=30)
        assert not failed["ok"] and failed["error"]
        ami_simulator.faults.stall = False
        ami_simulator.faults.garbage = b"\x00\xffnot AMI at all\r\n\r\n"

        def recovered() -> Any:
            result = request(sock, "poll-now", timeout=30)
            return result if result["ok"] else None

        result = await asyncio.to_thread(wait_for, recovered, 30, "recovery after the faults")
        assert len(result["endpoints"]) == 16
        assert proc.poll() is None, "the daemon is still running"
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
    messages = [line["event"] for line in _json_lines(err)]
    assert messages.count("PBX poll failed") == 1, "a PBX that stays down is logged once"
    assert "PBX poll recovered" in messages


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    config = write_config(tmp_path, 5038)
    (tmp_path / "ami-secret").chmod(mode)
    proc = subprocess.run(
        agent_command("run", "--config", str(config)), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "ami-secret" in proc.stderr and "chmod 600" in proc.stderr
