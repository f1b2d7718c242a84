"""The supervisor of the daemon's long-running tasks: a crash is logged once with its traceback
(secrets masked), reported, and the task started again after a back-off that doubles up to a
cap; a task that lasts ends the streak; a task that returns is restarted too."""

from __future__ import annotations

import asyncio
import io
import json

from agent.supervisor import Supervisor, TaskInfo
from tests.conftest import AGENT_SECRET as SECRET


async def wait_until(condition: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(condition.wait(), 10)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_crashing_task_is_logged_once_reported_and_restarted_with_capped_backoff(
    json_log: io.StringIO,
) -> None:
    failures: list[TaskInfo] = []
    stable: list[str] = []
    runs = 0
    steady, recovered = asyncio.Event(), asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 6:
            raise RuntimeError(f"AMI refused {SECRET}")
        steady.set()
        await asyncio.Event().wait()

    async def on_failure(info: TaskInfo) -> None:
        failures.append(TaskInfo(**vars(info)))

    async def on_stable(info: TaskInfo) -> None:
        stable.append(info.name)
        recovered.set()

    supervisor = Supervisor(
        on_failure=on_failure,
        on_stable=on_stable,
        backoff_initial=0.01,
        backoff_max=0.05,
        stable_after=0.3,
    )
    supervisor.start("poller", flaky)
    await wait_until(steady, "the seventh run")
    assert supervisor.states()["poller"]["state"] == "restarting", "not proven stable yet"
    await wait_until(recovered, "the task to run long enough")
    state = supervisor.states()["poller"]
    assert state["state"] == "running" and state["restarts"] == 6
    assert [f.retry_in for f in failures] == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05]
    assert {f.state for f in failures} == {"restarting"}
    assert failures[0].last_error == "RuntimeError: AMI refused ***", "shown by status: masked"
    assert stable == ["poller"]
    await supervisor.stop(5)
    assert supervisor.states()["poller"]["state"] == "stopped"

    text = json_log.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [line for line in lines if line["event"] == "agent task failed; restarting it"]
    assert len(failed) == 1, "the same error is logged once, not at every retry"
    assert failed[0]["task"] == "poller" and failed[0]["level"] == "error"
    assert "Traceback" in failed[0]["exception"] and "in flaky" in failed[0]["exception"]
    assert [line["task"] for line in lines if line["event"] == "agent task running again"] == [
        "poller"
    ]


async def test_a_task_that_returns_or_fails_differently_is_restarted_and_logged_again(
    json_log: io.StringIO,
) -> None:
    runs = 0
    third = asyncio.Event()

    async def ends() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        if runs >= 3:
            third.set()
            await asyncio.Event().wait()

    supervisor = Supervisor(backoff_initial=0.01, backoff_max=0.01, stable_after=30)
    supervisor.start("publisher", ends)
    await wait_until(third, "the third run")
    state = supervisor.states()["publisher"]
    assert state["state"] == "restarting" and state["restarts"] == 2
    assert state["last_error"].startswith("ValueError: Exceeds the limit")
    assert not supervisor.all_running
    await supervisor.stop(5)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    errors = [
        line["error"] for line in lines if line["event"] == "agent task failed; restarting it"
    ]
    assert errors[0].startswith("TaskEnded: returned") and errors[1].startswith("ValueError")


async def test_a_failing_report_never_stops_supervision() -> None:
    runs = 0
    again = asyncio.Event()

    async def crash() -> None:
        nonlocal runs
        runs += 1
        if runs > 2:
            again.set()
            await asyncio.Event().wait()
        raise KeyError("path")

    async def broken_hook(_info: TaskInfo) -> None:
        raise OSError("database or disk is full")

    supervisor = Supervisor(on_failure=broken_hook, backoff_initial=0.01, stable_after=30)
    supervisor.start("backups", crash)
    await wait_until(again, "restarts despite the failing report")
    await supervisor.stop(5)
    assert runs == 3
