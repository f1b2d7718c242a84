"""Issue 14's backup defects reproduced against the real parts (the daemon and the CLI as
processes, a real sshd serving the PBX's files, the stock age, zstd and tar):

- 4: an archive swapped in the store (age recipients are public) is refused by restore,
  `--to-pbx --yes` and verify before anything is decrypted; the PBX is not touched;
- 8: the manifest a stock restore leaves in /etc/asterisk no longer makes later backups
  unrestorable, and a backup a restore would refuse fails instead of pushing good ones out;
- 10: an archive renamed but never catalogued (SIGKILL right after the rename) is listed as an
  orphan and removed by retention; a SIGKILL between retention's mark and its file removal
  never lists a backup without its file; empty folders and folder modes come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.backup.archive import write_archive
from agent.backup.members import MANIFEST
from agent.control import request
from agent.errors import ControlError
from drivers.asterisk.simulator import Simulator
from drivers.backup_source import LocalSource
from tests.integration.backup_site import Site, make_site, tree
from tests.integration.daemon_harness import (
    DaemonProcess,
    cli,
    status_when,
    stop_daemon,
    wait_for,
)
from tests.integration.test_hostile_input import error_line
from tests.sshd import SshServer

ROOT = Path(__file__).resolve().parents[2]


def no_plaintext(site: Site, *places: Path) -> None:
    assert not site.staging.exists() or not list(site.staging.iterdir()), "staging left"
    for place in (site.store, *places):
        if place.exists():
            left = [p.name for p in place.iterdir() if p.name.startswith(".")]
            assert not left, f"left in {place}: {left}"


async def test_a_swapped_archive_is_refused_before_anything_is_decrypted(
    ami_simulator: Simulator, sshd: SshServer, tmp_path: Path
) -> None:
    site = await make_site(tmp_path, ami_simulator.port, sshd)
    proc = await site.start()
    try:
        row = await site.run("backup", "now")
        # Someone with write access to the store puts in an archive of their own, encrypted
        # to the site's public recipient: a manager.conf with an all-powerful user.
        evil = tmp_path / "evil"
        evil.mkdir()
        (evil / "manager.conf").write_text("[intruder]\nsecret = x\nread = all\nwrite = all\n")
        forged = write_archive(
            LocalSource(evil), tmp_path, "forged.age", [str(site.identity.to_public())], {}
        )
        genuine = (site.store / row["file"]).read_bytes()
        os.replace(forged.path, site.store / row["file"])
        before = tree(site.remote)
        target = tmp_path / "restored"
        refusals = [
            ("backup", "restore", row["id"], "--to-pbx", "--yes"),
            ("backup", "restore", row["id"], "--to", str(target)),
            ("backup", "verify", row["id"]),
        ]
        for args in refusals:
            done = await cli(*args, "--config", str(site.config))
            assert done.returncode == 1, done.stdout
            reason = error_line(done.stderr)
            assert "size (" in reason and "differs from the catalog" in reason, reason
            assert "nothing was decrypted" in reason
        # The same size, one bit changed: the SHA-256 tells.
        altered = bytearray(genuine)
        altered[len(altered) // 2] ^= 1
        (site.store / row["file"]).write_bytes(bytes(altered))
        for args in refusals:
            done = await cli(*args, "--config", str(site.config))
            assert done.returncode == 1, done.stdout
            reason = error_line(done.stderr)
            assert "SHA-256 differs from the catalog" in reason, reason
            assert "nothing was decrypted" in reason
        assert tree(site.remote) == before, "the PBX was not touched"
        assert not target.exists()
        no_plaintext(site, tmp_path, site.remote)
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]


async def test_the_manifest_a_stock_restore_leaves_does_not_spoil_later_backups(
    ami_simulator: Simulator, sshd: SshServer, tmp_path: Path
) -> None:
    limits = "[backup.limits]\nfile_bytes = 1048576\ntotal_bytes = 4194304\n"
    site = await make_site(tmp_path, ami_simulator.port, sshd, extra=limits)
    proc = await site.start()
    try:
        first = await site.run("backup", "now")
        # The README's stock restore, straight into /etc/asterisk.
        stock = (
            f"age -d -i {site.identity_file} {site.store / first['file']} "
            f"| zstd -d | tar x -C {site.remote}"
        )
        await asyncio.to_thread(subprocess.run, stock, shell=True, check=True)
        assert (site.remote / MANIFEST).exists(), "what the stock restore leaves"
        later = [await site.run("backup", "now") for _ in range(3)]
        rows = await site.run("backup", "list")
        assert [r["id"] for r in rows] == [b["id"] for b in later], "keep_last = 3"
        for row in later:
            verified = await site.run("backup", "verify", row["id"])
            assert verified["files"].endswith("files match their SHA-256")
            target = tmp_path / "restored" / row["id"]
            await site.run("backup", "restore", row["id"], "--to", str(target), as_json=False)
            assert tree(target) == tree(site.remote), "the namesake file is an ordinary file"
        # A backup a restore would refuse (a file over backup.limits.file_bytes) fails, and
        # retention keeps the good ones.
        (site.remote / "huge.db").write_bytes(os.urandom(2 * 1024 * 1024))
        failed = await cli("backup", "now", "--config", str(site.config))
        assert failed.returncode == 1
        assert "backup.limits.file_bytes" in error_line(failed.stderr)
        rows = await site.run("backup", "list")
        assert [r["id"] for r in rows if r["status"] == "ok"] == [b["id"] for b in later]
        assert all((site.store / b["file"]).is_file() for b in later)
        no_plaintext(site, tmp_path / "restored")
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]


def start_hooked(site: Site, hook: str) -> DaemonProcess:
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop_daemon
    errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = DaemonProcess(
        [sys.executable, "-m", "tests.kill_hooks", hook, "run", "--config", str(site.config)],
        stdout=output,
        stderr=errors,
        text=True,
        cwd=ROOT,
    )
    proc.output, proc.errors = output, errors
    return proc


async def killed_during_backup(site: Site, hook: str) -> None:
    """Start with `hook`, ask for a backup, and wait until the daemon killed itself there."""
    proc = start_hooked(site, hook)
    up = status_when(site.socket, lambda r: True)
    try:
        await asyncio.to_thread(wait_for, up, 30, "daemon")
        with contextlib.suppress(ControlError):
            await asyncio.to_thread(request, site.socket, "backup-now", {}, timeout=60)
        code = await asyncio.to_thread(proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.output, proc.errors):
            stream.close()
    assert code == -9, f"{hook}: not killed ({code})"


@pytest.mark.timeout(300)
async def test_orphans_and_interrupted_removals_and_folders(
    ami_simulator: Simulator, sshd: SshServer, tmp_path: Path
) -> None:
    site = await make_site(tmp_path, ami_simulator.port, sshd)
    proc = await site.start()
    try:
        await site.run("backup", "now")  # a good one: no catch-up at the next starts
    finally:
        await asyncio.to_thread(stop_daemon, proc)
    before = {p.name for p in site.store.iterdir()}
    # Killed right after the archive's rename, before its catalog row: an orphan file.
    await killed_during_backup(site, "backup-renamed")
    [orphan_file] = [p.name for p in site.store.iterdir() if p.name not in before]
    proc = await site.start()
    try:
        rows = await site.run("backup", "list")
        assert {(r["status"], r["file"]) for r in rows} == {
            *(("ok", name) for name in before),
            ("orphan", orphan_file),
        }
        good = [await site.run("backup", "now") for _ in range(3)]
        rows = await site.run("backup", "list")
        assert [r["id"] for r in rows] == [g["id"] for g in good], "retention removed it"
        assert sorted(p.name for p in site.store.iterdir()) == sorted(g["file"] for g in good)
        # Empty folders and folder modes are backed up and restored.
        target = tmp_path / "restored"
        await site.run("backup", "restore", good[-1]["id"], "--to", str(target), as_json=False)
        assert tree(target) == tree(site.remote)
        assert tree(target)["empty"] == ("dir", 0o755) and tree(target)["keys"][1] == 0o700
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]
    # Killed between retention's mark and the file's removal (keep_last = 3: the 4th backup
    # removes the oldest).
    await killed_during_backup(site, "retention-marked")
    proc = await site.start()
    try:
        rows = await site.run("backup", "list")
        assert rows and all(r["status"] in ("ok", "failed") for r in rows), rows
        for r in rows:
            if r["status"] == "ok":
                assert (site.store / r["file"]).is_file(), f"{r['id']} listed without its file"
        assert good[0]["id"] not in {r["id"] for r in rows}
        assert not (site.store / good[0]["file"]).exists(), "the removal was finished"
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
    assert code == 0, err[-2000:]
