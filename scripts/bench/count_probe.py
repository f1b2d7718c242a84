"""One measured run of the counting benchmark, in a fresh process (scripts/bench/count.py
starts it): prints one JSON line.

  count_probe.py agent PORT SECRET [--record PLAN]   the agent's count, in process: the
      Asterisk driver's inventory and the seat rules as the daemon runs them; with --record,
      the AMI actions it sent and when (after how many answers) go to PLAN
  count_probe.py floor PORT SECRET PLAN              the floor: a minimal client sending the
      actions of PLAN with the same concurrency and reading each answer to its end
  count_probe.py freeswitch PORT PASSWORD            the FreeSWITCH driver's count

Times include the connection and login; RSS is the process's peak (`ru_maxrss`), and
`baseline_rss_mb` the peak before counting (interpreter and imports), so
`peak_rss_mb - baseline_rss_mb` is what the count itself needed.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.config.schema import CountingConfig  # noqa: E402
from agent.counting.rules import History  # noqa: E402
from agent.counting.tenants import count_inventory  # noqa: E402
from drivers.asterisk import ami_stream  # noqa: E402
from drivers.asterisk.driver import AsteriskDriver  # noqa: E402
from drivers.asterisk.settings import AmiSettings  # noqa: E402
from drivers.base import Driver  # noqa: E402
from drivers.freeswitch.driver import FreeswitchDriver  # noqa: E402
from drivers.freeswitch.settings import EslSettings  # noqa: E402
from drivers.gc_pause import paused_gc  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recorder:
    """Notes each action the protocol sends (headers without ActionID) and how many answers
    had come back by then: the floor sends each after as many answers of its own."""

    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []
        self.answered = 0
        self._send = ami_stream.StreamProtocol.request

    def install(self) -> None:
        recorder = self

        def request(protocol: Any, headers: dict[str, str], reader: Any, timeout: float) -> Any:
            recorder.actions.append({"headers": dict(headers), "after": recorder.answered})
            future = recorder._send(protocol, headers, reader, timeout)
            future.add_done_callback(recorder._answered)
            return future

        ami_stream.StreamProtocol.request = request  # type: ignore[method-assign]

    def remove(self) -> None:
        ami_stream.StreamProtocol.request = self._send  # type: ignore[method-assign]

    def _answered(self, _: Any) -> None:
        self.answered += 1


async def count_with(driver: Driver, before: Any = None) -> dict[str, Any]:
    baseline = rss_mb()
    started = time.perf_counter()
    await driver.connect()
    if before is not None:
        before()
    with paused_gc(file_as_old=True):  # as CountingService.count_now does
        inventory = await driver.inventory()
        now = datetime.now(UTC)
        report = count_inventory(
            inventory, CountingConfig(), History(now, {}), site_id="bench", now=now
        )
    elapsed = time.perf_counter() - started
    await driver.close()
    return {
        "seconds": elapsed,
        "peak_rss_mb": rss_mb(),
        "baseline_rss_mb": baseline,
        "billable": report.billable,
        "tenants": len(report.tenants),
        "warnings": len(report.warnings),
        "endpoints": len(inventory.endpoints),
    }


async def agent(port: int, secret: str, recorder: Recorder | None) -> dict[str, Any]:
    # the simulator builds a big answer whole before sending it (Asterisk streams it): a
    # generous timeout, so a slow simulator is not taken for a stalled PBX
    settings = AmiSettings(
        "127.0.0.1", port, "agent", secret, connect_timeout=30, action_timeout=120
    )
    result = await count_with(AsteriskDriver(settings), recorder.install if recorder else None)
    if recorder is not None:
        recorder.remove()
        recorder.actions = [a for a in recorder.actions if a["headers"]["Action"] != "Logoff"]
        result["actions"] = len(recorder.actions)
    return result


async def freeswitch(port: int, password: str) -> dict[str, Any]:
    settings = EslSettings("127.0.0.1", port, password, connect_timeout=30, action_timeout=60)
    return await count_with(FreeswitchDriver(settings))


# -- the floor ------------------------------------------------------------------------------

END = b"\r\n\r\n"


class RawAnswers:
    """Reads answers to their end and nothing more, keeping no more than a message's first
    bytes: a response ends at its empty line; a list (``EventList: start``) at the empty line
    after ``EventList: Complete``."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self.bytes = 0

    async def _past(self, needle: bytes, keep: int = 0) -> bytes:
        """Consume up to and including `needle`; the first `keep` bytes consumed."""
        head = bytearray()
        while True:
            found = self._buffer.find(needle)
            end = found + len(needle) if found >= 0 else len(self._buffer) - len(needle) + 1
            end = max(0, end)
            if len(head) < keep:
                head += self._buffer[: min(end, keep - len(head))]
            del self._buffer[:end]
            if found >= 0:
                return bytes(head)
            chunk = await self._reader.read(1 << 18)
            if not chunk:
                raise ConnectionError("the PBX closed the connection")
            self.bytes += len(chunk)
            self._buffer += chunk

    async def answer(self, action_id: str) -> None:
        mine = f"ActionID: {action_id}\r\n".encode()
        while True:  # skip unsolicited events (FullyBooted after the login)
            head = await self._past(END, keep=4096)
            if mine in head:
                break
        if b"EventList: start" in head:
            await self._past(b"EventList: Complete")
            await self._past(END)


def encode(headers: dict[str, str], action_id: str) -> bytes:
    lines = [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join([*lines, f"ActionID: {action_id}"]) + "\r\n\r\n").encode()


async def floor(port: int, secret: str, plan: list[dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # Asterisk Call Manager/...
    answers = RawAnswers(reader)
    writer.write(encode({"Action": "Login", "Username": "agent", "Secret": secret}, "login"))
    await answers.answer("login")
    sent = 0

    def send_ready(answered: int) -> None:
        nonlocal sent
        while sent < len(plan) and plan[sent]["after"] <= answered:
            writer.write(encode(plan[sent]["headers"], f"f{sent}"))
            sent += 1

    send_ready(0)
    for index in range(len(plan)):
        await answers.answer(f"f{index}")
        send_ready(index + 1)
    elapsed = time.perf_counter() - started
    writer.write(encode({"Action": "Logoff"}, "bye"))
    writer.close()
    return {
        "seconds": elapsed,
        "peak_rss_mb": rss_mb(),
        "actions": len(plan),
        "bytes": answers.bytes,
    }


def main() -> None:
    mode, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "agent":
        record = Path(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--record" else None
        recorder = Recorder() if record else None
        result = asyncio.run(agent(port, secret, recorder))
        if record is not None and recorder is not None:
            record.write_text(json.dumps(recorder.actions))
    elif mode == "floor":
        result = asyncio.run(floor(port, secret, json.loads(Path(sys.argv[4]).read_text())))
    elif mode == "freeswitch":
        result = asyncio.run(freeswitch(port, secret))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
