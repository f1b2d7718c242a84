"""A site for the technician's-tool tests: the daemon against the AMI simulator, with local
backups of a PBX config folder (optionally holding one big sparse file, so that a backup takes
long enough to be followed) and an age identity, so verify and restore read everything."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyrage

from agent.control_client import request
from agent.errors import ControlError
from tests.integration.daemon_harness import (
    DaemonProcess,
    cli,
    start_daemon,
    status_when,
    wait_for,
    write_config,
)


def local_backups(tmp: Path, *, big: int = 0, extra: str = "") -> str:
    """A `[backup]` table backing up `tmp/pbx-etc` (a few config files, and `big` bytes of
    a sparse file when asked), encrypted to a fresh identity kept beside it; `extra` lines
    go in the table."""
    tree = tmp / "pbx-etc"
    (tree / "sub").mkdir(parents=True)
    (tree / "pjsip.conf").write_text("[101]\ntype = endpoint\n")
    (tree / "extensions.conf").write_text("[from-internal]\nexten => 101,1,Dial(PJSIP/101)\n")
    (tree / "sub" / "voicemail.conf").write_text("[default]\n101 => 1234,Alice\n")
    if big:
        with (tree / "moh.bin").open("wb") as fh:
            fh.truncate(big)  # sparse: big to read, nothing on disk
    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp / "identity.txt"
    identity_file.write_text(str(identity) + "\n")
    identity_file.chmod(0o600)
    return (
        f'[backup]\nenabled = true\nsource = "local"\npath = "{tree}"\n'
        f'recipients = ["{identity.to_public()}"]\nidentity_file = "{identity_file}"\n'
        + extra
    )


def site_config(
    tmp: Path, ami_port: int, *, big: int = 0, backup_extra: str = "", extra: str = ""
) -> Path:
    backups = local_backups(tmp, big=big, extra=backup_extra)
    return write_config(tmp, ami_port, extra=backups + extra)


async def backups_done(socket: Path, count: int, within: float = 120) -> list[dict[str, Any]]:
    """Wait until the catalog holds `count` good backups (the catch-up at start is one)."""

    def good() -> list[dict[str, Any]] | None:
        try:
            rows = request(socket, "backup-list", timeout=5)
        except ControlError:
            return None
        found = [r for r in rows if r["status"] == "ok"]
        return found if len(found) >= count else None

    rows: list[dict[str, Any]] = await asyncio.to_thread(
        wait_for, good, within, f"{count} good backups"
    )
    return rows


async def started(config: Path) -> tuple[DaemonProcess, Path]:
    """The daemon of `config` started and answering; it and its control socket."""
    sock = config.parent / "state" / "control.sock"
    proc = start_daemon(config)
    await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 30, "the daemon")
    return proc, sock


__all__ = ["backups_done", "cli", "local_backups", "site_config", "started"]
