"""Issue 16: the field trial's defects, each reproduced with the daemon and the CLI as
processes (defect 3, progress, is tests/integration/test_progress.py; defect 8, the demo, is
tests/integration/test_demo.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from drivers.asterisk.simulator import Simulator
from tests.integration.daemon_harness import (
    agent_command,
    cli,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.technician_site import backups_done, site_config, started
from tests.licence_server import LicenceServer, now
from tests.pty_session import PtySession

LOG_TIME = re.compile(r'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')


def log_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def licensed(tmp: Path, ami_port: int) -> tuple[LicenceServer, Path]:
    """A licence server answering with an active licence, and a config that asks it."""
    server = LicenceServer().start()
    server.issue(expires_at=now() + timedelta(days=90))
    return server, write_config(tmp, ami_port, extra=server.config())


async def test_1_a_second_daemon_leaves_the_running_one_alone(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    proc, sock = await started(config)
    try:
        inode = sock.stat().st_ino
        second = await cli("run", "--config", str(config))
        assert second.returncode == 1
        assert "another pbx-agent daemon is already running" in second.stderr
        assert sock.stat().st_ino == inode, "the running daemon's socket is untouched"
        status = await cli("status", "--config", str(config))
        assert status.returncode == 0 and "Daemon     running" in status.stdout
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err


async def test_2_backup_now_where_backups_are_off_is_refused_and_raises_nothing(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port, extra="[health]\nflap_count = 1\n")
    proc, _ = await started(config)
    try:
        refused = await cli("backup", "now", "--config", str(config), "--json")
        assert refused.returncode == 2, refused.stderr
        error = json.loads(refused.stdout)
        assert error["ok"] is False and "backups are not configured" in error["error"]
        listed = await cli("backup", "list", "--config", str(config), "--json")
        assert json.loads(listed.stdout) == [], "nothing recorded"
        events = json.loads((await cli("events", "--config", str(config), "--json")).stdout)
        assert not [e for e in events if e["check"].startswith("backup")], events
        status = await cli("status", "--config", str(config))
        assert "Backups    off ([backup] enabled = false)" in status.stdout
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err


async def test_4_a_latin1_byte_or_a_bom_in_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5038)
    good = config.read_bytes()
    config.write_bytes(b"# Konfiguration f\xfcr M\xfcller\n" + good)  # Latin-1 umlauts
    for command in (["config", "check", str(config)], ["run", "--config", str(config)]):
        result = await cli(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert "line 1, column 18: byte 0xfc is not UTF-8" in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    config.write_bytes(b"\xef\xbb\xbf" + good)  # a UTF-8 byte-order mark (Windows editors)
    checked = await cli("config", "check", str(config))
    assert checked.returncode == 0 and "OK (site test-site)" in checked.stdout, checked.stderr


async def test_5_licence_refresh_fails_when_the_server_is_unreachable(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    server, config = licensed(tmp_path, ami_simulator.port)
    proc, _ = await started(config)
    try:
        ok = await cli("licence", "refresh", "--config", str(config))
        assert ok.returncode == 0, ok.stderr
        server.stop()
        down = await cli("licence", "refresh", "--config", str(config))
        assert down.returncode == 1
        assert "licence refresh failed" in down.stderr and "connection refused" in down.stderr
        assert "ConnectionError" not in down.stderr + down.stdout, "no library class names"
        as_json = await cli("licence", "refresh", "--config", str(config), "--json")
        assert as_json.returncode == 1
        document = json.loads(as_json.stdout)  # one document, not the state and an error
        assert document["ok"] is False and document["result"]["state"] == "active"
        status = await cli("status", "--config", str(config))
        assert re.search(r"Licence    active: .* \(checked \d{4}-\d\d-\d\d [\d:]+ \(\d+ s ago\)\); "
                         r"last check failed: .*connection refused", status.stdout), status.stdout
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
        server.stop()
    assert code == 0, err


async def test_6_features_name_missing_file_access(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    server, config = licensed(tmp_path, ami_simulator.port)
    server.issue(expires_at=now() + timedelta(days=90), status="lapsed")
    proc, _ = await started(config)
    try:

        async def app_row() -> dict[str, Any]:
            shown = await cli("features", "--config", str(config), "--json")
            return {r["feature"]: r for r in json.loads(shown.stdout)}["softphone_app"]

        row = await app_row()
        deadline = time.monotonic() + 30
        while row["state"] == "pending" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # the first count and the switch, not a timing assert
            row = await app_row()
        assert "cannot switch this feature" not in row["how"], row
        assert row["actual"].startswith("not switched: "), row
        assert "no access to the PBX's config files" in row["actual"], row
    finally:
        await asyncio.to_thread(stop_daemon, proc)
        server.stop()


async def test_7_inventory_cuts_user_agents_with_an_ellipsis(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    proc, _ = await started(config)
    try:
        shown = await cli("inventory", "--config", str(config))
        assert shown.returncode == 0, shown.stderr
        assert "PolycomRealPresenceTrio-Trio_8800-UA/7.…" in shown.stdout
        assert "Yealink SIP-T46S 66.86.0.15" in shown.stdout  # short ones whole
        assert not re.search(r"Trio_8800-UA/7\.2\.2(?!\.1094)", shown.stdout), "never a wrong one"
    finally:
        await asyncio.to_thread(stop_daemon, proc)


async def test_9_and_14_ordinary_failures_are_one_line_in_the_log_and_plain_for_people(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = site_config(tmp_path, ami_simulator.port)
    proc, sock = await started(config)
    try:
        await backups_done(sock, 1)
        for command in (
            ["backup", "verify", "bogus"],
            ["backup", "restore", "bogus", "--to", str(tmp_path / "r")],
            ["backup", "restore", "bogus", "--to-pbx"],
        ):
            result = await cli(*command, "--config", str(config))
            assert result.returncode == 1, (command, result.stderr)
            assert "no backup 'bogus' in the catalog" in result.stderr
        taken = await cli("backup", "now", "--config", str(config))
        assert re.fullmatch(r"backup \d{8}T\d+Z: 3 files, [\d.]+ k?B, unchanged\n", taken.stdout)
        listed = await cli("backup", "list", "--config", str(config))
        assert "SIZE" in listed.stdout and "BYTES" not in listed.stdout
        status = await cli("status", "--config", str(config))
        local_time = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ (s|min) ago\)"
        assert re.search(rf"Last poll  ok {local_time}", status.stdout), status.stdout
        assert re.search(rf"Backups    last \d+T\d+Z ok {local_time}", status.stdout)
    finally:
        code, out, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
    log = log_lines(err + out)
    assert not [e for e in log if e["level"] in ("error", "critical")], "no error-level line"
    assert "Traceback" not in err + out
    refused = [e for e in log if e["event"] == "control command failed"]
    assert len(refused) == 3 and all(e["level"] == "info" for e in refused)
    assert not [e for e in log if str(e.get("logger", "")).startswith("apscheduler")], (
        "no scheduler chatter"
    )
    assert all(LOG_TIME.search(line) for line in (err + out).splitlines() if line.startswith("{"))


async def test_10_a_wrong_ami_secret_is_a_refused_login_not_an_unreachable_pbx(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, ami_simulator.port, secret="not-the-secret", extra="[health]\nflap_count = 1\n"
    )
    proc, sock = await started(config)
    try:
        await asyncio.to_thread(
            wait_for,
            status_when(sock, lambda r: r["pbx"]["last_poll"] is not None and r["problems"]),
            30,
            "the first poll and its problem",
        )
        status = await cli("status", "--config", str(config))
        assert "the PBX refused the agent's login: AMI at" in status.stdout, status.stdout
        assert "CRITICAL pbx_login since" in status.stdout
        assert "unreachable" not in status.stdout.lower()
        assert "DriverAuthError" not in status.stdout, "no exception class names"
        events = json.loads((await cli("events", "--config", str(config), "--json")).stdout)
        assert [(e["check"], e["kind"]) for e in events] == [("pbx_login", "problem")]
        assert events[0]["summary"].startswith("PBX refuses the agent's login (check the user")
        text = await cli("events", "--config", str(config))
        when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"  # local time, as everywhere for people
        assert re.match(rf"{when}  critical problem  pbx_login: ", text.stdout), text.stdout
        diag = json.loads((await cli("diag", "--config", str(config), "--json")).stdout)
        problems = [c for c in diag["checks"] if c["name"] == "problem"]
        assert len(problems) == 1 and problems[0]["status"] == "FAIL"
        assert problems[0]["value"].startswith("pbx_login since ")
    finally:
        await asyncio.to_thread(stop_daemon, proc)


async def test_11_diag_is_consistent_about_secrets_and_skips_what_is_not_configured(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    (tmp_path / "ami-secret").chmod(0o644)
    shown = await cli("diag", "--config", str(config), "--json")
    assert shown.returncode == 1
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    assert checks["config"]["status"] == "FAIL" and "0644" in checks["config"]["value"]
    assert checks["permissions"]["status"] == "FAIL", checks["permissions"]
    assert "ami-secret is readable by others" in checks["permissions"]["value"]

    (tmp_path / "ami-secret").chmod(0o600)
    shown = await cli("diag", "--config", str(config), "--json")
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    for name in ("pbx-ssh", "archive-host", "mqtt-broker", "licence", "certificates"):
        assert checks[name]["status"] == "SKIP", checks[name]
    assert checks["permissions"]["status"] == "PASS"


async def test_12_13_one_json_document_events_as_json_lines_and_export_to_stdout(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port, secret="wrong", extra="[health]\n"
                          "flap_count = 1\n")
    proc, sock = await started(config)
    try:
        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: bool(r["problems"])), 30, "a problem event"
        )
        as_json = await cli("events", "--config", str(config), "--json")
        events = json.loads(as_json.stdout)
        assert isinstance(events, list) and events[0]["check"] == "pbx_login"
        lines = await cli("events", "--config", str(config), "--jsonl")
        assert [json.loads(line) for line in lines.stdout.splitlines()] == events
        both = await cli("events", "--follow", "--json", "--config", str(config))
        assert both.returncode == 2 and "use --jsonl" in both.stderr
        assert json.loads(both.stdout)["exit_code"] == 2

        exported = await asyncio.to_thread(
            subprocess.run,
            agent_command("usage", "export", "-", "--config", str(config)),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert exported.returncode == 0, exported.stderr
        assert not (tmp_path / "-").exists(), "no file named -"
        assert "usage reports written to stdout" in exported.stderr
        assert all(json.loads(line)["payload"] for line in exported.stdout.splitlines())
    finally:
        await asyncio.to_thread(stop_daemon, proc)


async def test_14_no_colour_when_no_color_is_set(ami_simulator: Simulator, tmp_path: Path) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    coloured = PtySession(agent_command("diag", "--config", str(config)))
    await asyncio.to_thread(coloured.wait, 60)
    assert b"\x1b[" in coloured.output, "a terminal gets colours"
    plain = PtySession(agent_command("diag", "--config", str(config)), env={"NO_COLOR": "1"})
    await asyncio.to_thread(plain.wait, 60)
    assert b"\x1b[" not in plain.output and b"PASS  config" in plain.output


async def test_15_a_technicians_count_reports_nothing_unless_asked(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ami_simulator.port)
    proc, sock = await started(config)
    try:

        async def reports() -> int:
            shown = await cli("usage", "export", "-", "--config", str(config))
            return len(shown.stdout.splitlines())

        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: r["counting"] is not None), 30, "first count"
        )
        before = await reports()
        assert before == 1, "the daemon's own count at start"
        counted = await cli("count", "--config", str(config))
        assert counted.returncode == 0 and "11" in counted.stdout
        assert await reports() == before, "nothing signed or sent for a look"
        reported = await cli("count", "--report", "--config", str(config))
        assert reported.returncode == 0 and "recorded and queued upstream" in reported.stdout
        assert await reports() == before + 1
    finally:
        await asyncio.to_thread(stop_daemon, proc)


def test_version_flags() -> None:
    for flag in ("-V", "--version"):
        shown = subprocess.run(agent_command(flag), capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and re.fullmatch(r"pbx-agent, version \S+\n", shown.stdout)


def test_completion_offers_the_backup_ids(tmp_path: Path) -> None:
    """Completion asks the running daemon: without one it offers nothing (and never fails)."""
    env = {
        **os.environ,
        "_PBX_AGENT_COMPLETE": "bash_complete",
        "COMP_WORDS": f"pbx-agent backup verify --socket {tmp_path / 'none.sock'} 2026",
        "COMP_CWORD": "5",
    }
    shown = subprocess.run(agent_command(), capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and shown.stdout.strip() == ""


async def test_completion_of_backup_ids_from_the_daemon(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    config = site_config(tmp_path, ami_simulator.port)
    proc, sock = await started(config)
    try:
        good = await backups_done(sock, 1)
        env = {
            "_PBX_AGENT_COMPLETE": "bash_complete",
            "COMP_WORDS": f"pbx-agent backup restore --config {config} {good[0]['id'][:4]}",
            "COMP_CWORD": "5",
        }
        shown = await asyncio.to_thread(
            subprocess.run,
            agent_command(),
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
        assert shown.stdout.splitlines() == [f"plain,{good[0]['id']}"], shown
    finally:
        await asyncio.to_thread(stop_daemon, proc)
