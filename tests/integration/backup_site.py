"""A site for backup tests against the real parts: a PBX configuration tree served by a real
sshd, the daemon and the CLI as processes, the stock `age`, and the agent's age identity."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from tests.integration.daemon_harness import (
    DaemonProcess,
    cli,
    ssh_table,
    start_daemon,
    status_when,
    wait_for,
    write_config,
)
from tests.sshd import SshServer

RETENTION = {"last": 3, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}


@dataclass
class Site:
    config: Path
    state: Path
    remote: Path  # the PBX's /etc/asterisk, served over SFTP
    identity: pyrage.x25519.Identity
    identity_file: Path

    @property
    def socket(self) -> Path:
        return self.state / "control.sock"

    @property
    def store(self) -> Path:
        return self.state / "backups"

    @property
    def staging(self) -> Path:
        return self.state / "staging"

    async def run(self, *args: str, as_json: bool = True) -> Any:
        """`pbx-agent ARGS --config ... [--json]`, which must succeed; its JSON (or text)."""
        done = await cli(*args, "--config", str(self.config), *(["--json"] if as_json else []))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if as_json else done.stdout

    async def start(self) -> DaemonProcess:
        proc = start_daemon(self.config)
        await asyncio.to_thread(wait_for, status_when(self.socket, lambda r: True), 30, "daemon")
        return proc


def write_tree(root: Path, big: int = 0) -> None:
    """A small PBX configuration (with an empty folder and private modes), and optionally a
    `big`-byte file so that reading it back takes a while."""
    (root / "keys").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "manager.conf").write_text("[general]\nenabled = yes\n[admin]\nsecret = s3cret\n")
    (root / "pjsip.conf").write_text("[100]\ntype = endpoint\n" * 50)
    (root / "keys" / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    for n in range(40):
        (root / f"extensions_{n}.conf").write_text(f"[ctx{n}]\nexten => {n},1,Dial(PJSIP/{n})\n")
    if big:
        (root / "astdb.sqlite3").write_bytes(os.urandom(big))
    (root / "keys").chmod(0o700)
    (root / "keys" / "tls.key").chmod(0o600)


def tree(root: Path) -> dict[str, Any]:
    """Files (bytes and mode) and folders (mode) below `root`."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        mode = path.stat().st_mode & 0o777
        found[relative] = (path.read_bytes(), mode) if path.is_file() else ("dir", mode)
    return found


def new_identity(path: Path) -> pyrage.x25519.Identity:
    """A new age identity, written to `path` (mode 0600) as the agent's `identity_file`."""
    identity = pyrage.x25519.Identity.generate()
    path.write_text(str(identity) + "\n")
    path.chmod(0o600)
    return identity


def backup_table(
    tmp_path: Path, source: str, path: Path, more: str = ""
) -> tuple[str, pyrage.x25519.Identity]:
    """A `[backup]` table (`more`: further keys and tables) with a new identity in
    `tmp_path/identity.txt` as its recipient and identity_file; the table and the identity."""
    identity_file = tmp_path / "identity.txt"
    identity = new_identity(identity_file)
    table = f"""
[backup]
enabled = true
schedule = "0 3 * * *"
source = "{source}"
path = "{path}"
recipients = ["{identity.to_public()}"]
identity_file = "{identity_file}"
{more}
"""
    return table, identity


async def make_site(
    tmp_path: Path, ami_port: int, sshd: SshServer, *, big: int = 0, extra: str = ""
) -> Site:
    remote = tmp_path / "pbx" / "etc" / "asterisk"
    write_tree(remote, big)
    retention = "\n".join(f"keep_{k} = {v}" for k, v in RETENTION.items())
    ssh = ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)
    backup, identity = backup_table(tmp_path, "sftp", remote, f"{retention}\n{extra}\n{ssh}")
    config = write_config(tmp_path, ami_port, extra=backup)
    pinned = await cli("backup", "pin-host-key", "--config", str(config), "--yes")
    assert pinned.returncode == 0, pinned.stderr
    return Site(config, tmp_path / "state", remote, identity, tmp_path / "identity.txt")
