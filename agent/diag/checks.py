"""`pbx-agent diag`: every check a technician needs on site, each PASS/WARN/FAIL with the value
measured and a hint saying what to do. Checks talk to the real things (the PBX's AMI and SSH,
the broker, the licence server, the daemon) with short timeouts; none changes anything.

Run outside systemd, `secret_credential` secrets are read from the config file's folder, where
the installer keeps the files that `LoadCredential=` hands to the service. Run by a technician
in group pbx-agent, who may not read the service's secrets and keys, a check that needs them is
a WARN saying so, never a FAIL: nothing is known to be wrong.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import pwd
import shutil
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.backup.service import BackupService
from agent.config import AgentConfig
from agent.config.load import credential_path, load_config_outside_unit
from agent.config.secrets import user_name
from agent.errors import AgentError, ConfigError

if TYPE_CHECKING:
    from drivers.sftp_source import RemoteSpace

TIMEOUT = 10.0
AS_ROOT = "run pbx-agent diag as root to check it too"


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


async def run_checks(path: Path, socket: Path | None = None) -> list[Check]:
    try:
        cfg = await asyncio.to_thread(load_config_outside_unit, path)
        checks: list[Check] = [_pass("config", f"{path} is valid")]
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        try:  # a secret this account may not read: check everything else
            if not isinstance(exc.__cause__, PermissionError):
                raise
            cfg = await asyncio.to_thread(load_config_outside_unit, path, read_secrets=False)
        except ConfigError:
            hint = (
                "chmod 600 the secret file named above"
                if "mode" in first
                else f"fix the key named above; then pbx-agent config check {path}"
            )
            return [
                _fail("config", first, hint),
                *await asyncio.to_thread(_permissions, path, None),
            ]
        checks = [_warn("config", f"{path} is valid; {first.split(': ', 2)[-1]}", AS_ROOT)]
    pbx, mqtt, tls = cfg.pbx.settings, cfg.mqtt, cfg.mqtt.tls
    pbx_secret = pbx.secret_file or credential_path(pbx.secret_credential or "", path)
    tls_files: list[Path | None] = []
    if mqtt.enabled and tls is not None:
        tls_files = [tls.ca_file, tls.cert_file, tls.key_file]
    ssh_files: list[Path | None] = []
    if cfg.backup.ssh is not None:
        ssh_files = [cfg.backup.ssh.key_file, BackupService.known_hosts_path(cfg)]
    archive_files: list[Path | None] = []
    if cfg.backup.offsite is not None:
        from agent.backup.service import archive_settings

        archive = archive_settings(cfg)
        archive_files = [archive.key_file, archive.known_hosts]
    steps: list[tuple[str, list[Path | None], Callable[[], Awaitable[list[Check]]]]] = [
        (f"pbx-{cfg.pbx.table}", [pbx_secret], lambda: _pbx(cfg)),
        ("pbx-ssh", ssh_files, lambda: _ssh(cfg)),
        ("archive-host", archive_files, lambda: asyncio.to_thread(_archive, cfg)),
        ("mqtt-broker", [mqtt.password_file, *tls_files], lambda: _broker(cfg)),
        ("licence", [cfg.licence.ca_file], lambda: _licence(cfg)),
        ("certificates", tls_files[:2], lambda: asyncio.to_thread(_certificates, cfg)),
        ("disk", [], lambda: asyncio.to_thread(_disk, cfg)),
        ("permissions", [], lambda: asyncio.to_thread(_permissions, path, cfg)),
        ("daemon", [], lambda: _daemon(cfg, socket)),
        ("features", [], lambda: _features(cfg, socket)),
    ]
    for name, needs, step in steps:
        unreadable = cannot_read(needs)
        if unreadable:
            names = ", ".join(str(p) for p in unreadable)
            value = f"not checked: user {user_name()} may not read {names}"
            checks.append(_warn(name, value, AS_ROOT))
            continue
        try:
            checks += await asyncio.wait_for(step(), TIMEOUT * 2)
        except TimeoutError:
            checks.append(_fail(name, f"no answer within {TIMEOUT * 2:g} s", "see the logs"))
    return checks


def cannot_read(paths: Iterable[Path | None]) -> list[Path]:
    """The files among `paths` that this account may not read. A missing file is left to the
    check that needs it, which says so."""
    unreadable = []
    for path in paths:
        if path is None or os.geteuid() == 0:
            continue
        try:
            os.stat(path)
        except FileNotFoundError:
            continue
        except OSError:  # a folder on the way may not be searched
            unreadable.append(path)
            continue
        if not os.access(path, os.R_OK):
            unreadable.append(path)
    return unreadable


# -- the PBX -------------------------------------------------------------------------------


async def _pbx(cfg: AgentConfig) -> list[Check]:
    """Connect and log in through the configured driver and read the PBX's facts (AMI for
    Asterisk, the event socket for FreeSWITCH: `pbx-ami`, `pbx-esl`)."""
    from drivers.errors import DriverError
    from drivers.registry import driver_class

    name = f"pbx-{cfg.pbx.table}"
    settings = cfg.pbx.settings
    cls = driver_class(cfg.pbx.driver)
    if settings.secret is None:
        return [_warn(name, f"{settings.address}: not checked: its secret was not read", AS_ROOT)]
    driver = cls.from_settings(settings)
    try:
        started = time.monotonic()
        await driver.connect()
        facts = await driver.facts()
        rtt = (time.monotonic() - started) * 1000
    except DriverError as exc:
        return [_fail(name, f"{settings.address}: {exc}", cls.connection_hint(settings, exc))]
    finally:
        await driver.close()
    return [
        _pass(
            name,
            f"{settings.address}: {facts.vendor} {facts.version}, login ok, "
            f"connect+login+facts {rtt:.0f} ms",
        )
    ]


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


# -- the archive host ----------------------------------------------------------------------

ARCHIVE_HINTS = {
    "host_key": "check the fingerprint with the archive host's administrator, then "
    "pbx-agent backup pin-host-key --offsite",
    "login": "check backup.offsite.username and key_file against the account's authorized_keys",
    "down": "is the archive host up and reachable from here (address, port, firewall)?",
    "missing_folder": "create the folder on the archive host, or fix backup.offsite.remote_dir",
    "disk_full": "the archive host's administrator must free space (or lower the keep_* counts)",
    "read_only": "the archive host's file system is read-only: its administrator must fix it",
    "permission": "the account needs to create, rename and delete files in remote_dir",
}


def _archive(cfg: AgentConfig) -> list[Check]:
    """The archive host: reachable with its key pinned, the folder writable (a probe file
    written, fsynced and removed), and room for the next copy."""
    from agent.backup.offsite import ArchiveHost, OffsiteError
    from agent.backup.service import archive_settings

    offsite = cfg.backup.offsite
    if offsite is None:
        return [_pass("archive-host", "not configured (no [backup.offsite])")]
    if not offsite.enabled:
        return [_pass("archive-host", "off ([backup.offsite] enabled = false)")]
    settings = archive_settings(cfg)
    where = f"{settings.username}@{settings.host}:{settings.port}"
    host = ArchiveHost(settings)

    def failed(name: str, exc: OffsiteError) -> Check:
        value = str(exc).split(";")[0] if exc.cause == "host_key" else str(exc)
        return _fail(name, value, ARCHIVE_HINTS.get(exc.cause, "check [backup.offsite]"))

    try:
        host.__enter__()
    except OffsiteError as exc:
        return [failed("archive-host", exc)]
    checks = [_pass("archive-host", f"{where}: host key pinned, login ok")]
    try:
        try:
            host.listing()
            fsynced = host.probe_write()
        except OffsiteError as exc:
            checks.append(failed("archive-write", exc))
        else:
            value = f"{settings.root}: writable"
            if fsynced:
                checks.append(_pass("archive-write", f"{value}, fsync offered"))
            else:
                hint = "copies are not fsynced there before the rename"
                checks.append(_warn("archive-write", f"{value}, no fsync@openssh.com", hint))
        try:
            space = host.space()
        except OffsiteError as exc:
            checks.append(failed("archive-space", exc))
        else:
            checks.append(_archive_space(settings.root, space, _newest_archive(cfg)))
    finally:
        host.close()
    return checks


def _archive_space(folder: str, space: RemoteSpace | None, newest: int) -> Check:
    if space is None:
        return _warn(
            "archive-space",
            "free space unknown: the server does not offer statvfs@openssh.com",
            "ask the archive host's administrator to watch its disk",
        )
    value = f"{folder}: {space.free / 1e6:.1f} MB free of {space.total / 1e6:.1f} MB"
    if newest:
        value += f", newest backup {newest / 1e6:.1f} MB"
    if space.free < max(newest, 1):
        return _fail("archive-space", value, ARCHIVE_HINTS["disk_full"])
    if space.free < 3 * newest or space.free < space.total * 0.05:
        return _warn("archive-space", value, "the archive host is nearly full: tell its admin")
    return _pass("archive-space", value)


def _newest_archive(cfg: AgentConfig) -> int:
    """The size of the newest archive in the local store (0 when there is none)."""
    store = cfg.backup.store or cfg.state.dir / "backups"
    try:
        archives = sorted(store.glob("*.tar.zst.age"))
        return archives[-1].stat().st_size if archives else 0
    except OSError:
        return 0


# -- upstream ------------------------------------------------------------------------------


async def _broker(cfg: AgentConfig) -> list[Check]:
    import aiomqtt

    from agent.telemetry.publisher import tls_context

    mqtt = cfg.mqtt
    if not mqtt.enabled:
        return [_pass("mqtt-broker", "not configured ([mqtt] enabled = false)")]
    where = f"{mqtt.host}:{mqtt.effective_port}"
    if mqtt.password_file is not None and mqtt.password is None:
        return [_warn("mqtt-broker", f"{where}: not checked: its password was not read", AS_ROOT)]
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
    try:
        server = email.utils.parsedate_to_datetime(answer.date) if answer.date else None
        skew = (now - server).total_seconds() if server else None
    except (TypeError, ValueError):  # a Date header that is no date: no clock check
        skew = None
    if skew is not None:
        text = f"{skew:+.0f} s against the licence server"
        if abs(skew) <= 60:
            checks.append(_pass("clock", text))
        else:
            bad = _warn if abs(skew) <= 300 else _fail
            checks.append(bad("clock", text, "enable NTP: timedatectl set-ntp true"))
    try:
        licence = verify_token(answer.token, public_keys(lic.keys), cfg.site_id, now=now)
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
        secrets = [p for p in (cfg.pbx.settings.secret_file, cfg.mqtt.password_file) if p]
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
    if cfg is not None and cfg.state.dir.exists():
        hidden = _hidden_from_service(cfg)
        if hidden:
            return [_fail("permissions", "; ".join(hidden), "give the files named to the service")]
    return [_pass("permissions", "config, secrets and state are private")]


def _hidden_from_service(cfg: AgentConfig) -> list[str]:
    """The files the service opens itself that its account (the state folder's owner) may not
    read, e.g. a known_hosts pinned by root with the wrong owner."""
    state = cfg.state.dir.stat()
    try:
        user = pwd.getpwuid(state.st_uid).pw_name
        groups = set(os.getgrouplist(user, state.st_gid))
    except KeyError:
        user, groups = str(state.st_uid), {state.st_gid}
    files = [cfg.pbx.settings.secret_file, cfg.mqtt.password_file, cfg.backup.identity_file]
    if cfg.mqtt.enabled and cfg.mqtt.tls:
        files += [cfg.mqtt.tls.ca_file, cfg.mqtt.tls.cert_file, cfg.mqtt.tls.key_file]
    for ssh in (cfg.backup.ssh, cfg.backup.offsite):
        if ssh is not None:
            files += [ssh.key_file, ssh.known_hosts or cfg.state.dir / "known_hosts"]
    hidden = []
    for path in dict.fromkeys(f for f in files if f is not None):
        try:
            info = path.stat()
        except OSError:
            continue
        mode = info.st_mode
        if not (
            state.st_uid == 0
            or (info.st_uid == state.st_uid and mode & stat.S_IRUSR)
            or (info.st_gid in groups and mode & stat.S_IRGRP)
            or mode & stat.S_IROTH
        ):
            hidden.append(f"{path} cannot be read by the service (chown {user}: {path})")
    return hidden


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
    checks = [_pass("daemon", value)]
    if depth > cfg.health.outbox_backlog:
        checks = [_warn("daemon", value, "messages are waiting: check the broker")]
    return [*checks, _tasks(status.get("tasks") or {})]


def _tasks(tasks: dict[str, Any]) -> Check:
    """FAIL while any of the daemon's long-running tasks is dead or restarting."""
    failing = {name: t for name, t in tasks.items() if t.get("state") != "running"}
    if not failing:
        return _pass("daemon-tasks", f"{len(tasks)} running: {', '.join(tasks)}")
    text = "; ".join(
        f"{name} {t.get('state')} ({t.get('restarts')} restarts, last: {t.get('last_error')})"
        for name, t in failing.items()
    )
    return _fail(
        "daemon-tasks",
        text,
        "the daemon restarts it with back-off; journalctl -u pbx-agent shows the error's "
        "traceback, pbx-agent events the agent_task_failed problem",
    )


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
