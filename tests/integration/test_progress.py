"""Issue 16, defect 3: long operations are followed with their progress, fed by the daemon
over the control socket. On a terminal (a real pseudo-terminal here) `backup now` draws a
rich bar with files, bytes, rate and time left; Ctrl-C stops following and the backup goes on
(`pbx-agent follow ID` picks it up); off a terminal, plain lines on stderr and only the result
on stdout; `--jsonl` streams the progress as JSON; a daemon that goes away mid-operation ends
the wait with a plain message instead of a hang, and there is no fixed client timeout."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    agent_command,
    cli,
    stop_daemon,
)
from tests.integration.technician_site import backups_done, site_config, started
from tests.pty_session import PtySession

BIG = 256 * 1024 * 1024  # a sparse file, read at THROTTLE (backup.read_mb_per_second):
THROTTLE = 'read_mb_per_second = 80\n'  # about 3 s of reading on any machine, so progress shows
BAR = re.compile(rb"reading the PBX's files\s+\S+\s+\d+/~\d+ files\s+[\d.]+ [kMG]?B .*B/s\s+ETA")


async def test_a_progress_bar_on_a_terminal_and_ctrl_c_leaves_the_backup_running(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = site_config(tmp_path, ami_simulator.port, big=BIG, backup_extra=THROTTLE)
    proc, sock = await started(config)
    try:
        await backups_done(sock, 1)  # the catch-up at start: totals to estimate from

        shown = PtySession(agent_command("backup", "now", "--config", str(config)))
        assert await asyncio.to_thread(shown.read_until, BAR, 120), shown.text
        assert await asyncio.to_thread(shown.wait, 120) == 0, shown.text
        assert re.search(r"backup \d{8}T\d+Z: 4 files, [\d.]+ kB, unchanged", shown.text)

        stopped = PtySession(agent_command("backup", "now", "--config", str(config)))
        assert await asyncio.to_thread(stopped.read_until, b"B/s", 120), stopped.text
        stopped.type(b"\x03")  # Ctrl-C
        assert await asyncio.to_thread(stopped.wait, 30) == 130, stopped.text
        note = re.search(r"goes on in the daemon as operation (\d+); follow it again with "
                         r"`pbx-agent follow (\d+)`", stopped.text)
        assert note and note[1] == note[2], stopped.text

        followed = await cli("follow", note[1], "--config", str(config))
        assert followed.returncode == 0, followed.stderr
        assert re.match(r"backup \d{8}T\d+Z: 4 files", followed.stdout), followed.stdout
        assert len(await backups_done(sock, 3)) == 3, "the interrupted backup was finished"
        ops = json.loads((await cli("operations", "--config", str(config), "--json")).stdout)
        assert [(o["command"], o["state"]) for o in ops] == [("backup-now", "ok")] * 2

        verified = PtySession(agent_command("backup", "verify", followed.stdout.split()[1][:-1],
                                            "--config", str(config)))
        assert await asyncio.to_thread(verified.wait, 120) == 0, verified.text
        assert "checking every file" in verified.text and "4 files match" in verified.text
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]


async def test_plain_lines_off_a_terminal_json_lines_and_a_daemon_that_goes_away(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = site_config(tmp_path, ami_simulator.port, big=BIG, backup_extra=THROTTLE)
    proc, sock = await started(config)
    try:
        first = (await backups_done(sock, 1))[0]

        plain = await cli("backup", "now", "--config", str(config))
        assert plain.returncode == 0, plain.stderr
        assert re.fullmatch(r"backup \d{8}T\d+Z: 4 files, [\d.]+ kB, unchanged\n", plain.stdout)
        assert re.search(
            r"^backup now: reading the PBX's files: \d+ of about 4 files, [\d.]+ [kMG]?B",
            plain.stderr,
            re.MULTILINE,
        ), plain.stderr
        assert "\x1b[" not in plain.stderr, "no terminal codes off a terminal"

        streamed = await cli("backup", "verify", first["id"], "--config", str(config), "--jsonl")
        assert streamed.returncode == 0, streamed.stderr
        lines = [json.loads(line) for line in streamed.stdout.splitlines()]
        assert list(lines[0]) == ["operation"] and lines[0]["operation"]["command"] == (
            "backup-verify"
        )
        phases = [m["progress"]["phase"] for m in lines[1:-1]]
        assert "checking every file" in phases, phases
        assert lines[-1]["result"]["files"] == "4 files match their SHA-256"

        target = tmp_path / "restored"
        restored = await cli(
            "backup", "restore", first["id"], "--to", str(target), "--config", str(config)
        )
        assert restored.returncode == 0, restored.stderr
        assert "backup restore: restoring: " in restored.stderr
        assert (target / "sub" / "voicemail.conf").read_text() == "[default]\n101 => 1234,Alice\n"

        # The daemon killed while a client follows a backup: the client says so and exits 1.
        following = await asyncio.to_thread(
            subprocess.Popen,
            agent_command("backup", "now", "--config", str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert following.stderr is not None
        line = await asyncio.to_thread(following.stderr.readline)
        while line and "reading the PBX's files" not in line:
            line = await asyncio.to_thread(following.stderr.readline)
        assert line, "the backup's progress never showed"
        proc.send_signal(signal.SIGKILL)
        _, err = await asyncio.to_thread(following.communicate, timeout=30)
        assert following.returncode == 1
        assert "the daemon went away before backup-now ended" in err, err
    finally:
        await asyncio.to_thread(stop_daemon, proc)


async def test_the_client_follows_as_long_as_the_daemon_reports(tmp_path: Path) -> None:
    """No fixed limit on the whole: an operation far longer than any request timeout is
    followed to its end while progress (or the heartbeat) keeps coming."""
    script = tmp_path / "slow_daemon.py"
    script.write_text(
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import agent.control as control\n"
        "control.HEARTBEAT = 0.2\n"
        "async def slow(args, progress):\n"
        "    progress.phase('working', files=3)\n"
        "    for _ in range(3):\n"
        "        await asyncio.sleep(1.0)\n"
        "        progress.advance(1, 0)\n"
        "    return {'done': True}\n"
        "async def main():\n"
        "    server = control.ControlServer(Path(sys.argv[1]), {}, streamed={'slow': slow})\n"
        "    await server.start()\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    sock = tmp_path / "slow.sock"
    server = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, str(script), str(sock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        from agent.control_client import follow, request
        from agent.errors import ControlError

        seen: list[dict[str, object]] = []
        result = await asyncio.to_thread(
            follow, sock, "slow", {}, on_progress=lambda p: seen.append(dict(p))
        )
        assert result == {"done": True}
        assert [p["files"] for p in seen][-1] == 3 and len(seen) >= 4
        try:
            await asyncio.to_thread(request, sock, "slow", timeout=1.0)
        except ControlError as exc:  # a plain request keeps its limit
            assert "did not answer within 1 s" in str(exc)
        else:
            raise AssertionError("a plain request of a 3-s operation should time out at 1 s")
    finally:
        server.kill()
        server.wait()
