"""`pbx-agent diag` against a running stack (AMI simulator, real sshd, real Mosquitto with TLS
and a client certificate, the licence test double, the daemon): all PASS; then each dependency
broken in turn gives the matching FAIL with its hint and exit 1. `--bundle` holds no secret."""

from __future__ import annotations

import asyncio
import json
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from drivers.asterisk.simulator import Simulator
from drivers.sftp_source import fetch_host_key, pin_host_key
from tests.integration.daemon_harness import (
    AMI_SECRET,
    cli,
    ssh_table,
    start_daemon,
    status_when,
    stop_daemon,
    wait_for,
    write_config,
)
from tests.licence_server import LicenceServer, now
from tests.mosquitto import Broker, client_certificate
from tests.sshd import SshServer

MQTT_PASSWORD = "mq-diag-Pa55"


def stack_config(
    tmp_path: Path, sim: Simulator, broker: Broker, sshd: SshServer, server: LicenceServer
) -> Path:
    assert broker.tls is not None
    password = tmp_path / "mqtt-password"
    password.write_text(MQTT_PASSWORD + "\n")
    password.chmod(0o600)
    extra = f"""
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
username = "test-site"
password_file = "{password}"
reconnect_initial = 0.1
reconnect_max = 0.5
[mqtt.tls]
ca_file = "{broker.tls.ca}"
cert_file = "{broker.tls.client_cert}"
key_file = "{broker.tls.client_key}"
{ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)}{server.config()}
"""
    config = write_config(tmp_path, sim.port, extra=extra)
    pin_host_key(
        tmp_path / "state" / "known_hosts",
        "127.0.0.1",
        sshd.port,
        fetch_host_key("127.0.0.1", sshd.port, 5),
    )
    return config


async def diag(config: Path, *extra: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = await cli("diag", "--config", str(config), "--json", *extra)
    data = json.loads(result.stdout)
    return result.returncode, {c["name"]: c for c in data["checks"]}


async def test_diag_all_pass_then_each_failure_is_named(
    ami_simulator: Simulator,
    mosquitto_tls: Broker,
    sshd: SshServer,
    tmp_path: Path,
) -> None:
    server = LicenceServer().start()
    server.issue(expires_at=now() + timedelta(days=300))
    config = stack_config(tmp_path, ami_simulator, mosquitto_tls, sshd, server)
    sock = tmp_path / "state" / "control.sock"
    proc = start_daemon(config)
    try:
        await asyncio.to_thread(wait_for, status_when(sock, lambda r: True), 20, "the daemon")
        code, checks = await diag(config)
        not_passing = {n: c for n, c in checks.items() if c["status"] not in ("PASS", "SKIP")}
        assert checks["archive-host"]["status"] == "SKIP", "not configured here: nothing checked"
        not_passing.pop("disk", None)  # the CI machine's disk is not ours to judge
        assert not not_passing, not_passing
        assert code == 0 or checks["disk"]["status"] == "FAIL"
        assert {
            "config",
            "pbx-ami",
            "pbx-ssh",
            "mqtt-broker",
            "licence-server",
            "clock",
            "licence-token",
            "cert-ca",
            "cert-client",
            "permissions",
            "daemon",
        } <= set(checks)
        assert "ms" in checks["pbx-ami"]["value"] and "TLS" in checks["mqtt-broker"]["value"]

        # The support bundle: everything useful, no secret.
        bundle = tmp_path / "support.tar.gz"
        code, _ = await diag(config, "--bundle", str(bundle))
        with tarfile.open(bundle) as tar:
            names = tar.getnames()
            blobs = b"".join(
                f.read() for m in tar.getmembers() if (f := tar.extractfile(m)) is not None
            )
        for wanted in ("diag.json", "agent.toml", "versions.json", "daemon/events.json"):
            assert f"pbx-agent-diag/{wanted}" in names
        for secret in (AMI_SECRET, MQTT_PASSWORD):
            assert secret.encode() not in blobs, "a secret in the bundle"
        assert b"site_id" in blobs and b"pbx-agent" in blobs
    finally:
        await asyncio.to_thread(stop_daemon, proc)

    async def fails(name: str, hint_word: str) -> None:
        code, checks = await diag(config)
        assert code == 1
        assert checks[name]["status"] == "FAIL", checks[name]
        assert hint_word in checks[name]["hint"], checks[name]

    await fails("daemon", "systemctl start pbx-agent")

    ami_simulator.faults.refuse_connections = True
    await fails("pbx-ami", "is the PBX up")
    ami_simulator.faults.refuse_connections = False

    secret = tmp_path / "ami-secret"
    secret.write_text("wrong-secret\n")
    await fails("pbx-ami", "pbx.ami.username")
    secret.write_text(AMI_SECRET + "\n")

    mosquitto_tls.stop()
    await fails("mqtt-broker", "broker is reachable")
    mosquitto_tls.start()

    assert mosquitto_tls.tls is not None
    cert, key = client_certificate(mosquitto_tls.tls, tmp_path / "expired", expired=True)
    text = config.read_text()
    config.write_text(
        text.replace(str(mosquitto_tls.tls.client_cert), str(cert)).replace(
            str(mosquitto_tls.tls.client_key), str(key)
        )
    )
    await fails("cert-client", "expired")
    config.write_text(text)

    server.stop()
    await fails("licence-server", "licence.url")
    server.start()

    secret.chmod(0o644)
    await fails("config", "chmod 600")
    secret.chmod(0o600)
