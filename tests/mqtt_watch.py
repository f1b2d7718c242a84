"""A real MQTT subscriber for tests: it records every message the agent publishes and checks
each one against its JSON Schema in `agent/schemas/` (the topic's base name picks the
schema), so every test that watches the broker also validates what the agent sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema

from tests.mosquitto import Broker

SCHEMAS = Path(__file__).resolve().parents[1] / "agent" / "schemas"
_VALIDATORS: dict[str, Any] = {}


def validator(topic: str) -> Any:
    if topic not in _VALIDATORS:
        schema = json.loads((SCHEMAS / f"{topic}.schema.json").read_text())
        _VALIDATORS[topic] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    return _VALIDATORS[topic]


@dataclass
class Received:
    topic: str  # below {prefix}/{site_id}/, e.g. "event" or "reply/abc"
    message: dict[str, Any]
    retained: bool


def client_for(broker: Broker, identifier: str | None = None, **kwargs: Any) -> aiomqtt.Client:
    context = None
    if broker.tls is not None:
        context = ssl.create_default_context(cafile=str(broker.tls.ca))
        context.load_cert_chain(str(broker.tls.client_cert), str(broker.tls.client_key))
    return aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=identifier, tls_context=context, timeout=10, **kwargs
    )


@dataclass
class Watcher:
    broker: Broker
    base: str = "pbx-agent/v1/test-site"
    identifier: str | None = None  # with an identifier the session survives broker restarts
    received: list[Received] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if exc_type is None:
            assert not self.invalid, f"messages that fail their JSON Schema: {self.invalid[:5]}"

    async def _run(self) -> None:
        """Stays subscribed, reconnecting (same session) while the broker is down."""
        persistent = self.identifier is not None
        while True:
            try:
                async with client_for(
                    self.broker, self.identifier, clean_session=not persistent
                ) as client:
                    await client.subscribe(f"{self.base}/#", qos=1)
                    self._subscribed.set()
                    async for message in client.messages:
                        self._record(str(message.topic), message.payload, message.retain)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _record(self, topic: str, payload: Any, retained: bool) -> None:
        relative = topic.removeprefix(self.base + "/")
        if relative.startswith("cmd/"):
            return  # commands sent by the test itself
        try:
            message = json.loads(payload)
        except (TypeError, ValueError):
            self.invalid.append(f"{relative}: not JSON: {payload!r:.200}")
            return
        errors = [e.message for e in validator(relative.split("/")[0]).iter_errors(message)]
        if errors:
            self.invalid.append(f"{relative}: {errors[:3]} in {message}")
        self.received.append(Received(relative, message, retained))
        self._changed.set()

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [r.message for r in self.received if r.topic == topic]

    async def wait_for(self, predicate: Callable[[Watcher], Any], within: float, what: str) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = predicate(self)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {within} s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
