"""A backup service between two real sshd servers (the PBX it backs up over SFTP, the archive
host it copies to), with the health checks and a clock the test moves: one scheduled run per
simulated day, the archive's real folder readable directly, the events and licence messages
collected."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage

from agent.backup.offsite_sync import OffsiteReport
from agent.backup.service import BackupService
from agent.config import load_config
from agent.health.monitor import HealthMonitor
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from drivers.sftp_source import fetch_host_key, pin_host_key
from tests.archive_disk import ArchiveDisk
from tests.clock import ManualClock
from tests.integration.daemon_harness import ssh_table, write_config
from tests.sshd import SshServer

START = datetime(2027, 3, 1, 2, 30, tzinfo=UTC)  # 02:30, the default schedule


@dataclass
class Rig:
    clock: ManualClock
    service: BackupService
    store: StateStore
    telemetry: Telemetry
    archive: SshServer
    archive_dir: Path
    pbx_tree: Path
    licence_messages: list[dict[str, Any]] = field(default_factory=list)
    disk: ArchiveDisk | None = None  # when the archive folder is a real tmpfs
    # Run each simulated day before the backup (e.g. the licence check).
    before_run: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def day(self) -> dict[str, Any]:
        """A day later, the scheduled backup (and its off-site sync); its catalog row."""
        self.clock.advance(days=1)
        for step in self.before_run:
            await step()
        await self.service.scheduled_run()
        rows = [r for r in await self.service.list() if r["status"] != "archive-only"]
        assert rows[-1]["started_at"] == self.clock.now().isoformat(), "the run took a backup"
        return rows[-1]

    @property
    def report(self) -> OffsiteReport:
        assert self.service.last_offsite is not None
        return self.service.last_offsite

    def held(self) -> set[str]:
        """This site's archives on the archive host, read from its disk (not over SFTP)."""
        return {p.name for p in self.archive_dir.iterdir() if p.name.endswith(".tar.zst.age")}

    def stray(self) -> set[str]:
        """Temp files left on the archive host (none may stay)."""
        return {p.name for p in self.archive_dir.iterdir() if p.name.endswith(".partial")}

    async def local_files(self) -> set[str]:
        """The good backups the local store keeps: what retention keeps."""
        return {r["file"] for r in await self.service.list() if r["status"] == "ok"}

    async def offsite_events(self) -> list[dict[str, Any]]:
        events = await self.telemetry.events(0, 10_000)
        return [e for e in events if e["check"] == "offsite_failed"]

    async def events(self, check: str) -> list[dict[str, Any]]:
        return [e for e in await self.telemetry.events(0, 10_000) if e["check"] == check]


def rig_config(
    tmp_path: Path,
    pbx: SshServer,
    archive: SshServer,
    archive_dir: Path,
    extra: str = "",
    backup: str = "",
) -> tuple[Path, Path]:
    """A config backing up a tree on the PBX to the archive host, with the default retention
    and schedule unless `backup` (keys of [backup]) says otherwise; `extra` goes on after
    [backup.offsite]'s keys. (config, the PBX's tree)."""
    tree = tmp_path / "pbx" / "etc" / "asterisk"
    tree.mkdir(parents=True)
    (tree / "pjsip.conf").write_text("[100]\ntype = endpoint\n")
    (tree / "extensions.conf").write_text("[from-internal]\nexten => 100,1,Dial(PJSIP/100)\n")
    recipient = pyrage.x25519.Identity.generate().to_public()
    text = f"""
[backup]
enabled = true
source = "sftp"
path = "{tree}"
recipients = ["{recipient}"]
{backup}
{ssh_table("backup.ssh", "127.0.0.1", pbx.port, pbx.user, pbx.client_key)}
{ssh_table("backup.offsite", "127.0.0.1", archive.port, archive.user, archive.client_key)}
remote_dir = "{archive_dir}"
{extra}"""
    config = write_config(tmp_path, 5038, extra=text)
    known = tmp_path / "state" / "known_hosts"
    for server in (pbx, archive):
        pin_host_key(known, "127.0.0.1", server.port, fetch_host_key("127.0.0.1", server.port, 5))
    return config, tree


@asynccontextmanager
async def open_rig(
    tmp_path: Path, pbx: SshServer, archive: SshServer, archive_dir: Path, **options: str
) -> AsyncIterator[Rig]:
    """The rig for `rig_config(..., **options)`."""
    config, tree = rig_config(tmp_path, pbx, archive, archive_dir, **options)
    cfg = load_config(config)
    store = await StateStore.open(cfg.state.dir / "state.db")
    clock = ManualClock(START)
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    service = BackupService(store, cfg, clock)
    service.listeners.append(health.on_backup)
    service.offsite_listeners.append(health.on_offsite)
    rig = Rig(clock, service, store, telemetry, archive, archive_dir, tree)

    async def told(body: dict[str, Any]) -> None:
        rig.licence_messages.append(body)

    service.licence_listeners.append(told)
    try:
        yield rig
    finally:
        await store.close()
