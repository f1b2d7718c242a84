"""The hostile-input suite against the daemon as a process: more than 50 malformed or hostile
MQTT commands (through a real Mosquitto), licence answers and tokens (from the licence double),
and control-socket requests. Every one is refused with a one-line reason; afterwards the daemon
and every task are alive (`status` shows them all running, never restarted), a valid command
and a valid licence still work, no traceback was logged, and nothing was written outside the
state directory."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.control import request
from drivers.asterisk.simulator import Simulator
from tests.hostile_inputs import (
    hostile_commands,
    hostile_control_requests,
    hostile_licence_answers,
)
from tests.integration.daemon_harness import (
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.test_telemetry_daemon import BASE, mqtt_section
from tests.licence_server import LicenceServer, now, sign
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher, client_for
from tests.telemetry.test_commands import signed


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    """Every file below `root` outside `skip`, with its size and modification time."""
    seen = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip) or not path.is_file():
            continue
        info = path.stat()
        seen[str(path)] = (info.st_size, info.st_mtime_ns)
    return seen


def raw_control(path: Path, data: bytes) -> dict[str, Any]:
    """Send `data` as is on the control socket; the daemon's reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading (too long): its reply is still there
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1, reply[:200]
    return dict(json.loads(reply))


def error_line(stderr: str) -> str:
    """The one error line a failed command prints (`pbx-agent: REASON`), beside the plain
    progress lines a followed operation writes off a terminal."""
    errors = [line for line in stderr.strip().splitlines() if line.startswith("pbx-agent: ")]
    assert len(errors) == 1, stderr[-600:]
    return one_line(errors[0])


def one_line(reason: object) -> str:
    text = str(reason)
    assert text and "\n" not in text and len(text) < 600, text[:300]
    assert "Traceback" not in text and "Exceeds the limit" not in text, text
    return text


async def test_hostile_inputs_are_refused_and_every_task_survives(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    central = Ed25519PrivateKey.generate()
    server = LicenceServer().start()
    payload = server.payload(expires_at=now() + timedelta(days=200))
    server.serve_token(sign(payload, server.key))
    config = write_config(
        tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto, central) + server.config()
    )
    state, cwd, tmp = tmp_path / "state", tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    outside = {state, cwd, tmp, tmp_path / "mosquitto"}
    before = snapshot(tmp_path, outside)
    sock = state / "control.sock"
    commands = hostile_commands(central)
    answers = hostile_licence_answers(server.key, payload)
    requests = hostile_control_requests()
    assert min(len(commands), len(answers), len(requests)) >= 50

    async with Watcher(mosquitto) as watcher:
        proc = start_daemon(config, env={"TMPDIR": str(tmp)}, cwd=cwd)
        try:
            await asyncio.to_thread(
                wait_for,
                status_when(sock, lambda r: r["licence"]["state"] == "active"),
                30,
                "the daemon with its licence",
            )
            await watcher.wait_for(lambda w: w.on("heartbeat"), 20, "a heartbeat")

            # MQTT commands: none runs, none is answered.
            async with client_for(mosquitto) as central_client:
                for _, message in commands:
                    await central_client.publish(f"{BASE}/cmd/count-now", message, qos=1)
            refused = await asyncio.to_thread(
                wait_for,
                status_when(sock, lambda r: r["telemetry"]["commands_refused"] >= len(commands)),
                60,
                "every hostile command refused",
            )
            assert refused["telemetry"]["commands_refused"] == len(commands)
            assert not [r for r in watcher.received if r.topic.startswith("reply/")]

            # Licence answers and tokens: each refused, the accepted licence unchanged.
            accepted = request(sock, "licence-status")["licence"]
            for label, body in answers:
                server.body = body
                result = await asyncio.to_thread(request, sock, "licence-refresh", {}, timeout=30)
                assert result["last_error"], f"{label}: accepted"
                one_line(result["last_error"])
                assert result["state"] == "active" and result["licence"] == accepted, label

            # Control requests: each refused with a one-line reason.
            for label, data in requests:
                reply = await asyncio.to_thread(raw_control, sock, data)
                assert reply["ok"] is False, f"{label}: {reply}"
                one_line(reply["error"])

            # Everything still works.
            status = request(sock, "status")
            tasks = status["tasks"]
            assert set(tasks) == {"pbx-poller", "counting", "publisher", "licence", "health"}
            assert all(t["state"] == "running" and t["restarts"] == 0 for t in tasks.values())
            assert status["telemetry"]["connected"]
            heartbeats = len(watcher.on("heartbeat"))
            await watcher.wait_for(
                lambda w: len(w.on("heartbeat")) > heartbeats, 20, "heartbeats go on"
            )
            async with client_for(mosquitto) as central_client:
                await central_client.publish(
                    f"{BASE}/cmd/count-now", signed(central, "count-now"), qos=1
                )
            reply = await watcher.wait_for(
                lambda w: [r for r in w.received if r.topic.startswith("reply/")],
                30,
                "the reply to a valid command",
            )
            assert reply[0].message["ok"]
            server.issue(expires_at=now() + timedelta(days=300))
            renewed = await asyncio.to_thread(request, sock, "licence-refresh", {}, timeout=30)
            assert (
                renewed["last_error"] is None and renewed["licence"]["serial"] > accepted["serial"]
            )
        finally:
            code, _, err = await asyncio.to_thread(stop_daemon, proc)
            server.stop()
    assert code == 0, err[-2000:]
    assert "Traceback" not in err, "a hostile input reached an unexpected error"
    assert snapshot(tmp_path, outside) == before, "written outside the state directory"
    assert not list(cwd.iterdir()) and not list(tmp.iterdir())


async def test_the_two_messages_that_stopped_telemetry_are_refused(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    """Defect 1 as found: a 5 KB command whose key_id is a 5,000-digit number, and `[` x 5000,
    ended the publisher (no heartbeat, no command, the outbox growing, `diag` all PASS)."""
    central = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto, central))
    sock = tmp_path / "state" / "control.sock"
    huge_key_id = b'{"key_id": ' + b"9" * 5000 + b', "payload": "e30", "signature": "AA"}'
    async with Watcher(mosquitto) as watcher:
        proc = start_daemon(config)
        try:
            await watcher.wait_for(lambda w: w.on("heartbeat"), 30, "a heartbeat")
            async with client_for(mosquitto) as central_client:
                for message in (huge_key_id, b"[" * 5000):
                    await central_client.publish(f"{BASE}/cmd/count-now", message, qos=1)
            await asyncio.to_thread(
                wait_for,
                status_when(sock, lambda r: r["telemetry"]["commands_refused"] == 2),
                30,
                "both refused",
            )
            beats = len(watcher.on("heartbeat"))
            await watcher.wait_for(lambda w: len(w.on("heartbeat")) > beats, 20, "heartbeats")
            async with client_for(mosquitto) as central_client:
                await central_client.publish(
                    f"{BASE}/cmd/count-now", signed(central, "count-now"), qos=1
                )
            await watcher.wait_for(
                lambda w: [r for r in w.received if r.topic.startswith("reply/")], 30, "a reply"
            )
            status = request(sock, "status")
            assert status["tasks"]["publisher"] == status["tasks"]["publisher"] | {
                "state": "running",
                "restarts": 0,
            }
            assert watcher.on("status")[-1]["state"] == "online"
        finally:
            code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]
    refusals = [line for line in err.splitlines() if "command refused" in line]
    assert len(refusals) == 2 and "Traceback" not in err
    assert "a number of 5000 characters" in refusals[0] and "nested 5000 deep" in refusals[1]
