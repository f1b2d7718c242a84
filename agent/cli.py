"""The `pbx-agent` command line. Exit codes: 0 ok, 1 failed check or operation, 2 usage or
config error. Commands other than `run`, `config check` and `simulate` ask the running daemon
over its control socket."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click

from agent import __version__, render
from agent.control import request
from agent.errors import AgentError, ConfigError, ControlError, DaemonNotRunning

DEFAULT_CONFIG = Path("/etc/pbx-agent/agent.toml")
DEFAULT_SOCKET = Path("/run/pbx-agent/control.sock")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("PBX_AGENT_CONFIG", str(DEFAULT_CONFIG)),
    show_default="$PBX_AGENT_CONFIG or /etc/pbx-agent/agent.toml",
    help="Agent configuration file.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"pbx-agent: {message}", err=True)
    sys.exit(code)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pbx-agent")
def cli() -> None:
    """On-premises agent for phone-system support subscriptions.

    \b
    Example:
      pbx-agent status --config /etc/pbx-agent/agent.toml
    """


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="Run one poll cycle, then stop (exit 1 if it failed).")
def run(config_path: Path, once: bool) -> None:
    """Run the daemon in the foreground (systemd runs this).

    \b
    Example:
      pbx-agent run --config /etc/pbx-agent/agent.toml
    """
    import structlog

    from agent.config import load_config
    from agent.daemon import Daemon
    from agent.logs import configure_logging

    log = structlog.get_logger("agent.cli")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        configure_logging()  # structured like every later line (the journal gets priority 3)
        log.error("config error", error=str(exc), file=exc.file, key=exc.key)
        sys.exit(EXIT_USAGE)
    configure_logging(cfg.logging.level, cfg.logging.format, secrets=cfg.secret_values())
    try:
        code = asyncio.run(Daemon(cfg, once=once).run())
    except AgentError as exc:
        log.error("daemon failed", error=str(exc))
        sys.exit(EXIT_FAILED)
    sys.exit(code)


@cli.command()
@config_option
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), help="Control socket.")
@click.option("--endpoints", is_flag=True, help="Also list the PBX's endpoints.")
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for the daemon to start and finish its first poll.",
)
@json_option
def status(
    config_path: Path, socket_path: Path | None, endpoints: bool, wait: float, as_json: bool
) -> None:
    """Show the daemon's state and what it sees of the PBX.

    \b
    Example:
      pbx-agent status --endpoints
    """
    path = socket_path or _socket_from_config(config_path)
    deadline = time.monotonic() + wait
    while True:
        try:
            result = request(path, "status")
            if result["pbx"]["last_poll"] is not None or time.monotonic() >= deadline:
                break
        except DaemonNotRunning as exc:
            if time.monotonic() >= deadline:
                if as_json:
                    _print_json({"daemon": {"running": False, "reason": str(exc)}})
                _fail(str(exc), EXIT_FAILED)
        except ControlError as exc:
            _fail(str(exc), EXIT_FAILED)
        time.sleep(0.2)
    if as_json:
        _print_json(result)
    else:
        click.echo(render.status(result, endpoints=endpoints))


socket_option = click.option(
    "--socket", "socket_path", type=click.Path(path_type=Path), help="Control socket."
)


def _ask(config_path: Path, socket_path: Path | None, command: str, **args: Any) -> Any:
    """One request to the running daemon; exits 1 with a plain message when it fails."""
    try:
        return request(socket_path or _socket_from_config(config_path), command, args, timeout=120)
    except ControlError as exc:
        _fail(str(exc), EXIT_FAILED)


@cli.command("count")
@config_option
@socket_option
@click.option("--explain", is_flag=True, help="One line per seat and per object not counted.")
@json_option
def count_command(
    config_path: Path, socket_path: Path | None, explain: bool, as_json: bool
) -> None:
    """Count the billable users now and show how.

    \b
    Example:
      pbx-agent count --explain
    """
    from agent.counting.explain import explain as render_explain
    from agent.counting.explain import summary

    result = _ask(config_path, socket_path, "count")
    report = result["report"]
    if as_json:
        _print_json(report)
    elif explain:
        click.echo(render_explain(report))
    else:
        click.echo(summary(report))


@cli.command("inventory")
@config_option
@socket_option
@json_option
def inventory_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show everything the counting rules look at on the PBX, with each endpoint's
    effective options as Asterisk applies them (templates and (+) additions merged).

    \b
    Example:
      pbx-agent inventory --json > inventory.json
    """
    inventory = _ask(config_path, socket_path, "inventory")
    if as_json:
        _print_json(inventory)
        return
    click.echo(render.inventory(inventory))


@cli.command("keys")
@config_option
@socket_option
@json_option
def keys_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show the agent's public key (usage reports are signed with it).

    \b
    Example:
      pbx-agent keys
    """
    info = _ask(config_path, socket_path, "keys")
    if as_json:
        _print_json(info)
    else:
        click.echo(f"{info['algorithm']} key {info['key_id']}\npublic key: {info['public_key']}")


@cli.command("events")
@config_option
@socket_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option("--limit", default=50, show_default=True, help="How many recent events.")
@json_option
def events_command(
    config_path: Path, socket_path: Path | None, follow: bool, limit: int, as_json: bool
) -> None:
    """Show recent health events (problems, resolutions, notices) from the local store.

    \b
    Examples:
      pbx-agent events
      pbx-agent events --follow --json
    """
    import time

    after = 0  # 0: the newest `limit`; then everything after the last one shown
    rows = _ask(config_path, socket_path, "events", after=after, limit=limit)
    while True:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True) if as_json else render.event_line(row))
            after = row["seq"]
        if not follow:
            return
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return
        rows = _ask(config_path, socket_path, "events", after=after, limit=500)


@cli.group()
def licence() -> None:
    """The support subscription's licence: state, refresh."""


@licence.command("status")
@config_option
@socket_option
@json_option
def licence_status(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Show the licence state, days left and the features it allows.

    \b
    Example:
      pbx-agent licence status
    """
    _show_licence(config_path, socket_path, "licence-status", as_json)


@licence.command("refresh")
@config_option
@socket_option
@json_option
def licence_refresh(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Ask the licence server now, then show the state.

    \b
    Example:
      pbx-agent licence refresh
    """
    _show_licence(config_path, socket_path, "licence-refresh", as_json)


def _show_licence(config_path: Path, socket_path: Path | None, command: str, as_json: bool) -> None:
    result = _ask(config_path, socket_path, command)
    if as_json:
        _print_json(result)
    else:
        click.echo(render.licence(result))
    if command == "licence-refresh" and result.get("last_error"):
        reason = str(result["last_error"]).splitlines()[0]
        _fail(f"licence refresh failed: {reason}", EXIT_FAILED)


@cli.command("features")
@config_option
@socket_option
@json_option
def features_command(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Each subscription feature: wanted on or off, actual on the PBX, and how it is switched.

    A feature wanted off that is not shows "not switched: REASON" (and is a critical health
    problem); what the PBX cannot switch is named.

    \b
    Example:
      pbx-agent features
    """
    rows = _ask(config_path, socket_path, "features")
    if as_json:
        _print_json(rows)
        return
    click.echo(render.features(rows))


@cli.command("diag")
@config_option
@socket_option
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a support bundle (tar.gz, secrets masked) to this file.",
)
@json_option
def diag_command(
    config_path: Path, socket_path: Path | None, bundle: Path | None, as_json: bool
) -> None:
    """Check everything the agent depends on: PASS/WARN/FAIL, the value, a hint.

    Config, PBX AMI login and round trip, SSH host key, the archive host (reachable, key
    pinned, writable, free space), MQTT broker (TLS, credentials), licence server and token,
    certificate expiry, clock skew, disk, permissions, and the daemon with its outbox.
    Exit 1 when any check FAILs.

    \b
    Examples:
      pbx-agent diag
      pbx-agent diag --bundle /tmp/pbx-agent-support.tar.gz
    """
    from agent.diag.bundle import DAEMON_VIEWS, write_bundle
    from agent.diag.checks import run_checks

    socket = socket_path or _socket_from_config(config_path)
    checks = asyncio.run(run_checks(config_path, socket))
    written: list[str] = []
    if bundle is not None:
        views: dict[str, Any] = {}
        for view in DAEMON_VIEWS:
            try:
                views[view] = request(socket, view, {}, timeout=10)
            except ControlError as exc:
                views[view] = {"error": str(exc)}
        written = write_bundle(bundle, config_path, checks, views)
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        _print_json(
            {
                "checks": [c.to_json() for c in checks],
                "failed": failed,
                "bundle": str(bundle) if bundle else None,
            }
        )
    else:
        colours = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}
        for c in checks:
            status = click.style(f"{c.status:<4}", fg=colours[c.status], bold=True)
            click.echo(f"{status}  {c.name:<14} {c.value}")
            if c.hint:
                click.echo(f"      {'':<14} hint: {c.hint}")
        if bundle is not None:
            click.echo(f"support bundle: {bundle} ({len(written)} files, secrets masked)")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion_command(shell: str) -> None:
    """Print the shell completion script.

    \b
    Example:
      pbx-agent completion bash > /etc/bash_completion.d/pbx-agent
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None
    click.echo(completion(cli, {}, "pbx-agent", "_PBX_AGENT_COMPLETE").source())


@cli.group()
def usage() -> None:
    """Signed usage reports."""


@usage.command("export")
@config_option
@socket_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def usage_export(config_path: Path, socket_path: Path | None, file: Path) -> None:
    """Write the signed usage reports to FILE (one JSON envelope per line).

    \b
    Example:
      pbx-agent usage export usage.jsonl
    """
    envelopes = _ask(config_path, socket_path, "usage-export")
    file.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in envelopes))
    click.echo(f"{len(envelopes)} usage reports written to {file}")


@usage.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", required=True, help="The agent's public key (base64).")
def usage_verify(file: Path, public_key: str) -> None:
    """Prove a usage report chain untampered: every signature and every link.

    \b
    Example:
      pbx-agent usage verify usage.jsonl --public-key "$(pbx-agent keys --json | jq -r .public_key)"
    """
    from agent.usage.chain import ChainError, verify
    from agent.usage.keys import AgentKeyError, public_from_b64

    try:
        key = public_from_b64(public_key)
        envelopes = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        verified = verify(envelopes, key)
    except (AgentKeyError, ValueError) as exc:
        _fail(f"{file}: {exc}", EXIT_USAGE)
    except ChainError as exc:
        _fail(f"{file}: TAMPERED or broken: {exc}", EXIT_FAILED)
    click.echo(f"{file}: {verified} usage reports verified, chain intact")


@cli.group()
def backup() -> None:
    """Encrypted configuration backups."""


@backup.command("now")
@config_option
@socket_option
@json_option
def backup_now(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """Take a backup now (the daemon does it; this waits for the result).

    \b
    Example:
      pbx-agent backup now
    """
    row = _ask(config_path, socket_path, "backup-now")
    if as_json:
        _print_json(row)
    else:
        changed = "changed" if row["changed"] else "unchanged"
        click.echo(f"backup {row['id']}: {row['files']} files, {row['size']} bytes, {changed}")
        if row.get("offsite"):
            click.echo(f"off-site copy: {row['offsite']}")


@backup.command("list")
@config_option
@socket_option
@json_option
def backup_list(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """List the backups in the catalog, oldest first, with their off-site copy.

    OFFSITE: copied (a verified copy is on the archive host), MISSING (retention keeps it
    there, the last upload failed: the reason follows the table), queued, off (licence),
    not kept; rows "archive-only" are files the archive host still holds of backups no
    longer kept here (orphans, removals not yet confirmed). STATUS "orphan": an archive in
    the store that the catalog did not list (a crash right after it was written), "missing":
    a listed backup whose file is gone; the next retention removes both.

    \b
    Example:
      pbx-agent backup list
    """
    rows = _ask(config_path, socket_path, "backup-list")
    if as_json:
        _print_json(rows)
        return
    click.echo(render.backup_list(rows))


@backup.command("verify")
@config_option
@socket_option
@click.argument("backup_id")
@json_option
def backup_verify(
    config_path: Path, socket_path: Path | None, backup_id: str, as_json: bool
) -> None:
    """Check a backup: its ciphertext against the catalog, and with an identity every file.

    \b
    Example:
      pbx-agent backup verify 20261125T023000000000Z
    """
    result = _ask(config_path, socket_path, "backup-verify", id=backup_id)
    if as_json:
        _print_json(result)
    else:
        click.echo(f"backup {backup_id}: ciphertext {result['ciphertext']}; {result['files']}")


@backup.command("restore")
@config_option
@socket_option
@click.argument("backup_id")
@click.option(
    "--to",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty folder the service may write (below /var/lib/pbx-agent/restore/).",
)
@click.option("--to-pbx", is_flag=True, help="Compare with the PBX's files and show the diff.")
@click.option("--yes", is_flag=True, help="With --to-pbx: write the added and changed files.")
def backup_restore(
    config_path: Path,
    socket_path: Path | None,
    backup_id: str,
    target: Path | None,
    to_pbx: bool,
    yes: bool,
) -> None:
    """Restore a backup's files into a folder, or onto the (replacement) PBX.

    Everything is decrypted and checked first. The service writes the files, so --to must be
    a folder it can reach (not /tmp, /home or /root; installed, below
    /var/lib/pbx-agent/restore/), or the restore is refused. --to-pbx shows what would change
    on the PBX and writes nothing; add --yes to write the added and changed files (each
    replaced atomically). Files that exist only on the PBX are never deleted.

    \b
    Examples:
      pbx-agent backup restore 20261125T023000000000Z --to /var/lib/pbx-agent/restore/asterisk
      pbx-agent backup restore 20261125T023000000000Z --to-pbx
      pbx-agent backup restore 20261125T023000000000Z --to-pbx --yes
    """
    if (target is None) == (not to_pbx):
        _fail("give exactly one of --to DIR and --to-pbx", EXIT_USAGE)
    if yes and not to_pbx:
        _fail("--yes goes with --to-pbx", EXIT_USAGE)
    if target is not None:
        _restore_to(config_path, socket_path, backup_id, target.resolve())
        return
    plan = _ask(config_path, socket_path, "backup-restore-pbx", id=backup_id, apply=False)
    click.echo(render.push_plan(plan))
    if not plan["added"] and not plan["changed"]:
        click.echo("the PBX already has this backup's files: nothing to write")
        return
    if not yes:
        click.echo("nothing written; run again with --yes to write these files to the PBX")
        return
    done = _ask(config_path, socket_path, "backup-restore-pbx", id=backup_id, apply=True)
    written = len(done["added"]) + len(done["changed"])
    click.echo(f"backup {backup_id}: {written} files written to the PBX")


def _restore_to(config_path: Path, socket_path: Path | None, backup_id: str, target: Path) -> None:
    from agent import restore_target

    try:
        token, created = restore_target.prepare(target)
    except AgentError as exc:
        _fail(str(exc), EXIT_FAILED)
    try:
        result = _ask(
            config_path, socket_path, "backup-restore", id=backup_id, to=str(target), token=token
        )
    except BaseException:
        restore_target.withdraw(target, created)
        raise
    click.echo(f"backup {backup_id}: {result['files']} files restored into {result['to']}")


@backup.command("pin-host-key")
@config_option
@click.option(
    "--offsite",
    is_flag=True,
    help="Pin the archive host's key ([backup.offsite]) instead of the PBX's ([backup.ssh]).",
)
@click.option("--yes", is_flag=True, help="Pin without asking (after checking the fingerprint).")
def backup_pin_host_key(config_path: Path, offsite: bool, yes: bool) -> None:
    """Fetch the PBX's (or with --offsite the archive host's) SSH host key, show its
    fingerprint, and pin it after confirmation.

    \b
    Examples:
      pbx-agent backup pin-host-key
      pbx-agent backup pin-host-key --offsite
    """
    from agent.backup.service import archive_settings, pbx_ssh_settings
    from agent.config.load import load_config_outside_unit
    from drivers.errors import DriverError
    from drivers.sftp_source import fetch_host_key, fingerprint, pin_host_key

    try:
        cfg = load_config_outside_unit(config_path)
    except ConfigError as exc:
        _fail(f"config error: {exc}", EXIT_USAGE)
    if offsite and cfg.backup.offsite is None:
        _fail(f"{config_path}: backup.offsite: no archive host configured", EXIT_USAGE)
    if not offsite and cfg.backup.ssh is None:
        _fail(f"{config_path}: backup.ssh: no SSH server configured", EXIT_USAGE)
    settings = archive_settings(cfg) if offsite else pbx_ssh_settings(cfg)
    try:
        key = fetch_host_key(settings.host, settings.port, settings.timeout)
    except DriverError as exc:
        _fail(str(exc), EXIT_FAILED)
    click.echo(f"{settings.host}:{settings.port} offers {key.get_name()} {fingerprint(key)}")
    check = "with the archive host's administrator" if offsite else "on the PBX"
    if not yes and not click.confirm(
        f"Is this {settings.role}'s key (check it {check})? Pin it", default=False
    ):
        _fail("not pinned", EXIT_FAILED)
    known_hosts = settings.known_hosts
    pin_host_key(known_hosts, settings.host, settings.port, key)
    if os.geteuid() == 0:  # the service reads it: root pins with the folder's owner
        folder = known_hosts.parent.stat()
        os.chown(known_hosts, folder.st_uid, folder.st_gid)
        known_hosts.chmod(0o640)  # host keys are public; the service may read it as the group
    click.echo(f"pinned {settings.role}'s key in {known_hosts}")


@cli.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def config_check(file: Path, as_json: bool) -> None:
    """Validate a configuration file (exit 0 if valid, 2 if not).

    Secrets are read too: a `*_credential` from $CREDENTIALS_DIRECTORY, or outside the unit
    from the file of that name beside the config (where the installer keeps it).

    \b
    Example:
      pbx-agent config check /etc/pbx-agent/agent.toml
    """
    from agent.config.load import load_config_outside_unit

    try:
        cfg = load_config_outside_unit(file)
    except ConfigError as exc:
        if as_json:
            _print_json({"file": str(file), "valid": False, "errors": str(exc).splitlines()})
            sys.exit(EXIT_USAGE)
        _fail(f"config error: {exc}", EXIT_USAGE)
    if as_json:
        _print_json({"file": str(file), "valid": True, "site_id": cfg.site_id})
    else:
        click.echo(f"{file}: OK (site {cfg.site_id})")


@cli.group("state")
def state_group() -> None:
    """The agent's state store (state.db)."""


@state_group.command("recover")
@config_option
@click.option("--yes", is_flag=True, help="Do it without asking.")
def state_recover(config_path: Path, yes: bool) -> None:
    """Start a new state store when state.db is missing, empty or damaged.

    The daemon must be stopped. The old file is kept beside the new one
    (state.db.damaged-TIME); every row that can still be read is copied into the new
    store, and what could not be read is listed. Signed commands issued before the
    recovery are refused afterwards (their used nonces may be lost).

    \b
    Example:
      systemctl stop pbx-agent
      pbx-agent state recover
      systemctl start pbx-agent
    """
    from agent.config.load import load_config_outside_unit
    from agent.state.recover import describe, diagnose, recover

    try:
        cfg = load_config_outside_unit(config_path)
    except ConfigError as exc:
        _fail(f"config error: {exc}", EXIT_USAGE)
    try:
        request(cfg.control.socket, "ping", timeout=5)
    except DaemonNotRunning:
        pass
    except ControlError as exc:
        _fail(f"cannot tell whether the daemon is running ({exc}); stop it first", EXIT_FAILED)
    else:
        _fail("the daemon is running: stop it first (systemctl stop pbx-agent)", EXIT_FAILED)
    path = cfg.state.dir / "state.db"
    damage = diagnose(path)
    if damage is None:
        click.echo(f"{path} is whole (quick_check ok): nothing to recover")
        return
    click.echo(f"{path}: {damage.splitlines()[0][:300]}")
    if not yes and not click.confirm(
        f"Move {path} aside and start a new state store with what can be read of it?",
        default=False,
    ):
        _fail("nothing changed", EXIT_FAILED)
    try:
        result = recover(path)
    except AgentError as exc:
        _fail(str(exc), EXIT_FAILED)
    if os.geteuid() == 0:  # the service opens it: run by root, it takes the folder's owner
        folder = path.parent.stat()
        for made in path.parent.glob(f"{path.name}*"):
            os.chown(made, folder.st_uid, folder.st_gid)
    for line in describe(result, path):
        click.echo(line)


@cli.group()
def simulate() -> None:
    """Run a PBX simulator for demos and tests."""


@simulate.command("asterisk")
@click.option(
    "--office",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Office description (TOML).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=5038, show_default=True)
def simulate_asterisk(office: Path, host: str, port: int) -> None:
    """Serve an office over the Asterisk Manager Interface (AMI) protocol.

    \b
    Example:
      pbx-agent simulate asterisk --office config/demo/office.toml --port 15038
    """
    from drivers.asterisk.simulator import serve

    _serve_simulator(serve, "AMI", office, host, port)


@simulate.command("freeswitch")
@click.option(
    "--office",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Office description (TOML) naming its FreeSWITCH configuration tree.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8021, show_default=True)
def simulate_freeswitch(office: Path, host: str, port: int) -> None:
    """Serve an office over FreeSWITCH's event socket (ESL) protocol.

    \b
    Example:
      pbx-agent simulate freeswitch --office tests/fixtures/offices/bayside-coastal.toml \\
        --port 18021
    """
    from drivers.freeswitch.simulator import serve

    _serve_simulator(serve, "ESL", office, host, port)


def _serve_simulator(
    serve: Callable[..., Coroutine[Any, Any, None]],
    protocol: str,
    office: Path,
    host: str,
    port: int,
) -> None:
    """Run a simulator's `serve` until interrupted; bad offices are usage errors."""

    def ready(bound: int) -> None:
        click.echo(f"{protocol} simulator serving {office} on {host}:{bound}", err=True)

    try:
        asyncio.run(serve(office, host, port, ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)
    except ValueError as exc:  # a bad office file, or a configuration that does not load
        _fail(str(exc), EXIT_USAGE)


def _socket_from_config(config_path: Path) -> Path:
    """The control socket named in the config, read without loading secrets (which a
    technician's account may not be allowed to read)."""
    try:
        with config_path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_SOCKET
    socket = data.get("control", {}).get("socket") if isinstance(data, dict) else None
    if not isinstance(socket, str):
        return DEFAULT_SOCKET
    return (config_path.parent / socket).resolve()


def main() -> None:
    cli()
