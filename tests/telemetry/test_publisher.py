"""The outbox and publisher against a real Mosquitto, with a real subscriber checking what
arrives (and validating every message against its JSON Schema)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from agent.config.schema import MqttConfig, MqttTlsConfig
from agent.state import StateStore
from agent.telemetry.commands import CommandReceiver
from agent.telemetry.messages import envelope
from agent.telemetry.outbox import Outbox
from agent.telemetry.publisher import Publisher
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher


def mqtt_config(broker: Broker, **changes: Any) -> MqttConfig:
    tls = None
    if broker.tls is not None:
        tls = MqttTlsConfig(
            ca_file=broker.tls.ca, cert_file=broker.tls.client_cert, key_file=broker.tls.client_key
        )
    settings: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "reconnect_initial": 0.1,
        "reconnect_max": 0.5,
        "timeout": 5,
        "tls": tls,
    }
    return MqttConfig(**(settings | changes))


def heartbeat() -> dict[str, Any]:
    return {
        "uptime_seconds": 1,
        "agent_version": "test",
        "outbox_depth": 0,
        "last_poll": None,
        "licence": "unknown",
    }


def event(n: int) -> dict[str, Any]:
    return envelope(
        "event",
        "test-site",
        {"kind": "notice", "check": "test", "severity": "info", "summary": f"event {n}"},
    )


ReceiverFactory = Callable[[StateStore, Outbox], CommandReceiver]


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, cfg: MqttConfig, receiver: ReceiverFactory | None = None
) -> AsyncIterator[tuple[Outbox, Publisher]]:
    """An outbox and a running publisher (with a command receiver when given one)."""
    store = await StateStore.open(tmp_path / "state.db")
    outbox = Outbox(store, max_messages=cfg.outbox.max_messages, max_bytes=cfg.outbox.max_bytes)
    await outbox.open()
    commands = receiver(store, outbox) if receiver else None
    publisher = Publisher(
        cfg,
        "test-site",
        outbox,
        heartbeat=heartbeat,
        on_command=commands.receive if commands else None,
    )
    task = asyncio.create_task(publisher.run())
    try:
        yield outbox, publisher
    finally:
        await publisher.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()
        await store.close()


def in_order_without_gaps(received: list[dict[str, Any]], sent: list[dict[str, Any]]) -> bool:
    """Every sent id arrived, first arrivals in send order; repeats only of a seen id."""
    expected = [m["id"] for m in sent]
    first_seen: list[str] = []
    for message in received:
        if message["id"] not in first_seen:
            first_seen.append(message["id"])
    return first_seen == expected


async def test_online_status_retained_messages_in_order_offline_on_stop(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with Watcher(mosquitto) as watcher:
        async with running(tmp_path, mqtt_config(mosquitto, protocol="5")) as (outbox, _):
            sent = [event(n) for n in range(300)]
            for message in sent:
                await outbox.put("event", message)
            await watcher.wait_for(
                lambda w: len(w.on("event")) >= 300, 30, "300 events at the subscriber"
            )
            assert [m["id"] for m in watcher.on("event")] == [m["id"] for m in sent]
            await watcher.wait_for(lambda w: w.on("heartbeat"), 10, "a heartbeat")
            assert outbox.depth == 0 or await _drained(outbox)
        statuses = [m["state"] for m in watcher.on("status")]
        assert statuses[0] == "online" and statuses[-1] == "offline"
    # The retained status is what a subscriber arriving later sees.
    async with Watcher(mosquitto) as late:
        await late.wait_for(lambda w: w.on("status"), 10, "the retained status")
        assert late.received[0].retained and late.on("status")[0]["state"] == "offline"


async def _drained(outbox: Outbox) -> bool:
    for _ in range(200):
        await outbox.flush()
        if outbox.depth == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_tls_with_client_certificate(mosquitto_tls: Broker, tmp_path: Path) -> None:
    async with (
        Watcher(mosquitto_tls) as watcher,
        running(tmp_path, mqtt_config(mosquitto_tls)) as (outbox, _),
    ):
        message = event(1)
        await outbox.put("event", message)
        await watcher.wait_for(lambda w: w.on("event"), 20, "the event over TLS")
        assert watcher.on("event")[0]["id"] == message["id"]


async def test_tls_without_client_certificate_is_refused_and_nothing_is_lost(
    mosquitto_tls: Broker, tmp_path: Path
) -> None:
    assert mosquitto_tls.tls is not None
    cfg = mqtt_config(mosquitto_tls, tls=MqttTlsConfig(ca_file=mosquitto_tls.tls.ca))
    async with running(tmp_path, cfg) as (outbox, publisher):
        await outbox.put("event", event(1))
        for _ in range(200):
            if publisher.last_error:
                break
            await asyncio.sleep(0.05)
        assert publisher.last_error and not publisher.connected
        assert outbox.depth == 1


async def test_broker_outage_5000_events_all_arrive_in_order(
    mosquitto: Broker, tmp_path: Path
) -> None:
    cfg = mqtt_config(mosquitto)
    async with (
        Watcher(mosquitto, identifier="outage-watcher") as watcher,
        running(tmp_path, cfg) as (outbox, publisher),
    ):
        await asyncio.wait_for(publisher.online.wait(), 10)
        mosquitto.stop()
        sent = [event(n) for n in range(5000)]
        await asyncio.gather(*(outbox.put("event", m) for m in sent))
        assert outbox.depth == 5000
        mosquitto.start()
        await watcher.wait_for(
            lambda w: len({m["id"] for m in w.on("event")}) >= 5000,
            90,
            "all 5,000 events after the outage",
        )
        assert in_order_without_gaps(watcher.on("event"), sent)
        assert await _drained(outbox)
