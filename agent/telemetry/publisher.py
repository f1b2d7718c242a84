"""The MQTT side of telemetry, on aiomqtt: connect (TLS, login), announce `status` online
(retained; the retained offline message is the Last Will), drain the outbox in order with a
bounded number of QoS 1 messages awaiting PUBACK, send heartbeats, and hand inbound
commands to a callback. aiomqtt does not reconnect by itself: `run()` does, with capped
exponential back-off and jitter.

An outbox row is acknowledged (deleted) only after the broker's PUBACK. A connection lost
mid-flight restarts the drain from the oldest row still stored, so a message may arrive
twice, always with the same `id`. An unexpected error ends `run()` after `status` offline
was published (a clean disconnect suppresses the Last Will).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import structlog

from agent import __version__
from agent.config.schema import MqttConfig
from agent.telemetry.messages import encode, envelope
from agent.telemetry.outbox import Outbox, Queued

log = structlog.get_logger(__name__)

BATCH = 500  # rows read from the outbox at a time

CommandCallback = Callable[[str, bytes], Awaitable[None]]
# What a lost or refused connection raises; anything else is a bug, and ends `run()` (the
# daemon's supervisor logs it and starts the publisher again).
LINK_ERRORS = (aiomqtt.MqttError, OSError, ssl.SSLError)


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    if cfg.tls is None:
        return None
    context = ssl.create_default_context(cafile=str(cfg.tls.ca_file))
    if cfg.tls.cert_file is not None and cfg.tls.key_file is not None:
        context.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    return context


class Publisher:
    def __init__(
        self,
        cfg: MqttConfig,
        site_id: str,
        outbox: Outbox,
        *,
        heartbeat: Callable[[], dict[str, Any]],
        on_command: CommandCallback | None = None,
    ) -> None:
        self._cfg = cfg
        self._site_id = site_id
        self._outbox = outbox
        self._heartbeat_body = heartbeat
        self._on_command = on_command
        self.base = f"{cfg.prefix}/{site_id}"
        self.connected = False
        self.online = asyncio.Event()  # set while connected
        self.last_error: str | None = None
        self._client: aiomqtt.Client | None = None
        self._publish_error: Exception | None = None

    # -- connection loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting with back-off."""
        delay = self._cfg.reconnect_initial
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except LINK_ERRORS as exc:
                if self.connected or self.last_error is None:
                    log.warning(
                        "MQTT connection lost" if self.connected else "MQTT connect failed",
                        broker=self._where(),
                        error=str(exc),
                    )
                self.last_error = str(exc)
            finally:
                self.connected = False
                self.online.clear()
                self._client = None
            if time.monotonic() - started > self._cfg.reconnect_max:
                delay = self._cfg.reconnect_initial  # the last session lasted: start over
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._cfg.reconnect_max)

    async def stop(self) -> None:
        """Say offline (retained) and disconnect, when connected; never raises."""
        client = self._client
        if client is None or not self.connected:
            return
        await self._say_offline(client)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await client.publish(
                f"{self.base}/status", self._status("offline"), qos=1, retain=True, timeout=2
            )

    def _where(self) -> str:
        return f"{self._cfg.host}:{self._cfg.effective_port}"

    def _status(self, state: str) -> bytes:
        return encode(
            envelope("status", self._site_id, {"state": state, "agent_version": __version__})
        )

    def _make_client(self) -> aiomqtt.Client:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        client = aiomqtt.Client(
            cfg.host,
            cfg.effective_port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=cfg.client_id or f"pbx-agent-{self._site_id}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            will=aiomqtt.Will(f"{self.base}/status", self._status("offline"), qos=1, retain=True),
            timeout=cfg.timeout,
            keepalive=cfg.keepalive,
            tls_context=tls_context(cfg),
            max_inflight_messages=cfg.outbox.in_flight,
        )
        client.pending_calls_threshold = cfg.outbox.in_flight + 10  # ours is the bound
        return client

    async def _session(self) -> None:
        self._publish_error = None
        async with asyncio.timeout(self._cfg.timeout * 2):
            client = self._make_client()
            await client.__aenter__()
        try:
            self._client = client
            await client.publish(f"{self.base}/status", self._status("online"), qos=1, retain=True)
            if self._on_command is not None:
                await client.subscribe(f"{self.base}/cmd/+", qos=1)
            self.connected = True
            self.online.set()
            self.last_error = None
            log.info("MQTT connected", broker=self._where(), protocol=self._cfg.protocol)
            await _until_first_fails(
                self._pump(client), self._heartbeats(client), self._receive(client)
            )
        except Exception as exc:
            if self.connected and not isinstance(exc, LINK_ERRORS):
                # Broken by a bug, not by the link: the clean DISCONNECT below makes the broker
                # drop the Last Will, so say offline ourselves first.
                await self._say_offline(client)
            raise
        finally:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await asyncio.wait_for(client.__aexit__(None, None, None), 2)

    # -- sending ---------------------------------------------------------------------------

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Publish stored messages in seq order, at most `in_flight` awaiting PUBACK."""
        await self._outbox.flush()  # acks of the previous session are deleted first
        window = asyncio.Semaphore(self._cfg.outbox.in_flight)
        running: set[asyncio.Task[None]] = set()
        cursor = 0
        try:
            while True:
                self._outbox.changed.clear()
                items = await self._outbox.batch(cursor, BATCH)
                if not items:
                    await self._outbox.changed.wait()
                    continue
                for item in items:
                    await window.acquire()
                    if self._publish_error is not None:
                        raise self._publish_error
                    task = asyncio.create_task(self._publish(client, item, window))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    cursor = item.seq
        finally:
            for task in running:
                task.cancel()

    async def _publish(
        self, client: aiomqtt.Client, item: Queued, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(f"{self.base}/{item.topic}", item.body, qos=item.qos)
        except aiomqtt.MqttError as exc:
            self._publish_error = exc
        else:
            self._outbox.ack(item)
        finally:
            window.release()

    async def _heartbeats(self, client: aiomqtt.Client) -> None:
        while True:
            message = envelope("heartbeat", self._site_id, self._heartbeat_body())
            await client.publish(f"{self.base}/heartbeat", encode(message), qos=0)
            await asyncio.sleep(self._cfg.heartbeat_interval)

    # -- receiving -------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Hand each inbound command to the callback; ends (raising) when the link drops."""
        async for message in client.messages:
            if self._on_command is None:
                continue
            payload = message.payload
            raw = payload if isinstance(payload, bytes) else str(payload or "").encode()
            await self._on_command(str(message.topic), raw)


async def _until_first_fails(*coroutines: Awaitable[None]) -> None:
    """Run the coroutines together; when one ends (normally or not), cancel the others and
    re-raise its error."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
