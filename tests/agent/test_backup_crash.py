"""Crash safety: a process taking backups is killed with SIGKILL at many points (collection,
encryption, rename, catalog write). After each kill, the next start cleans the leftovers and
the catalog lists only backups that verify completely."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.backup.service import BackupService
from agent.config import load_config
from agent.state import StateStore
from tests.integration.backup_site import backup_table
from tests.integration.daemon_harness import write_config as agent_config

CHILD = r"""
import asyncio, sys
from pathlib import Path
from agent.backup.service import BackupService
from agent.config import load_config
from agent.state import StateStore

async def main():
    cfg = load_config(Path(sys.argv[1]))
    store = await StateStore.open(cfg.state.dir / "state.db")
    service = BackupService(store, cfg)
    print("ready", flush=True)
    while True:
        await service.backup_now("crash test")

asyncio.run(main())
"""
KILLS = 22


def write_config(tmp_path: Path, source: Path) -> Path:
    backup, _ = backup_table(tmp_path, "local", source, "keep_last = 1000")
    return agent_config(tmp_path, 5038, extra=backup)


def make_tree(root: Path) -> None:
    for d in range(8):
        folder = root / f"d{d}"
        folder.mkdir(parents=True)
        for f in range(25):
            (folder / f"f{f}.conf").write_bytes(os.urandom(2048) + f"{d}/{f}".encode())
    (root / "big.db").write_bytes(os.urandom(6 * 1024 * 1024))


def start(config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def check_catalog(config: Path) -> tuple[int, bool]:
    """(good backups listed, whether the kill left a partial file behind)."""
    cfg = load_config(config)
    store = await StateStore.open(cfg.state.dir / "state.db")
    try:
        service = BackupService(store, cfg)
        partial = bool(list(service.directory.glob(".*.partial")))
        await asyncio.to_thread(service.clean_temp_files)  # what the next start does
        assert not list(service.directory.glob(".*")), "no partial file survives a restart"
        good = [r for r in await service.list() if r["status"] == "ok"]
        for row in good:
            result = await service.verify(row["id"])  # ciphertext hash + full decrypt + SHA-256s
            assert "files match" in result["files"]
        return len(good), partial
    finally:
        await store.close()


@pytest.mark.timeout(300)
async def test_sigkill_at_many_points_never_leaves_a_bad_catalog_entry(tmp_path: Path) -> None:
    source = tmp_path / "etc"
    make_tree(source)
    config = write_config(tmp_path, source)
    # How long one backup takes here, to spread the kills over a whole run.
    proc = start(config)
    began = time.monotonic()
    deadline = began + 60
    # Polling another process's state store: there is no event to wait on.
    while await check_catalog_rows(config) < 1:
        assert time.monotonic() < deadline, "the first backup did not finish"
        await asyncio.sleep(0.02)
    duration = time.monotonic() - began
    proc.kill()
    proc.wait()
    counts, interrupted = [], []
    for point in range(KILLS):
        proc = start(config)
        await asyncio.sleep(duration * 1.2 * point / (KILLS - 1))  # choose the kill moment
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        good, partial = await check_catalog(config)
        counts.append(good)
        interrupted.append(partial)
    assert counts[-1] >= 1 and counts == sorted(counts)
    assert any(interrupted), "some kills landed mid-backup (the case that matters)"


async def check_catalog_rows(config: Path) -> int:
    cfg = load_config(config)
    store = await StateStore.open(cfg.state.dir / "state.db")
    try:
        return len(await BackupService(store, cfg).list())
    finally:
        await store.close()
