"""Backups through the daemon: pin the host keys (the PBX's and the archive host's), back up
over SFTP from a real sshd to another (the archive host), list, verify, restore; a changed host
key fails the backup with the reason in the catalog; `backup list` and `diag` show the archive
host's state and name the cause when it is not healthy."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import paramiko
import pyrage

from drivers.asterisk.simulator import Simulator
from drivers.sftp_source import pin_host_key
from tests.integration.backup_site import backup_table
from tests.integration.daemon_harness import (
    cli,
    ssh_table,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.sshd import SshServer


def archive_table(server: SshServer) -> str:
    return ssh_table("backup.offsite", "127.0.0.1", server.port, server.user, server.client_key)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def test_backup_now_list_verify_restore_over_sftp(
    ami_simulator: Simulator, sshd: SshServer, archive_sshd: SshServer, tmp_path: Path
) -> None:
    remote = tmp_path / "pbx" / "etc" / "asterisk"
    (remote / "sub").mkdir(parents=True)
    (remote / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    (remote / "sub" / "voicemail.conf").write_text("[default]\n100 => 1234,A\n")
    archive = tmp_path / "archive-host" / "site"
    archive.mkdir(parents=True)
    ssh = ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)
    extra, _ = backup_table(
        tmp_path, "sftp", remote, f'{ssh}\n{archive_table(archive_sshd)}\nremote_dir = "{archive}"'
    )
    config = write_config(tmp_path, ami_simulator.port, extra=extra)
    pinned = await cli("backup", "pin-host-key", "--config", str(config), "--yes")
    assert pinned.returncode == 0, pinned.stderr
    assert "SHA256:" in pinned.stdout
    pinned = await cli("backup", "pin-host-key", "--offsite", "--config", str(config), "--yes")
    assert pinned.returncode == 0, pinned.stderr
    assert f"127.0.0.1:{archive_sshd.port} offers ssh-ed25519 SHA256:" in pinned.stdout
    assert "pinned the archive host's key" in pinned.stdout
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "the daemon")
        first = await cli("backup", "now", "--config", str(config), "--json")
        assert first.returncode == 0, first.stderr
        row = json.loads(first.stdout)
        assert row["status"] == "ok" and row["files"] == 2
        assert row["offsite"] == "ok"
        local = tmp_path / "state" / "backups" / row["file"]
        assert (archive / row["file"]).read_bytes() == local.read_bytes()
        assert not list(archive.glob(".*")), "no partial upload left on the archive host"
        second = json.loads((await cli("backup", "now", "--config", str(config), "--json")).stdout)
        assert second["changed"] == 0, "an unchanged configuration is marked unchanged"

        rows = json.loads((await cli("backup", "list", "--config", str(config), "--json")).stdout)
        assert [r["status"] for r in rows].count("ok") >= 2  # plus the catch-up at start
        assert rows[0]["changed"] == 1

        verified = await cli("backup", "verify", row["id"], "--config", str(config))
        assert verified.returncode == 0 and "2 files match" in verified.stdout, verified.stderr

        target = tmp_path / "restored"
        restored = await cli(
            "backup", "restore", row["id"], "--to", str(target), "--config", str(config)
        )
        assert restored.returncode == 0, restored.stderr
        assert tree(target) == tree(remote)

        # A replacement PBX: one file edited, one missing, one that only it has.
        (remote / "pjsip.conf").write_text("[100]\ntype = aor\n")
        (remote / "sub" / "voicemail.conf").unlink()
        (remote / "extensions.conf").write_text("[from-internal]\n")
        before = tree(remote)
        shown = await cli("backup", "restore", row["id"], "--to-pbx", "--config", str(config))
        assert shown.returncode == 0, shown.stderr
        assert "1 new, 1 changed, 0 unchanged, 1 only on the PBX" in shown.stdout
        assert "-type = aor" in shown.stdout and "+type = endpoint" in shown.stdout
        assert "nothing written" in shown.stdout
        assert tree(remote) == before, "without --yes the PBX is not touched"
        pushed = await cli(
            "backup", "restore", row["id"], "--to-pbx", "--yes", "--config", str(config)
        )
        assert pushed.returncode == 0, pushed.stderr
        assert "2 files written to the PBX" in pushed.stdout
        assert tree(remote) == {**tree(target), "extensions.conf": b"[from-internal]\n"}
        assert not [p for p in remote.rglob(".*")], "no partial file left on the PBX"
        again = await cli("backup", "restore", row["id"], "--to-pbx", "--config", str(config))
        assert "nothing to write" in again.stdout

        known = tmp_path / "state" / "known_hosts"
        other = tmp_path / "other_host_key"
        await asyncio.to_thread(
            subprocess.run,
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
            check=True,
        )
        pin_host_key(known, "127.0.0.1", sshd.port, paramiko.PKey.from_path(str(other)))
        failed = await cli("backup", "now", "--config", str(config))
        assert failed.returncode == 1 and "HOST KEY CHANGED" in failed.stderr
        known.write_text("[127.0.0.1]:1 ssh-ed25519 not-base64-at-all\n")
        damaged = await cli("backup", "now", "--config", str(config))
        assert damaged.returncode == 1 and "cannot read pinned host keys" in damaged.stderr
        rows = json.loads((await cli("backup", "list", "--config", str(config), "--json")).stdout)
        assert [r["status"] for r in rows[-2:]] == ["failed", "failed"]
        assert rows[-1]["file"] is None and "pinned host keys" in rows[-1]["error"]
        shown = await cli("events", "--config", str(config), "--json")
        events = json.loads(shown.stdout)
        failed_events = [e for e in events if e["check"] == "backup_failed"]
        assert [e["kind"] for e in failed_events] == ["problem"], "one problem, not one per run"
        assert "HOST KEY CHANGED" in failed_events[0]["summary"]
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err


async def test_restore_needs_exactly_one_destination(tmp_path: Path) -> None:
    config = write_config(tmp_path, 1)
    both = await cli(
        "backup", "restore", "x", "--to", str(tmp_path / "t"), "--to-pbx", "--config", str(config)
    )
    neither = await cli("backup", "restore", "x", "--config", str(config))
    yes_alone = await cli(
        "backup", "restore", "x", "--to", str(tmp_path / "t"), "--yes", "--config", str(config)
    )
    for result in (both, neither, yes_alone):
        assert result.returncode == 2, result.stderr
    assert "exactly one of --to DIR and --to-pbx" in both.stderr
    assert "--yes goes with --to-pbx" in yes_alone.stderr
    assert not (tmp_path / "t").exists()


async def test_the_archive_host_in_backup_list_and_diag(
    ami_simulator: Simulator, sshd: SshServer, archive_sshd: SshServer, tmp_path: Path
) -> None:
    remote = tmp_path / "pbx" / "etc" / "asterisk"
    remote.mkdir(parents=True)
    (remote / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    archive = tmp_path / "archive-host" / "site"
    archive.mkdir(parents=True)
    extra = f"""
[backup]
enabled = true
source = "sftp"
path = "{remote}"
recipients = ["{pyrage.x25519.Identity.generate().to_public()}"]
{ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)}
{archive_table(archive_sshd)}
remote_dir = "{archive}"
"""
    config = write_config(tmp_path, ami_simulator.port, extra=extra)
    await cli("backup", "pin-host-key", "--config", str(config), "--yes")

    async def diag() -> tuple[int, dict[str, dict[str, str]]]:
        result = await cli("diag", "--config", str(config), "--json")
        checks = json.loads(result.stdout)["checks"]
        return result.returncode, {c["name"]: c for c in checks if c["name"].startswith("archive")}

    code, checks = await diag()
    assert code == 1 and checks["archive-host"]["status"] == "FAIL"
    assert "is not pinned" in checks["archive-host"]["value"]
    assert "pbx-agent backup pin-host-key --offsite" in checks["archive-host"]["hint"]
    await cli("backup", "pin-host-key", "--offsite", "--config", str(config), "--yes")
    _, checks = await diag()
    assert [c["status"] for c in checks.values()] == ["PASS", "PASS", "PASS"], checks
    assert "host key pinned, login ok" in checks["archive-host"]["value"]
    assert "writable, fsync offered" in checks["archive-write"]["value"]
    assert "MB free of" in checks["archive-space"]["value"]
    assert not list(archive.iterdir()), "the write probe leaves nothing behind"

    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "the daemon")
        first = await cli("backup", "now", "--config", str(config))
        assert "off-site copy: ok" in first.stdout, first.stdout + first.stderr
        listed = await cli("backup", "list", "--config", str(config))
        header, *rows = listed.stdout.splitlines()
        assert "OFFSITE" in header.split()
        assert all("copied" in row.split() for row in rows), listed.stdout

        archive_sshd.stop()
        second = await cli("backup", "now", "--config", str(config))
        down = f"the archive host 127.0.0.1:{archive_sshd.port} is down or unreachable"
        assert f"off-site copy: failed: {down}: connection refused" in second.stdout
        listed = await cli("backup", "list", "--config", str(config))
        assert "MISSING" in listed.stdout.splitlines()[-2].split()
        assert f"off-site MISSING: {down}: connection refused" in listed.stdout
        code, checks = await diag()
        assert code == 1 and checks["archive-host"]["status"] == "FAIL"
        assert "is the archive host up" in checks["archive-host"]["hint"]

        archive_sshd.start("-R")  # back, but the account may not write any more
        code, checks = await diag()
        assert checks["archive-host"]["status"] == "PASS"
        assert checks["archive-write"]["status"] == "FAIL"
        assert "permission denied on the archive host" in checks["archive-write"]["value"]
        assert "create, rename and delete" in checks["archive-write"]["hint"]
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err
