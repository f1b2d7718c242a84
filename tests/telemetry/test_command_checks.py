"""The command receiver's time checks, with the clock injected: `issued_at` may be ahead of
this host's clock by the allowed skew and no more (defect 9 of issue 14), and after a state
store recovery a command issued before it is refused (its nonce may have been lost)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.state import StateStore
from agent.state.recover import RECOVERED_AT
from agent.telemetry.commands import CommandReceiver
from agent.usage.keys import public_b64
from tests.telemetry.test_commands import signed


@dataclass
class FixedClock:
    at: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at


async def test_issued_at_within_the_skew_only(tmp_path: Path) -> None:
    central = Ed25519PrivateKey.generate()
    clock = FixedClock()
    ran: list[str] = []
    replies: list[dict[str, Any]] = []

    async def count_now(_args: Mapping[str, Any]) -> dict[str, Any]:
        ran.append("count-now")
        return {}

    async def reply(_id: str, body: dict[str, Any]) -> None:
        replies.append(body)

    store = await StateStore.open(tmp_path / "state.db")
    try:
        receiver = CommandReceiver(
            store,
            "test-site",
            {"central": public_b64(central)},
            {"count-now": count_now},
            reply,
            clock=clock,
        )

        def command(issued: datetime) -> bytes:
            return signed(
                central,
                "count-now",
                issued_at=issued.isoformat(),
                expires_at=(clock.at + timedelta(minutes=10)).isoformat(),
            )

        topic = "pbx-agent/v1/test-site/cmd/count-now"
        await receiver.receive(topic, command(clock.at + timedelta(minutes=6)))
        assert ran == [] and receiver.rejected == 1, "6 minutes ahead: not issued yet"
        await receiver.receive(topic, command(clock.at + timedelta(minutes=4)))
        assert ran == ["count-now"], "4 minutes ahead: clocks differ that much"

        await store.set_meta(RECOVERED_AT, clock.at.isoformat())
        await receiver.receive(topic, command(clock.at - timedelta(seconds=1)))
        assert ran == ["count-now"] and receiver.rejected == 2, "issued before the recovery"
        await receiver.receive(topic, command(clock.at + timedelta(seconds=1)))
        assert ran == ["count-now"] * 2 and len(replies) == 2
    finally:
        await store.close()
