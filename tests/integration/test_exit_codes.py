"""Every command's exit code on success, on failure and on a usage error, as the README states
them (0 ok, 1 a failed check or operation, 2 a usage or configuration error), walked over the
whole command tree: a command added without its cases here fails this test. A `--json`
command prints one JSON document on stdout whatever happens, an error object on failure."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import click

from agent.cli.tree import cli as command_tree
from drivers.asterisk.simulator import Simulator
from tests.agent.test_cli_conventions import commands
from tests.integration.daemon_harness import (
    agent_command,
    cli,
    ssh_table,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.technician_site import backups_done, local_backups
from tests.licence_server import LicenceServer, now
from tests.sshd import SshServer

Case = tuple[Sequence[str], int]  # arguments after the command's path, expected exit code


def takes_json(path: tuple[str, ...]) -> bool:
    command: click.Command = command_tree
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return any(p.name == "as_json" for p in command.params)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


async def simulator_exit(kind: str, office: Path, port: int) -> tuple[int, str]:
    """`simulate KIND`: started, serving, stopped with SIGTERM; its exit code."""
    proc = await asyncio.to_thread(
        subprocess.Popen,
        agent_command("simulate", kind, "--office", str(office), "--port", str(port)),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = await asyncio.to_thread(proc.stderr.readline)
    if "serving" in line:
        proc.send_signal(signal.SIGTERM)
    _, rest = await asyncio.to_thread(proc.communicate, timeout=30)
    return proc.returncode, line + rest


async def test_every_command_exits_0_1_or_2_as_documented(
    ami_simulator: Simulator, sshd: SshServer, tmp_path: Path
) -> None:
    licence = LicenceServer().start()
    licence.issue(expires_at=now() + timedelta(days=300))
    site = tmp_path / "site"
    site.mkdir()
    ssh = ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)
    config = write_config(
        site, ami_simulator.port, extra=local_backups(site) + ssh + licence.config()
    )
    spare = tmp_path / "spare"  # a second agent (run --once, state recover): its own state
    spare.mkdir()
    spare_config = write_config(spare, ami_simulator.port)
    down = tmp_path / "down"  # a PBX and an SSH server that are not there
    down.mkdir()
    down_config = write_config(
        down,
        closed_port(),
        extra=ssh_table("backup.ssh", "127.0.0.1", closed_port(), "root", sshd.client_key),
    )
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('site_id = "Not Valid"\n')
    nowhere = ["--socket", str(tmp_path / "nowhere.sock")]
    c = ["--config", str(config)]
    office = Path(__file__).parents[1] / "fixtures" / "offices"

    sock = site / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 30, "the daemon")
        first = (await backups_done(sock, 1))[0]["id"]
        exported = tmp_path / "usage.jsonl"
        tampered = tmp_path / "tampered.jsonl"
        key = None

        async def prepare_usage() -> None:
            nonlocal key
            key = json.loads((await cli("keys", *c, "--json")).stdout)["public_key"]
            assert (await cli("usage", "export", *c, str(exported))).returncode == 0
            text = exported.read_text()
            tampered.write_text(text.replace('"billable": 11', '"billable": 12', 1))

        await prepare_usage()
        assert (await cli("backup", "now", *c)).returncode == 0  # operation 1, for follow
        cases: dict[tuple[str, ...], tuple[Case, Case | None]] = {
            ("run",): ((["--once", "--config", str(spare_config)], 0),
                       (["--once", "--config", str(down_config)], 1)),
            ("status",): ((c, 0), (nowhere, 1)),
            ("count",): ((c, 0), (nowhere, 1)),
            ("inventory",): ((c, 0), (nowhere, 1)),
            ("keys",): ((c, 0), (nowhere, 1)),
            ("events",): ((c, 0), (nowhere, 1)),
            ("features",): ((c, 0), (nowhere, 1)),
            ("operations",): ((c, 0), (nowhere, 1)),
            ("follow",): (([*c, "1"], 0), ([*c, "999"], 1)),
            ("licence", "status"): ((c, 0), (nowhere, 1)),
            ("licence", "refresh"): ((c, 0), (nowhere, 1)),
            # diag: -1 is "1 when a check FAILs, else 0" (the machine's disk is not ours to judge)
            ("diag",): (([*c, "--json"], -1), (["--config", str(down_config)], 1)),
            ("completion",): ((["bash"], 0), None),  # nothing to fail: only usage errors
            ("usage", "export"): (([*c, str(tmp_path / "again.jsonl")], 0),
                                  ([*nowhere, str(tmp_path / "x.jsonl")], 1)),
            ("usage", "verify"): (([str(exported), "--public-key", str(key)], 0),
                                  ([str(tampered), "--public-key", str(key)], 1)),
            ("backup", "now"): ((c, 0), (nowhere, 1)),
            ("backup", "list"): ((c, 0), (nowhere, 1)),
            ("backup", "verify"): (([*c, first], 0), ([*c, "bogus"], 1)),
            ("backup", "restore"): (([*c, first, "--to", str(tmp_path / "restored")], 0),
                                    ([*c, first, "--to", str(tmp_path / "restored")], 1)),
            ("backup", "pin-host-key"): (([*c, "--yes"], 0),
                                         (["--config", str(down_config), "--yes"], 1)),
            ("config", "check"): (([str(config)], 0), ([str(bad_config)], 2)),
            ("config", "show"): (([str(config)], 0), ([str(bad_config)], 2)),
            ("config", "init"): (([str(tmp_path / "new.toml"), "--yes", "--site-id", "new-site"],
                                  0), ([str(config), "--yes", "--site-id", "x1"], 2)),
            ("state", "recover"): ((["--config", str(spare_config), "--yes"], 0),
                                   (["--config", str(config), "--yes"], 1)),
        }
        missing = {p for p in commands(command_tree) if p not in cases and p[0] != "simulate"}
        assert not missing, f"commands without exit-code cases: {sorted(missing)}"

        failures: list[str] = []
        for path, (success, failure) in cases.items():
            for which, case in (("success", success), ("failure", failure)):
                if case is None:
                    continue
                args, expected = case
                json_args = ["--json"] if takes_json(path) and which == "failure" else []
                result = await cli(*path, *args, *json_args)
                if expected == -1:
                    document = json.loads(result.stdout)
                    expected = 1 if document["failed"] else 0
                if result.returncode != expected:
                    failures.append(
                        f"{' '.join(path)} ({which}): exit {result.returncode}, expected "
                        f"{expected}: {result.stderr.strip()[-300:]}"
                    )
                elif json_args and path != ("diag",):
                    error = json.loads(result.stdout)  # one document: the error object
                    if error.get("ok") is not False or error.get("exit_code") != expected:
                        failures.append(f"{' '.join(path)}: JSON error object {error}")
        assert not failures, "\n".join(failures)
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
        licence.stop()
    assert code == 0, err[-2000:]

    for kind, office_file in (
        ("asterisk", office / "northwind.toml"),
        ("freeswitch", office / "bayside-coastal.toml"),
    ):
        served = await simulator_exit(kind, office_file, 0)
        assert served[0] == 0, served
        taken = await simulator_exit(kind, office_file, ami_simulator.port)  # a port in use
        assert taken[0] == 1 and "cannot listen" in taken[1], taken


async def test_every_command_exits_2_on_a_usage_error_with_json_when_asked() -> None:
    semaphore = asyncio.Semaphore(3)

    async def run(path: tuple[str, ...]) -> tuple[tuple[str, ...], int, str, str]:
        json_args = ["--json"] if takes_json(path) else []
        async with semaphore:
            result = await cli(*path, "--no-such-option", *json_args)
        return path, result.returncode, result.stdout, result.stderr

    for path, code, out, err in await asyncio.gather(*(run(p) for p in commands(command_tree))):
        assert code == 2, (path, code, err)
        assert "No such option" in err and "--no-such-option" in err, (path, err)
        if takes_json(path):
            error = json.loads(out)
            assert error["ok"] is False and error["exit_code"] == 2, (path, out)
            assert "--no-such-option" in error["error"], (path, out)
