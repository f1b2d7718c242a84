#!/usr/bin/env python3
"""Telemetry benchmark against a local Mosquitto (started here on a free port), in one run:

(a) raw aiomqtt QoS 1 publishing with the agent's in-flight bound;
(b) the agent's outbox pipeline: persist (SQLite, synchronous=FULL), publish, PUBACK, delete,
    with messages produced while it drains;
(c) a backlog of 100,000 queued events drained from the outbox.

Target: (b) >= 0.6 of (a) in messages per second, and (c) under 60 s. The last line is one
JSON object: {"rate_ratio_vs_raw", "agent_msgs_per_s", "raw_msgs_per_s", "drain_100k_seconds"}.

    .venv/bin/python scripts/bench/telemetry.py [--messages 20000] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiomqtt

from agent.config.schema import MqttConfig
from agent.state import StateStore
from agent.telemetry.messages import encode, envelope
from agent.telemetry.outbox import Outbox
from agent.telemetry.publisher import Publisher
from tests import mosquitto

IN_FLIGHT = MqttConfig().outbox.in_flight


def event(n: int) -> dict[str, Any]:
    return envelope(
        "event",
        "bench-site",
        {
            "kind": "problem",
            "check": "trunk",
            "subject": f"trunk-{n % 7}",
            "severity": "warning",
            "summary": f"trunk trunk-{n % 7} is not registered (Rejected at sip:10.0.0.1:5060)",
        },
    )


async def raw_rate(port: int, count: int) -> float:
    bodies = [encode(event(n)) for n in range(count)]
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-raw", max_inflight_messages=IN_FLIGHT, timeout=30
    ) as client:
        client.pending_calls_threshold = IN_FLIGHT + 10
        window = asyncio.Semaphore(IN_FLIGHT)
        tasks = []

        async def one(body: bytes) -> None:
            try:
                await client.publish("bench/raw/event", body, qos=1)
            finally:
                window.release()

        started = time.perf_counter()
        for body in bodies:
            await window.acquire()
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        return count / (time.perf_counter() - started)


def heartbeat() -> dict[str, Any]:
    return {"uptime_seconds": 0, "agent_version": "bench", "outbox_depth": 0}


async def until_empty(outbox: Outbox) -> None:
    while True:
        await outbox.flush()
        if outbox.depth == 0:
            return
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def pipeline(port: int, state: Path, identifier: str) -> Any:
    cfg = MqttConfig(enabled=True, host="127.0.0.1", port=port, client_id=identifier, timeout=30)
    store = await StateStore.open(state)
    outbox = Outbox(store, max_messages=1_000_000, max_bytes=1 << 31)
    await outbox.open()
    publisher = Publisher(cfg, "bench-site", outbox, heartbeat=heartbeat)
    try:
        yield outbox, publisher
    finally:
        await outbox.close()
        await store.close()


async def agent_rate(port: int, state: Path, count: int) -> float:
    messages = [event(n) for n in range(count)]
    async with pipeline(port, state, "bench-agent") as (outbox, publisher):
        task = asyncio.create_task(publisher.run())
        await asyncio.wait_for(publisher.online.wait(), 30)
        started = time.perf_counter()
        await asyncio.gather(*(outbox.put("event", m, severity="warning") for m in messages))
        await until_empty(outbox)
        elapsed = time.perf_counter() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return count / elapsed


async def drain_seconds(port: int, state: Path, count: int) -> float:
    async with pipeline(port, state, "bench-drain") as (outbox, publisher):
        for start in range(0, count, 10_000):
            batch = [event(n) for n in range(start, min(count, start + 10_000))]
            await asyncio.gather(*(outbox.put("event", m, severity="warning") for m in batch))
        assert outbox.depth == count, outbox.depth
        started = time.perf_counter()
        task = asyncio.create_task(publisher.run())
        await until_empty(outbox)
        elapsed = time.perf_counter() - started
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
        broker = mosquitto.start(Path(tmp) / "broker")
        try:
            raw = await raw_rate(broker.port, args.messages)
            print(f"(a) raw aiomqtt QoS 1, {IN_FLIGHT} in flight: {raw:,.0f} msg/s")
            agent = await agent_rate(broker.port, Path(tmp) / "rate.db", args.messages)
            print(f"(b) agent outbox pipeline: {agent:,.0f} msg/s ({agent / raw:.2f} of raw)")
            drain = await drain_seconds(broker.port, Path(tmp) / "drain.db", args.backlog)
            print(f"(c) backlog of {args.backlog:,} drained in {drain:.1f} s")
        finally:
            broker.stop()
    print(
        json.dumps(
            {
                "rate_ratio_vs_raw": round(agent / raw, 3),
                "agent_msgs_per_s": round(agent),
                "raw_msgs_per_s": round(raw),
                "drain_100k_seconds": round(drain, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
