"""The daemon (`pbx-agent run`): starts the services, serves the control socket, and stops
cleanly on SIGTERM/SIGINT, talking to systemd through the notify protocol when present."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from agent import __version__, restore_target
from agent.backup import catalog
from agent.backup.service import BackupService
from agent.config import AgentConfig
from agent.control import Arg, ControlServer
from agent.counting.history import usage_reports
from agent.counting.service import CountingService
from agent.errors import ConfigError, LicenceError
from agent.health.monitor import Finding, HealthMonitor
from agent.licence.enforcement import Enforcement
from agent.licence.features import feature_rows, summary
from agent.licence.service import LicenceService
from agent.pbx_poller import PbxPoller
from agent.progress import Progress
from agent.sdnotify import Notifier
from agent.state import StateStore
from agent.supervisor import Supervisor, TaskInfo
from agent.telemetry.service import Telemetry
from agent.usage import keys
from drivers.base import Driver
from drivers.config_files import ConfigFiles, LocalConfigFiles, SftpConfigFiles
from drivers.models import Capability
from drivers.registry import driver_class
from drivers.sftp_source import remote_disk_free

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 5.0
# Supervised tasks: restarted after 1, 2, 4 ... 60 s; a run of 60 s ends a failure streak.
TASK_BACKOFF_INITIAL = 1.0
TASK_BACKOFF_MAX = 60.0
TASK_STABLE_AFTER = 60.0

# The arguments each control command takes (anything else is refused before it runs).
CONTROL_ARGS: dict[str, dict[str, Arg]] = {
    "count": {"cached": Arg(bool), "report": Arg(bool)},
    "usage-export": {"limit": Arg(int, maximum=1_000_000)},
    "backup-now": {"reason": Arg(str, maximum=200)},
    "backup-verify": {"id": Arg(str, maximum=100, required=True)},
    "backup-restore": {
        "id": Arg(str, maximum=100, required=True),
        "to": Arg(str, maximum=4096, required=True),
        "token": Arg(str, maximum=100, required=True),  # restore_target's marker
    },
    "backup-restore-pbx": {"id": Arg(str, maximum=100, required=True), "apply": Arg(bool)},
    "events": {"after": Arg(int, maximum=10**15), "limit": Arg(int, maximum=100_000)},
}


def create_driver(cfg: AgentConfig) -> Driver:
    """The configured driver, built from its own settings table: the registry knows the
    vendors, the agent does not."""
    return driver_class(cfg.pbx.driver).from_settings(cfg.pbx.settings)


class Daemon:
    """Owns the running services; `run()` returns the process exit code."""

    def __init__(self, cfg: AgentConfig, *, once: bool = False) -> None:
        self.cfg = cfg
        self.once = once
        self.started_at = datetime.now(UTC)
        self._started_mono = time.monotonic()
        self._stop = asyncio.Event()
        self._notifier = Notifier()

    async def run(self) -> int:
        control = ControlServer(
            self.cfg.control.socket,
            self._handlers(),
            CONTROL_ARGS,
            self._streamed(),
            attached={"count": ("report",)},  # printed by `count --json` as it comes
        )
        await control.check_free()  # before anything: a second daemon touches nothing
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        store = await StateStore.open(
            self.cfg.state.dir / "state.db",
            prior_state=self._prior_state(),
            recovery=f"pbx-agent state recover --config {self.cfg.source}",
        )
        key = await asyncio.to_thread(keys.load_or_create, self.cfg.state.dir)
        driver = create_driver(self.cfg)
        link = self.cfg.pbx.settings
        poller = PbxPoller(
            driver,
            store,
            interval=self.cfg.poll.interval,
            cycle_timeout=link.connect_timeout + 3 * link.action_timeout,
        )
        self._poller = poller
        self._driver = driver
        self._key = key
        self._store = store
        self._telemetry = Telemetry(store, self.cfg)
        self._counting = CountingService(driver, store, self.cfg, key, self._telemetry)
        self._backups = BackupService(store, self.cfg, telemetry=self._telemetry)
        self._health = HealthMonitor(store, self.cfg, self._telemetry)
        self._licence = LicenceService(store, self.cfg, self._telemetry, self._health)
        self._enforcement = Enforcement(
            store, self.cfg, driver, self._telemetry, self._counting, self._health
        )
        if self.cfg.licence.enabled:
            files = self._config_files()
            if files is not None:
                driver.use_config_files(files)
        tasks = self._tasks = Supervisor(
            on_failure=self._task_health,
            on_stable=self._task_health,
            backoff_initial=TASK_BACKOFF_INITIAL,
            backoff_max=TASK_BACKOFF_MAX,
            stable_after=TASK_STABLE_AFTER,
        )
        try:
            await self._start_telemetry()
            await self._backups.open()  # after a crash: no plaintext left, catalog = store
            await control.start()
            tasks.start("pbx-poller", poller.run)
            if not self.once:
                tasks.start("counting", self._counting.run)
                if self.cfg.backup.enabled:
                    tasks.start("backups", self._backups.run)
                if self._telemetry.publisher is not None:
                    tasks.start("publisher", self._telemetry.run)
                if self.cfg.licence.enabled:
                    tasks.start("licence", self._licence.run)
                tasks.start("health", self._run_local_checks)
            if self._notifier.watchdog_interval:
                tasks.start("watchdog", self._watchdog)
            self._notifier.ready()
            log.info(
                "daemon started",
                version=__version__,
                site_id=self.cfg.site_id,
                pid=os.getpid(),
                control_socket=str(self.cfg.control.socket),
            )
            if self.once:
                await self._wait_first_cycle(poller)
            else:
                await self._stop.wait()
        finally:
            self._notifier.stopping()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._telemetry.stop(), STOP_TIMEOUT)
            await tasks.stop(STOP_TIMEOUT)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), STOP_TIMEOUT)
            await control.stop()
            await store.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("daemon stopped")
        if self.once:
            return 0 if poller.last is not None and poller.last.ok else 1
        return 0

    async def _start_telemetry(self) -> None:
        """Health checks on every poll and backup; usage and backup results upstream."""
        await self._health.open()
        self._poller.listeners.append(self._health.on_poll)
        self._backups.listeners.append(self._health.on_backup)
        self._backups.offsite_listeners.append(self._health.on_offsite)
        self._backups.licence_listeners.append(self._send_archive_licence)
        self._counting.listeners.append(self._licence.on_usage)
        self._counting.listeners.append(self._enforcement.on_count)
        self._licence.listeners.append(self._enforcement.on_licence)
        self._poller.listeners.append(self._enforcement.on_poll)
        self._backups.offsite_allowed = lambda: self._licence.evaluation.features["config_archive"]
        # The outbox first: the licence's first evaluation already queues a message.
        await self._telemetry.start(self._heartbeat, self._command_handlers())
        await self._licence.open()

    def _prior_state(self) -> list[Path]:
        """What shows the agent ran here before: its key and its backup archives (the
        folder as BackupService places it)."""
        state = self.cfg.state.dir
        return [state / keys.KEY_FILE, self.cfg.backup.store or state / "backups"]

    async def _task_health(self, task: TaskInfo) -> None:
        """The supervisor's report: a failed task is the `agent_task_failed` problem, the
        same task running long enough again is its resolution."""
        healthy = task.state == "running"
        summary = (
            f"agent task {task.name} running again"
            if healthy
            else f"agent task {task.name} failed ({task.last_error}); "
            f"restarting it in {task.retry_in:g} s"
        )
        await self._health.observe(
            Finding(
                f"agent_task_failed:{task.name}",
                healthy,
                "warning",
                summary,
                {"task": task.name, "restarts": task.restarts},
            )
        )

    def _command_handlers(self) -> dict[str, Any]:
        """What the central server may ask for over MQTT (signed commands only)."""

        async def count_now(_args: Mapping[str, Any]) -> dict[str, Any]:
            result = await self._counting.count_now()
            return {
                "billable": result["report"]["billable"],
                "usage_id": result["usage"]["payload"]["id"],
            }

        async def backup_now(_args: Mapping[str, Any]) -> dict[str, Any]:
            if not self.cfg.backup.enabled:
                raise RuntimeError("backups are not enabled on this agent")
            row = await self._backup_now({"reason": "central command"})
            return {"backup_id": row["id"], "status": row["status"]}

        async def diag(_args: Mapping[str, Any]) -> dict[str, Any]:
            return await self._status({})

        async def licence_refresh(_args: Mapping[str, Any]) -> dict[str, Any]:
            return await self._licence_refresh({})

        return {
            "count-now": count_now,
            "backup-now": backup_now,
            "diag": diag,
            "licence-refresh": licence_refresh,
        }

    def _heartbeat(self) -> dict[str, Any]:
        last = self._poller.last
        outbox = self._telemetry.outbox
        return {
            "uptime_seconds": int(time.monotonic() - self._started_mono),
            "agent_version": __version__,
            "outbox_depth": outbox.depth if outbox else 0,
            "last_poll": {"ts": last.finished_at.isoformat(), "ok": last.ok} if last else None,
            "licence": self._licence.state,
        }

    async def _send_archive_licence(self, body: dict[str, Any]) -> None:
        """An action under the archive's lapse policy, as a `licence` message."""
        await self._telemetry.send("licence", {"state": self._licence.state, **body})

    async def _run_local_checks(self) -> None:
        last_good = self._backups.last_good if self.cfg.backup.enabled else None
        ssh = self.cfg.backup.ssh
        disk = None
        if ssh is not None and self.cfg.backup.source == "sftp":
            disk = functools.partial(
                remote_disk_free, self._backups.ssh_settings(), self.cfg.backup.path
            )
        await self._health.run_local(last_good, disk)

    async def _licence_status(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return self._licence.status() | {"enforcement": summary(await self._features({}))}

    async def _licence_refresh(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        if not self.cfg.licence.enabled:
            raise LicenceError("no licence server configured ([licence] enabled = false)")
        result = await self._licence.refresh()
        return result | {"enforcement": summary(await self._features({}))}

    async def _features(self, _args: Mapping[str, Any]) -> list[dict[str, Any]]:
        switches = self._driver.feature_switches()
        unavailable = None
        if not self.cfg.licence.enabled:
            unavailable = "nothing is switched: no licence server ([licence] enabled = false)"
        elif self._driver.supports(Capability.FEATURES) and not switches:
            unavailable = (
                "cannot switch: no access to the PBX's config files (set [backup] "
                'source = "local" on the PBX host, or a [backup.ssh] server)'
            )
        return feature_rows(
            self._licence.evaluation,
            switches,
            self._enforcement.status,
            await self._enforcement.journal(),
            unavailable,
        )

    def _config_files(self) -> ConfigFiles | None:
        """The PBX's config folder, reached the way backups reach it (feature switching)."""
        backup = self.cfg.backup
        if backup.source == "local":
            return LocalConfigFiles(Path(backup.path))
        if backup.ssh is not None:
            return SftpConfigFiles(self._backups.ssh_settings())
        return None

    async def _events(self, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self._telemetry.events(int(args.get("after", 0)), int(args.get("limit", 100)))

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("stop requested", signal=sig.name)
        self._stop.set()

    async def _wait_first_cycle(self, poller: PbxPoller) -> None:
        first = asyncio.create_task(poller.cycle_done.wait())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({first, stop}, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        stop.cancel()

    async def _watchdog(self) -> None:
        interval = self._notifier.watchdog_interval or 10.0
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    def _handlers(self) -> dict[str, Any]:
        return {
            "status": self._status,
            "ping": self._ping,
            "poll-now": self._poll_now,
            "count": self._count,
            "inventory": self._inventory,
            "keys": self._keys,
            "usage-export": self._usage_export,
            "backup-list": self._backup_list,
            "events": self._events,
            "licence-status": self._licence_status,
            "licence-refresh": self._licence_refresh,
            "features": self._features,
        }

    def _streamed(self) -> dict[str, Any]:
        """The long operations: they report progress, and outlive a client that goes."""
        return {
            "backup-now": self._backup_now,
            "backup-verify": self._backup_verify,
            "backup-restore": self._backup_restore,
            "backup-restore-pbx": self._backup_restore_pbx,
        }

    def _pbx_version(self) -> str | None:
        good = self._poller.last_good
        return good.facts.version if good and good.facts else None

    async def _backup_now(
        self, args: Mapping[str, Any], progress: Progress | None = None
    ) -> dict[str, Any]:
        if not self.cfg.backup.enabled:  # refused: nothing recorded, no alarm raised
            raise ConfigError(
                f"backups are not configured on this site ([backup] enabled = false in "
                f"{self.cfg.source}); see the Backups section of the README"
            )
        self._backups.pbx_version = self._pbx_version()
        reason = str(args.get("reason", "on demand"))
        return await self._backups.backup_now(reason, progress)

    async def _backup_list(self, _args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self._backups.list()

    async def _backup_verify(self, args: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
        return await self._backups.verify(str(args["id"]), progress)

    async def _backup_restore(self, args: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
        target, allowed = Path(str(args["to"])), self.cfg.state.dir / "restore"
        await asyncio.to_thread(restore_target.claim, target, str(args.get("token", "")), allowed)
        return await self._backups.restore(str(args["id"]), target, progress)

    async def _backup_restore_pbx(
        self, args: Mapping[str, Any], progress: Progress
    ) -> dict[str, Any]:
        apply = bool(args.get("apply"))
        return await self._backups.restore_to_pbx(str(args["id"]), apply, progress)

    def _counting_status(self) -> dict[str, Any] | None:
        last = self._counting.last
        if last is None:
            return None
        report = last["report"]
        return {
            "billable": report["billable"],
            "at": report["generated_at"],
            "stale": len(report["stale"]),
            "warnings": len(report["warnings"]),
        }

    async def _count(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """A count for a technician: nothing recorded or sent upstream unless `report`."""
        if args.get("cached") and self._counting.last is not None:
            return self._counting.last
        return await self._counting.count_now(record=bool(args.get("report")))

    async def _inventory(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return await self._counting.inventory()

    async def _keys(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "algorithm": "Ed25519",
            "key_id": keys.key_id(self._key),
            "public_key": keys.public_b64(self._key),
            "file": str(self.cfg.state.dir / keys.KEY_FILE),
        }

    async def _usage_export(self, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        limit = int(args.get("limit", 1000))
        return await self._store.call(usage_reports, limit)

    async def _ping(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": True, "pid": os.getpid()}

    async def _poll_now(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        before = self._poller.cycles
        self._poller.poll_now()
        async with asyncio.timeout(self._poller_cycle_budget()):
            while self._poller.cycles == before:
                self._poller.cycle_done.clear()
                await self._poller.cycle_done.wait()
        assert self._poller.last is not None
        return self._poller.last.to_json()

    def _poller_cycle_budget(self) -> float:
        link = self.cfg.pbx.settings
        return link.connect_timeout + 3 * link.action_timeout + 5

    async def _status(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        poller = self._poller
        return {
            "daemon": {
                "running": True,
                "pid": os.getpid(),
                "version": __version__,
                "site_id": self.cfg.site_id,
                "config": str(self.cfg.source),
                "started_at": self.started_at.isoformat(),
                "uptime_seconds": int(time.monotonic() - self._started_mono),
            },
            "pbx": {
                "driver": self.cfg.pbx.driver,
                "address": self.cfg.pbx.settings.address,
                "polls": poller.cycles,
                "last_poll": poller.last.to_json() if poller.last else None,
                "last_good_poll": poller.last_good.to_json() if poller.last_good else None,
            },
            "tasks": self._tasks.states(),
            "counting": self._counting_status(),
            "telemetry": self._telemetry.status(),
            "health": self._health.states(),
            "licence": {
                "enabled": self.cfg.licence.enabled,
                "state": self._licence.state,
                "reason": self._licence.evaluation.reason,
                "last_checked": self._licence.status()["last_checked"],
                "last_error": self._licence.last_error,
                **summary(await self._features({})),
            },
            "problems": await self._health.open_problems(),
            "backup": await self._backup_status(),
        }

    async def _backup_status(self) -> dict[str, Any]:
        """The newest backup and the newest good one, for `status`."""
        rows = await self._store.call(catalog.rows)
        keys = ("id", "status", "finished_at", "error", "files", "size")
        last = rows[-1] if rows else None
        good = next((r for r in reversed(rows) if r["status"] == "ok"), None)
        return {
            "enabled": self.cfg.backup.enabled,
            "last": {k: last[k] for k in keys} if last else None,
            "last_good": {k: good[k] for k in keys} if good else None,
        }
