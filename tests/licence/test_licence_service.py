"""The licence client and state machine against the HTTP test double, with a clock the tests
move: reminders, lapse, renewal, grace without contact, refused tokens, a clock gone back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.health.monitor import HealthMonitor
from agent.licence.service import LicenceService
from agent.licence.state import Evaluation
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from tests.integration.daemon_harness import write_config
from tests.licence_server import LicenceServer, now, sign


@dataclass
class Clock:
    at: datetime = field(default_factory=now)

    def __call__(self) -> datetime:
        return self.at

    def move(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Rig:
    server: LicenceServer
    clock: Clock
    service: LicenceService
    telemetry: Telemetry
    told: list[Evaluation]

    async def events(self, check: str) -> list[dict[str, Any]]:
        return [e for e in await self.telemetry.events(0, 1000) if e["check"] == check]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = LicenceServer().start()
    cfg = load_config(write_config(tmp_path, 5038, extra=server.config()))
    store = await StateStore.open(cfg.state.dir / "state.db")
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    clock = Clock()
    service = LicenceService(store, cfg, telemetry, health, clock=clock)
    told: list[Evaluation] = []

    async def listener(evaluation: Evaluation) -> None:
        told.append(evaluation)

    service.listeners.append(listener)
    await service.open()
    try:
        yield Rig(server, clock, service, telemetry, told)
    finally:
        server.stop()
        await store.close()


async def test_active_reminders_lapse_and_renewal(rig: Rig) -> None:
    assert rig.service.state == "unknown"
    expires = rig.clock.at + timedelta(days=90)
    rig.server.issue(expires_at=expires)
    assert (await rig.service.refresh())["state"] == "active"
    for days_before in (61, 59, 45, 29, 13, 6.5, 6, 0.5):
        rig.clock.at = expires - timedelta(days=days_before)
        await rig.service.refresh()
    assert rig.service.state == "expiring"
    reminders = await rig.events("licence_expiring")
    assert len(reminders) == 5, [e["summary"] for e in reminders]  # 60, 30, 14, 7, 1: once each
    assert all(rig.told[-1].features.values())

    rig.clock.at = expires + timedelta(minutes=1)
    await rig.service.refresh()  # the server answers with the same, now expired, token
    assert rig.service.state == "lapsed"
    assert not any(rig.told[-1].features.values()), "every subscription feature off at once"

    rig.server.issue(expires_at=expires + timedelta(days=365), issued_at=rig.clock.at)
    await rig.service.refresh()
    assert rig.service.state == "active"
    assert all(rig.told[-1].features.values())
    states = [e["summary"] for e in await rig.events("licence")]
    assert [s.split(":")[0] for s in states] == [
        "licence unknown -> active",
        "licence active -> expiring",
        "licence expiring -> lapsed",
        "licence lapsed -> active",
    ]


async def test_server_unreachable_grace_then_lapse(rig: Rig) -> None:
    expires = rig.clock.at + timedelta(days=100)
    rig.server.issue(expires_at=expires)
    await rig.service.refresh()
    rig.server.stop()
    await rig.service.refresh()
    assert rig.service.state == "active" and rig.service.last_error
    rig.clock.at = expires + timedelta(days=1)
    await rig.service.refresh()
    assert rig.service.state == "grace"
    assert all(rig.told[-1].features.values()), "nothing switched off during grace"
    for day in range(2, 29):
        rig.clock.at = expires + timedelta(days=day)
        await rig.service.refresh()
    assert rig.service.state == "grace"
    assert len(await rig.events("licence_grace")) == 28, "one warning a day"
    rig.clock.at = expires + timedelta(days=30, minutes=1)
    await rig.service.refresh()
    assert rig.service.state == "lapsed"


async def test_bad_tokens_are_refused_and_change_nothing(rig: Rig) -> None:
    good_until = rig.clock.at + timedelta(days=200)
    rig.server.issue(expires_at=good_until)
    await rig.service.refresh()
    accepted = rig.service.status()["licence"]
    told = len(rig.told)
    lapsed = {"expires_at": good_until, "status": "lapsed"}
    stranger = Ed25519PrivateKey.generate()
    valid = rig.server.payload(**lapsed)
    tampered_token = sign(valid, rig.server.key)
    head, sig = tampered_token.split(".")
    forged = sign(rig.server.payload(**lapsed), stranger)
    flipped = head[:-2] + ("A" if head[-2] != "A" else "B") + head[-1] + "." + sig
    wrong_site = sign(rig.server.payload(site_id="other-site", **lapsed), rig.server.key)
    old = rig.server.payload(**lapsed)
    old["serial"] = 0  # lower than the one accepted
    replayed = sign(old, rig.server.key)
    unknown_kid = sign(rig.server.payload(kid="other-kid", **lapsed), rig.server.key)
    no_entitlements = sign(rig.server.payload(entitlements={}, **lapsed), rig.server.key)
    for token in (forged, flipped, wrong_site, replayed, unknown_kid, no_entitlements):
        rig.server.serve_token(token)
        await rig.service.refresh()
    for body in (b"garbage", b"[1, 2]", b'{"token": 42}', b'{"token": "a.b.c"}', b"{" * 100_000):
        rig.server.body = body
        await rig.service.refresh()
    rig.server.status, rig.server.body = 500, b"oops"
    await rig.service.refresh()
    assert rig.service.state == "active"
    assert rig.service.status()["licence"] == accepted
    assert len(rig.told) == told, "no enforcement was asked"
    refused = await rig.events("licence_token")
    assert len(refused) == 11
    reasons = " | ".join(e["summary"] for e in refused)
    for reason in ("bad signature", "other-site", "lower than", "not pinned", "entitlements"):
        assert reason in reasons


async def test_a_clock_gone_back_re_enables_nothing(rig: Rig) -> None:
    issued = rig.clock.at
    rig.server.issue(expires_at=issued + timedelta(days=10), issued_at=issued)
    rig.clock.move(days=11)
    await rig.service.refresh()
    assert rig.service.state == "lapsed"
    rig.server.stop()
    rig.clock.at = issued - timedelta(days=1)  # behind the newest issued_at seen
    await rig.service.refresh()
    assert rig.service.state == "lapsed"
    assert not any(rig.told[-1].features.values())
    assert await rig.events("clock_behind")


async def test_a_token_issued_beyond_the_clock_skew_is_refused(rig: Rig) -> None:
    expires = rig.clock.at + timedelta(days=90)
    rig.server.issue(expires_at=expires, issued_at=rig.clock.at + timedelta(days=365 * 70))
    await rig.service.refresh()
    assert rig.service.state == "unknown" and "in the future" in str(rig.service.last_error)
    rig.server.issue(expires_at=expires, issued_at=rig.clock.at + timedelta(minutes=6))
    await rig.service.refresh()
    assert rig.service.state == "unknown", "6 minutes ahead: not issued yet"
    assert not await rig.events("clock_behind"), "a refused token pins nothing"
    rig.server.issue(expires_at=expires, issued_at=rig.clock.at + timedelta(minutes=4))
    await rig.service.refresh()
    assert rig.service.state == "active", "4 minutes ahead: clocks differ that much"
