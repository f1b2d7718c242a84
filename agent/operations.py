"""The daemon's long operations (a backup, a verify, a restore) as tasks of their own, numbered
and kept for a while after they end. Whoever asked for one may stop following it (Ctrl-C in
the CLI, a dropped connection): the operation goes on, and `pbx-agent follow ID` picks it up
again, with its progress and, once it ended, its result."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.progress import Progress

KEPT = 20  # finished operations remembered


@dataclass
class Operation:
    id: int
    command: str
    started_at: datetime
    progress: Progress
    task: asyncio.Task[dict[str, Any]]
    finished_at: datetime | None = field(default=None)

    @property
    def reply(self) -> dict[str, Any] | None:
        """The final reply (`{"ok": ..., ...}`) once it ended."""
        return self.task.result() if self.task.done() and not self.task.cancelled() else None

    def to_json(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "id": self.id,
            "command": self.command,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "state": "running" if reply is None else ("ok" if reply["ok"] else "failed"),
            "error": None if reply is None or reply["ok"] else reply.get("error"),
            "progress": self.progress.snapshot(),
        }


class Operations:
    """Starts operations and remembers the running ones and the last `KEPT` finished."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._ops: dict[int, Operation] = {}

    def start(
        self, command: str, run: Callable[[Progress], Awaitable[dict[str, Any]]]
    ) -> Operation:
        """`run(progress)` as a task of its own, returning the final reply (it never raises:
        the control server turns errors into replies)."""
        progress = Progress()
        task = asyncio.ensure_future(run(progress))
        op = Operation(next(self._ids), command, datetime.now(UTC), progress, task)

        def ended(_task: asyncio.Task[dict[str, Any]]) -> None:
            op.finished_at = datetime.now(UTC)
            self._forget_old()

        task.add_done_callback(ended)
        self._ops[op.id] = op
        return op

    def get(self, op_id: int) -> Operation | None:
        return self._ops.get(op_id)

    def all(self) -> list[Operation]:
        return list(self._ops.values())

    async def cancel_all(self) -> None:
        """At shutdown: the running ones are cancelled (the daemon stops)."""
        running = [op.task for op in self._ops.values() if not op.task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def _forget_old(self) -> None:
        done = [op for op in self._ops.values() if op.task.done()]
        for op in done[: max(0, len(done) - KEPT)]:
            del self._ops[op.id]
