"""`pbx-agent diag`: every check a technician needs on site, each PASS/WARN/FAIL with the value
measured and a hint saying what to do. Checks talk to the real things (the PBX's AMI and SSH,
the broker, the licence server, the daemon) with short timeouts; none changes anything.

Run outside systemd, `secret_credential` secrets are read from the config file's folder, where
the installer keeps the files that `LoadCredential=` hands to the service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, ami_settings, load_config
from agent.errors import AgentError, ConfigError

TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    value: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _pass(name: str, value: str) -> Check:
    return Check(name, "PASS", value)


def _warn(name: str, value: str, hint: str) -> Check:
    return Check(name, "WARN", value, hint)


def _fail(name: str, value: str, hint: str) -> Check:
    return Check(name, "FAIL", value, hint)


def load_for_diag(path: Path) -> AgentConfig:
    env = dict(os.environ)
    env.setdefault("CREDENTIALS_DIRECTORY", str(path.resolve().parent))
    return load_config(path, environ=env)


async def run_checks(path: Path, socket: Path | None = None) -> list[Check]:
    try:
        cfg = await asyncio.to_thread(load_for_diag, path)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        hint = (
            "chmod 600 the secret file named above"
            if "mode" in first
            else f"fix the key named above; then pbx-agent config check {path}"
        )
        return [_fail("config", first, hint), *await asyncio.to_thread(_permissions, path, None)]
    checks: list[Check] = [_pass("config", f"{path} is valid")]
    steps: list[tuple[str, Callable[[], Awaitable[list[Check]]]]] = [
        ("pbx-ami", lambda: _ami(cfg)),
        ("pbx-ssh", lambda: _ssh(cfg)),
        ("mqtt-broker", lambda: _broker(cfg)),
        ("licence", lambda: _licence(cfg)),
        ("certificates", lambda: asyncio.to_thread(_certificates, cfg)),
        ("disk", lambda: asyncio.to_thread(_disk, cfg)),
        ("permissions", lambda: asyncio.to_thread(_permissions, path, cfg)),
        ("daemon", lambda: _daemon(cfg, socket)),
        ("features", lambda: _features(cfg, socket)),
    ]
    for name, step in steps:
        try:
            checks += await asyncio.wait_for(step(), TIMEOUT * 2)
        except TimeoutError:
            checks.append(_fail(name, f"no answer within {TIMEOUT * 2:g} s", "see the logs"))
    return checks


# -- the PBX -------------------------------------------------------------------------------


async def _ami(cfg: AgentConfig) -> list[Check]:
    from drivers.asterisk.ami import AmiClient
    from drivers.errors import DriverAuthError, DriverError

    ami = cfg.pbx.ami
    where = f"{ami.host}:{ami.port}"
    client = AmiClient(ami_settings(cfg))
    try:
        started = time.monotonic()
        await client.connect()
        await client.action("Ping")
        rtt = (time.monotonic() - started) * 1000
    except DriverAuthError as exc:
        return [
            _fail(
                "pbx-ami",
                f"{where}: login refused ({exc})",
                f"check pbx.ami.username and its secret against manager.conf [{ami.username}]",
            )
        ]
    except DriverError as exc:
        return [
            _fail(
                "pbx-ami",
                f"{where}: {exc}",
                "is the PBX up, the AMI enabled (manager.conf [general] enabled = yes, "
                "bindaddr, port), and the port open from this host?",
            )
        ]
    finally:
        await client.close()
    return [_pass("pbx-ami", f"{where}: login ok, connect+login+ping {rtt:.0f} ms")]


async def _ssh(cfg: AgentConfig) -> list[Check]:
    from agent.backup.service import pbx_ssh_settings
    from drivers.errors import DriverError
    from drivers.sftp_source import HostKeyRefused, open_ssh

    ssh = cfg.backup.ssh
    if ssh is None:
        return [_pass("pbx-ssh", "not configured (no [backup.ssh])")]
    settings = pbx_ssh_settings(cfg)
    where = f"{ssh.username}@{ssh.host}:{ssh.port}"
    try:
        client = await asyncio.to_thread(open_ssh, settings)
        client.close()
    except HostKeyRefused as exc:
        return [_fail("pbx-ssh", str(exc).split(";")[0], "pbx-agent backup pin-host-key")]
    except DriverError as exc:
        return [_fail("pbx-ssh", f"{where}: {exc}", "check [backup.ssh] and the key's account")]
    return [_pass("pbx-ssh", f"{where}: host key pinned, login ok")]


# -- upstream ------------------------------------------------------------------------------


async def _broker(cfg: AgentConfig) -> list[Check]:
    import aiomqtt

    from agent.telemetry.publisher import tls_context

    mqtt = cfg.mqtt
    if not mqtt.enabled:
        return [_pass("mqtt-broker", "not configured ([mqtt] enabled = false)")]
    where = f"{mqtt.host}:{mqtt.effective_port}"
    try:
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.effective_port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            identifier=f"pbx-agent-diag-{cfg.site_id}",  # never the daemon's own session
            protocol=aiomqtt.ProtocolVersion.V5 if mqtt.protocol == "5" else None,
            tls_context=tls_context(mqtt),
            timeout=TIMEOUT,
        )
        async with asyncio.timeout(TIMEOUT):
            async with client:
                pass
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return [
            _fail(
                "mqtt-broker",
                f"{where}: {exc or type(exc).__name__}",
                "check [mqtt] host/port, the CA and client certificate, username/password, "
                "and that the broker is reachable from this host",
            )
        ]
    tls = "TLS" if mqtt.tls else "no TLS"
    return [_pass("mqtt-broker", f"{where}: connected ({tls}, MQTT {mqtt.protocol})")]


async def _licence(cfg: AgentConfig) -> list[Check]:
    from agent.licence.client import fetch
    from agent.licence.token import verify_token
    from agent.usage.keys import public_keys

    lic = cfg.licence
    if not lic.enabled:
        return [_pass("licence", "not configured ([licence] enabled = false)")]
    try:
        answer = await asyncio.to_thread(
            fetch, lic.url, cfg.site_id, timeout=TIMEOUT, ca_file=lic.ca_file
        )
    except AgentError as exc:
        return [_fail("licence-server", str(exc), "check licence.url and the network path")]
    checks = [_pass("licence-server", f"{lic.url}: answered")]
    now = dt.datetime.now(dt.UTC)
    if answer.date:
        server = email.utils.parsedate_to_datetime(answer.date)
        skew = (now - server).total_seconds()
        text = f"{skew:+.0f} s against the licence server"
        if abs(skew) <= 60:
            checks.append(_pass("clock", text))
        else:
            bad = _warn if abs(skew) <= 300 else _fail
            checks.append(bad("clock", text, "enable NTP: timedatectl set-ntp true"))
    try:
        licence = verify_token(answer.token, public_keys(lic.keys), cfg.site_id)
    except AgentError as exc:
        checks.append(_fail("licence-token", str(exc), "ask the reseller to check the licence"))
        return checks
    days = (licence.expires_at - now).total_seconds() / 86400
    value = f"{licence.status}, serial {licence.serial}, {days:.0f} days left"
    if licence.status != "active" or days <= 0:
        checks.append(_fail("licence-token", value, "renew the support subscription"))
    elif days <= 30:
        checks.append(_warn("licence-token", value, "the subscription expires soon: renew it"))
    else:
        checks.append(_pass("licence-token", value))
    return checks


def _certificates(cfg: AgentConfig) -> list[Check]:
    from cryptography import x509

    tls = cfg.mqtt.tls
    if not cfg.mqtt.enabled or tls is None:
        return [_pass("certificates", "no TLS certificates configured")]
    checks = []
    now = dt.datetime.now(dt.UTC)
    for label, path in (("CA", tls.ca_file), ("client", tls.cert_file)):
        if path is None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            checks.append(_fail(f"cert-{label.lower()}", f"{path}: {exc}", "install a PEM file"))
            continue
        left = (cert.not_valid_after_utc - now).total_seconds() / 86400
        value = f"{path}: expires {cert.not_valid_after_utc:%Y-%m-%d} ({left:.0f} days)"
        name = f"cert-{label.lower()}"
        if left <= 0:
            checks.append(_fail(name, value, f"the {label} certificate expired: replace it"))
        elif left <= 30:
            checks.append(_warn(name, value, f"renew the {label} certificate"))
        else:
            checks.append(_pass(name, value))
    return checks


# -- this host -----------------------------------------------------------------------------


def _disk(cfg: AgentConfig) -> list[Check]:
    directory = cfg.state.dir
    probe = directory if directory.exists() else directory.parent
    usage = shutil.disk_usage(probe)
    free = usage.free / usage.total * 100
    value = f"{directory}: {usage.free / 1e9:.1f} GB free ({free:.0f}%)"
    if free < 2 or usage.free < 100e6:
        return [_fail("disk", value, "free space: backups and the outbox need it")]
    if free < 10:
        return [_warn("disk", value, "free space soon; check backup retention")]
    return [_pass("disk", value)]


def _permissions(path: Path, cfg: AgentConfig | None) -> list[Check]:
    problems = []
    if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o002:
        problems.append(f"{path} is writable by everyone (chmod o-w)")
    secrets = []
    if cfg is not None:
        secrets = [p for p in (cfg.pbx.ami.secret_file, cfg.mqtt.password_file) if p]
        if cfg.mqtt.tls and cfg.mqtt.tls.key_file:
            secrets.append(cfg.mqtt.tls.key_file)
        if cfg.backup.identity_file:
            secrets.append(cfg.backup.identity_file)
        state = cfg.state.dir
        if state.exists() and stat.S_IMODE(state.stat().st_mode) & 0o007:
            problems.append(f"{state} is open to others (chmod o-rwx)")
    for secret in secrets:
        if secret.exists() and stat.S_IMODE(secret.stat().st_mode) & 0o077:
            problems.append(f"{secret} is readable by others (chmod 600)")
    if problems:
        return [_fail("permissions", "; ".join(problems), "tighten the modes named")]
    return [_pass("permissions", "config, secrets and state are private")]


async def _daemon(cfg: AgentConfig, socket: Path | None) -> list[Check]:
    from agent.control import request
    from agent.errors import ControlError

    where = socket or cfg.control.socket
    try:
        status: dict[str, Any] = await asyncio.to_thread(request, where, "status", {}, timeout=5)
    except ControlError as exc:
        return [
            _fail(
                "daemon",
                f"not running ({exc})",
                "systemctl start pbx-agent; journalctl -u pbx-agent -n 50",
            )
        ]
    depth = (status.get("telemetry") or {}).get("outbox_depth", 0)
    value = f"running, pid {status['daemon']['pid']}, outbox {depth} messages"
    if depth > cfg.health.outbox_backlog:
        return [_warn("daemon", value, "messages are waiting: check the broker")]
    return [_pass("daemon", value)]


async def _features(cfg: AgentConfig, socket: Path | None) -> list[Check]:
    """Every feature the licence wants off is off on the PBX (asked of the running daemon)."""
    from agent.control import request
    from agent.errors import ControlError

    if not cfg.licence.enabled:
        return [_pass("features", "no licence configured: nothing is switched")]
    try:
        rows: list[dict[str, Any]] = await asyncio.to_thread(
            request, socket or cfg.control.socket, "features", {}, timeout=5
        )
    except ControlError:
        return [_warn("features", "the daemon is not running", "see the daemon check")]
    checks = []
    for row in rows:
        name = f"feature-{row['feature']}"
        value = f"wanted {row['wanted']}, actual {row['actual']}"
        if row["enforced"]:
            continue
        if row["state"] == "pending":
            checks.append(_warn(name, value, "wait for the next poll; check the PBX connection"))
        else:
            hint = (row.get("note") or "").strip() or "see pbx-agent features"
            checks.append(_fail(name, value, f"{hint}; then pbx-agent features"))
    wanted_off = sum(1 for r in rows if r["wanted"] == "off")
    if not checks:
        detail = f"{wanted_off} wanted off, all switched" if wanted_off else "all wanted on"
        checks.append(_pass("features", detail))
    return checks
