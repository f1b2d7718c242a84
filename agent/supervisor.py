"""Supervision of the daemon's long-running tasks (poller, counting, backups, publisher,
licence, health, watchdog): the one catch-all of the daemon.

A task that raises, or that returns although it should run forever, is logged with its
traceback (once per streak of the same error, not at every retry), reported through
`on_failure` (the daemon raises the `agent_task_failed` health problem), and started again
after a back-off that doubles up to a cap. Once a run has lasted `stable_after` seconds the
streak is over: `on_stable` is told (the daemon resolves the problem) and the back-off starts
again from the beginning. `states()` says, for each task, whether it is `running`,
`restarting` (failed and not yet stable again) or `stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.logs import scrub

log = structlog.get_logger(__name__)

HOOK_TIMEOUT = 10.0

Hook = Callable[["TaskInfo"], Awaitable[None]]


class TaskEnded(Exception):
    """A long-running task returned: it should have run until cancelled."""


@dataclass
class TaskInfo:
    """One supervised task, as `status` shows it."""

    name: str
    state: str = "running"  # running | restarting | stopped
    since: datetime | None = None  # when it entered this state
    restarts: int = 0  # since the daemon started
    streak: int = 0  # failures since it last ran `stable_after` seconds
    last_error: str | None = None
    retry_in: float | None = None  # seconds until the next start, while restarting

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since.isoformat() if self.since else None,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "retry_in": self.retry_in,
        }


class Supervisor:
    def __init__(
        self,
        *,
        on_failure: Hook | None = None,
        on_stable: Hook | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        stable_after: float = 60.0,
    ) -> None:
        self._on_failure = on_failure
        self._on_stable = on_stable
        self._initial = backoff_initial
        self._max = backoff_max
        self._stable_after = stable_after
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.tasks: dict[str, TaskInfo] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` under supervision as task `name` until `stop()`."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        info = self.tasks[name] = TaskInfo(name)
        self._tasks[name] = asyncio.create_task(self._supervise(info, run), name=name)

    def states(self) -> dict[str, dict[str, Any]]:
        return {name: info.to_json() for name, info in self.tasks.items()}

    @property
    def all_running(self) -> bool:
        return all(info.state == "running" for info in self.tasks.values())

    async def stop(self, within: float) -> None:
        """Cancel every task and wait (at most `within` seconds) for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=within)
        for info in self.tasks.values():
            info.state, info.since, info.retry_in = "stopped", _now(), None

    def delay(self, streak: int) -> float:
        """The back-off before restart number `streak` of a streak (1, 2, ...)."""
        return min(self._initial * 2.0 ** min(streak - 1, 30), self._max)

    async def _supervise(self, info: TaskInfo, run: Callable[[], Awaitable[None]]) -> None:
        logged: str | None = None  # the error last logged with its traceback, in this streak
        while True:
            info.state = "running" if info.streak == 0 else "restarting"
            info.since, info.retry_in = _now(), None
            started = time.monotonic()
            error = await self._run_once(info, run)
            if time.monotonic() - started >= self._stable_after:
                logged = None  # it ran long enough: this failure starts a new streak
            info.streak += 1
            info.restarts += 1
            info.last_error = _one_line(error)
            info.state, info.since = "restarting", _now()
            info.retry_in = self.delay(info.streak)
            if info.last_error != logged:
                logged = info.last_error
                log.error(
                    "agent task failed; restarting it",
                    task=info.name,
                    error=info.last_error,
                    retry_in=info.retry_in,
                    exc_info=error,
                )
            else:
                log.debug("agent task failed again", task=info.name, failures=info.streak)
            await self._hook(self._on_failure, info)
            await asyncio.sleep(info.retry_in)

    async def _run_once(self, info: TaskInfo, run: Callable[[], Awaitable[None]]) -> BaseException:
        """Run the task once; the error that ended it. After `stable_after` seconds of running,
        its failure streak is over (`on_stable`)."""
        child = asyncio.ensure_future(run())
        try:
            done, _ = await asyncio.wait({child}, timeout=self._stable_after)
            if not done:
                if info.streak:
                    log.info("agent task running again", task=info.name, failures=info.streak)
                    info.streak = 0
                info.state, info.since = "running", _now()
                await self._hook(self._on_stable, info)
                await asyncio.wait({child})
        finally:
            if not child.done():
                child.cancel()
                with contextlib.suppress(BaseException):
                    await child
        if child.cancelled():
            return TaskEnded("cancelled from inside")
        return child.exception() or TaskEnded("returned; it should run until the daemon stops")

    async def _hook(self, hook: Hook | None, info: TaskInfo) -> None:
        if hook is None:
            return
        try:
            async with asyncio.timeout(HOOK_TIMEOUT):
                await hook(info)
        except Exception as exc:  # a failing report never stops supervision
            log.warning("reporting an agent task's state failed", task=info.name, error=str(exc))


def _one_line(error: BaseException) -> str:
    """The error's type and first line, secrets masked (it is shown by `status`)."""
    text = str(error).strip().splitlines()
    return scrub(f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__)


def _now() -> datetime:
    return datetime.now(UTC)
