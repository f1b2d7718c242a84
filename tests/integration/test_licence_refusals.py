"""Issue 14, defects 3 and 9, against the real parts: a malformed licence answer (huge integers,
deep nesting) never stops the licence checks and `licence refresh` says why in one line; a
signed token or command whose `issued_at` is far in the future is refused and pins nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.health.monitor import HealthMonitor
from agent.licence.service import LicenceService
from agent.state import StateStore
from agent.telemetry.service import Telemetry
from drivers.asterisk.simulator import Simulator
from tests.hostile_inputs import DEEP, HUGE, answer, token_raw
from tests.integration.daemon_harness import (
    cli,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.integration.test_telemetry_daemon import BASE, mqtt_section
from tests.licence_server import LicenceServer, now
from tests.mosquitto import Broker
from tests.mqtt_watch import Watcher, client_for
from tests.telemetry.test_commands import signed

FUTURE = "2099-01-01T00:00:00+00:00"


def hostile_answers(server: LicenceServer) -> list[bytes]:
    """The kinds of answer that ended the licence checks for good: huge integers and deep
    nesting, in the answer and in a correctly signed token payload."""
    payload = json.dumps(server.payload(expires_at=now() + timedelta(days=90))).encode()
    return [
        b'{"token": ' + HUGE + b"}",
        b'{"token": ' + DEEP + b"}",
        answer(token_raw(server.key, payload[:-1] + b', "x": ' + HUGE + b"}")),
        answer(token_raw(server.key, DEEP)),
    ]


async def test_malformed_answers_never_stop_the_scheduled_checks(tmp_path: Path) -> None:
    server = LicenceServer().start()
    cfg = load_config(write_config(tmp_path, 5038, extra=server.config()))
    fast = cfg.licence.model_copy(update={"interval": 0.05})  # the schedule, shortened
    cfg = cfg.model_copy(update={"licence": fast})
    store = await StateStore.open(cfg.state.dir / "state.db")
    telemetry = Telemetry(store, cfg)
    health = HealthMonitor(store, cfg, telemetry)
    await health.open()
    service = LicenceService(store, cfg, telemetry, health)
    await service.open()
    bodies: Iterator[bytes] = iter(hostile_answers(server) * 3)
    valid = answer(
        token_raw(
            server.key, json.dumps(server.payload(expires_at=now() + timedelta(days=90))).encode()
        )
    )
    server.on_request = lambda: next(bodies, valid)
    checks = asyncio.create_task(service.run())
    try:
        for _ in range(400):
            if service.licence is not None or checks.done():
                break
            await asyncio.sleep(0.05)
        assert not checks.done(), "the scheduled checks stopped"
        assert service.state == "active", service.last_error
        assert server.requests >= 13, "every hostile answer was one scheduled check"
        refused = [e for e in await telemetry.events(0, 100) if e["check"] == "licence_token"]
        assert len(refused) == 12
        assert all("\n" not in e["summary"] for e in refused)
    finally:
        checks.cancel()
        await asyncio.gather(checks, return_exceptions=True)
        server.stop()
        await store.close()


async def test_licence_refresh_says_why_in_one_line_and_the_task_lives(
    ami_simulator: Simulator, tmp_path: Path
) -> None:
    server = LicenceServer().start()
    server.body = hostile_answers(server)[2]  # what the daemon gets at its first check
    config = write_config(tmp_path, ami_simulator.port, extra=server.config())
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: server.requests >= 1), 30, "the first check"
        )
        for body in hostile_answers(server):
            server.body = body
            refreshed = await cli("licence", "refresh", "--config", str(config))
            assert refreshed.returncode == 1
            reason = refreshed.stderr.strip()
            assert reason.startswith("pbx-agent: licence refresh failed: ") and "\n" not in reason
            assert "Error" not in reason and "limit" not in reason.lower(), reason
        status = json.loads((await cli("status", "--config", str(config), "--json")).stdout)
        assert status["tasks"]["licence"] == status["tasks"]["licence"] | {
            "state": "running",
            "restarts": 0,
        }
        server.issue(expires_at=now() + timedelta(days=90))
        good = await cli("licence", "refresh", "--config", str(config), "--json")
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout)["state"] == "active"
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
        server.stop()
    assert code == 0 and "Traceback" not in err, err[-2000:]


async def test_future_issued_at_is_refused_for_tokens_and_commands(
    ami_simulator: Simulator, mosquitto: Broker, tmp_path: Path
) -> None:
    central = Ed25519PrivateKey.generate()
    server = LicenceServer().start()
    server.issue(expires_at=now() + timedelta(days=90), issued_at=now() + timedelta(days=365 * 70))
    config = write_config(
        tmp_path, ami_simulator.port, extra=mqtt_section(mosquitto, central) + server.config()
    )
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(
            wait_for, status_when(sock, lambda r: server.requests >= 1), 30, "the first check"
        )
        refused = await cli("licence", "refresh", "--config", str(config))
        assert refused.returncode == 1 and "is in the future" in refused.stderr
        assert "unknown" in refused.stdout, "nothing accepted"

        async with Watcher(mosquitto) as watcher, client_for(mosquitto) as central_client:
            await central_client.publish(
                f"{BASE}/cmd/count-now", signed(central, "count-now", issued_at=FUTURE), qos=1
            )
            await asyncio.to_thread(
                wait_for,
                status_when(sock, lambda r: r["telemetry"]["commands_refused"] == 1),
                30,
                "the command refused",
            )
            assert not [r for r in watcher.received if r.topic.startswith("reply/")]

        server.issue(expires_at=now() + timedelta(days=90))
        accepted = await cli("licence", "refresh", "--config", str(config), "--json")
        assert accepted.returncode == 0 and json.loads(accepted.stdout)["state"] == "active"
        events = await cli("events", "--config", str(config), "--json")
        checks = [e["check"] for e in json.loads(events.stdout)]
        assert "clock_behind" not in checks, "the refused token pinned the clock check"
    finally:
        code, _, err = await asyncio.to_thread(stop_daemon, proc)
        server.stop()
    assert code == 0, err[-2000:]
    assert "is in the future" in err  # the command's refusal, logged with its reason
