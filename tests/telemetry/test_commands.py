"""Inbound commands over a real Mosquitto: a signed, fresh, unseen command runs once and its
reply arrives on reply/{id}; unsigned, wrongly signed, expired, replayed, misaddressed and
malformed ones (non-JSON, 1 MB) are refused and none runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.state import StateStore
from agent.telemetry.commands import CommandReceiver
from agent.telemetry.messages import envelope
from agent.telemetry.outbox import Outbox
from agent.usage.keys import public_b64
from tests.licence_server import b64url
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher, client_for
from tests.telemetry.test_publisher import mqtt_config, running

BASE = "pbx-agent/v1/test-site"


def signed(
    key: Ed25519PrivateKey, command: str, *, key_id: str = "central", **changes: Any
) -> bytes:
    body = {
        "id": uuid.uuid4().hex,
        "command": command,
        "site_id": "test-site",
        "issued_at": datetime.now(UTC).isoformat(),
        "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        "nonce": uuid.uuid4().hex,
        "args": {},
    } | changes
    payload = json.dumps(body).encode()
    return json.dumps(
        {"key_id": key_id, "payload": b64url(payload), "signature": b64url(key.sign(payload))}
    ).encode()


async def test_only_valid_commands_run_and_get_a_reply(mosquitto: Broker, tmp_path: Path) -> None:
    central, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ran: list[str] = []

    async def count_now(args: Mapping[str, Any]) -> dict[str, Any]:
        ran.append("count-now")
        return {"billable": 11}

    receivers: list[CommandReceiver] = []

    def make_receiver(store: StateStore, outbox: Outbox) -> CommandReceiver:
        async def reply(command_id: str, body: dict[str, Any]) -> None:
            await outbox.put(f"reply/{command_id}", envelope("reply", "test-site", body))

        keys = {"central": public_b64(central)}
        receivers.append(CommandReceiver(store, "test-site", keys, {"count-now": count_now}, reply))
        return receivers[0]

    cfg = mqtt_config(mosquitto, command_keys={"central": public_b64(central)})
    async with running(tmp_path, cfg, make_receiver):
        receiver = receivers[0]
        async with Watcher(mosquitto) as watcher, client_for(mosquitto) as central_client:
            await watcher.wait_for(lambda w: w.on("status"), 10, "the agent online")
            good = signed(central, "count-now")
            replay = good
            bad = [
                json.dumps({"payload": b64url(b'{"command":"count-now"}')}).encode(),  # unsigned
                signed(stranger, "count-now"),  # signed by a key not listed
                signed(stranger, "count-now", key_id="central"),  # wrong signature
                signed(
                    central,
                    "count-now",
                    expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
                ),
                signed(central, "count-now", site_id="other-site"),
                signed(central, "backup-now"),  # payload names another command than the topic
                signed(central, "count-now", nonce="x"),  # too short a nonce
                signed(central, "count-now", expires_at="tomorrow"),
                b"not json at all",
                b"\xff\xfe\x00garbage",
                b"{" + b" " * (1024 * 1024) + b"}",  # 1 MB
                b"[]",
            ]
            await central_client.publish(f"{BASE}/cmd/count-now", good, qos=1)
            await watcher.wait_for(
                lambda w: [r for r in w.received if r.topic.startswith("reply/")],
                20,
                "the reply",
            )
            for payload in [*bad, replay]:
                await central_client.publish(f"{BASE}/cmd/count-now", payload, qos=1)
            await central_client.publish(f"{BASE}/cmd/backup-now", bad[5], qos=1)
            # An unknown command topic with a valid signature for it:
            await central_client.publish(
                f"{BASE}/cmd/format-disk", signed(central, "format-disk"), qos=1
            )
            for _ in range(200):
                if receiver.rejected >= len(bad) + 3:
                    break
                await asyncio.sleep(0.05)
        assert receiver.rejected == len(bad) + 3
        assert ran == ["count-now"], "only the valid command ran, once"
        replies = [r for r in watcher.received if r.topic.startswith("reply/")]
        assert len(replies) == 1
        body = replies[0].message
        assert body["ok"] is True and body["result"] == {"billable": 11}
        assert replies[0].topic == f"reply/{body['command_id']}"
