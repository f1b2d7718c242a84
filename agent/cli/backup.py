"""Encrypted configuration backups: now, list, verify, restore, pin-host-key. The long ones
(now, verify, restore) are followed with their progress (`agent.cli.progress`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from agent import render
from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    give_to_service,
    json_option,
    jsonl_option,
    print_json,
    socket_option,
)
from agent.cli.paths import socket_from_config
from agent.cli.progress import mode_for, run_followed
from agent.control_client import request
from agent.errors import AgentError, ConfigError, ControlError


def complete_backup_id(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion: the good backups in the running daemon's catalog, newest first."""
    config = ctx.params.get("config_path")
    socket = ctx.params.get("socket_path") or socket_from_config(
        Path(config) if config else Path("/etc/pbx-agent/agent.toml")
    )
    try:
        rows = request(socket, "backup-list", timeout=3)
    except ControlError:
        return []
    return [
        CompletionItem(r["id"], help=f"{r['files']} files, {render.size(r['size'])}")
        for r in reversed(rows)
        if r.get("status") == "ok" and str(r["id"]).startswith(incomplete)
    ]


backup_id_argument = click.argument("backup_id", shell_complete=complete_backup_id)


def backup_row_text(row: Mapping[str, Any]) -> str:
    changed = "changed" if row["changed"] else "unchanged"
    text = f"backup {row['id']}: {row['files']} files, {render.size(row['size'])}, {changed}"
    if row.get("offsite"):
        text += f"\noff-site copy: {row['offsite']}"
    return text


def verify_text(result: Mapping[str, Any]) -> str:
    return f"backup {result['id']}: ciphertext {result['ciphertext']}; {result['files']}"


def restore_text(result: Mapping[str, Any]) -> str:
    return f"backup {result['id']}: {result['files']} files restored into {result['to']}"


def push_text(plan: Mapping[str, Any]) -> str:
    if plan.get("applied"):
        written = len(plan["added"]) + len(plan["changed"])
        return f"backup {plan['id']}: {written} files written to the PBX"
    return render.push_plan(plan)


# How the result of each long operation reads (also for `pbx-agent follow`).
RESULTS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "backup-now": ("backup now", backup_row_text),
    "backup-verify": ("backup verify", verify_text),
    "backup-restore": ("backup restore", restore_text),
    "backup-restore-pbx": ("backup restore --to-pbx", push_text),
}


def _followed(
    config_path: Path,
    socket_path: Path | None,
    command: str,
    as_json: bool,
    as_jsonl: bool,
    **args: Any,
) -> Any:
    if as_json and as_jsonl:
        fail("give --json or --jsonl, not both", EXIT_USAGE)
    socket = socket_path or socket_from_config(config_path)
    title = RESULTS[command][0]
    return run_followed(socket, command, args, title=title, mode=mode_for(as_json, as_jsonl))


def show_result(command: str, result: Any, as_json: bool, as_jsonl: bool) -> None:
    if as_json:
        print_json(result)
    elif as_jsonl:
        click.echo(render.json_line({"result": result}))
    else:
        click.echo(RESULTS[command][1](result))


@click.group()
def backup() -> None:
    """Encrypted configuration backups."""


@backup.command("now")
@config_option
@socket_option
@json_option
@jsonl_option
def backup_now(config_path: Path, socket_path: Path | None, as_json: bool, as_jsonl: bool) -> None:
    """Take a backup now and follow it: a progress bar on a terminal (files, bytes, rate,
    time left), a line every few seconds otherwise. Ctrl-C stops following, not the backup.

    \b
    Example:
      pbx-agent backup now
    """
    row = _followed(config_path, socket_path, "backup-now", as_json, as_jsonl)
    show_result("backup-now", row, as_json, as_jsonl)


@backup.command("list")
@config_option
@socket_option
@json_option
def backup_list(config_path: Path, socket_path: Path | None, as_json: bool) -> None:
    """List the backups in the catalog, oldest first, with their off-site copy.

    OFFSITE: copied (a verified copy is on the archive host), MISSING (retention keeps it
    there, the last upload failed: the reason follows the table), queued, off (licence),
    not kept; rows "archive-only" are files the archive host still holds of backups no
    longer kept here (orphans, removals not yet confirmed).

    \b
    Example:
      pbx-agent backup list
    """
    rows = ask(config_path, socket_path, "backup-list")
    if as_json:
        print_json(rows)
        return
    click.echo(render.backup_list(rows))


@backup.command("verify")
@config_option
@socket_option
@backup_id_argument
@json_option
@jsonl_option
def backup_verify(
    config_path: Path, socket_path: Path | None, backup_id: str, as_json: bool, as_jsonl: bool
) -> None:
    """Check a backup: its ciphertext against the catalog, and with an identity every file
    (followed with its progress).

    \b
    Example:
      pbx-agent backup verify 20261125T023000000000Z
    """
    result = _followed(config_path, socket_path, "backup-verify", as_json, as_jsonl, id=backup_id)
    show_result("backup-verify", result, as_json, as_jsonl)


@backup.command("restore")
@config_option
@socket_option
@backup_id_argument
@click.option(
    "--to",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty folder the service may write (below /var/lib/pbx-agent/restore/).",
)
@click.option("--to-pbx", is_flag=True, help="Compare with the PBX's files and show the diff.")
@click.option("--yes", is_flag=True, help="With --to-pbx: write the added and changed files.")
@json_option
@jsonl_option
def backup_restore(
    config_path: Path,
    socket_path: Path | None,
    backup_id: str,
    target: Path | None,
    to_pbx: bool,
    yes: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Restore a backup's files into a folder, or onto the (replacement) PBX, following the
    progress.

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
        fail("give exactly one of --to DIR and --to-pbx", EXIT_USAGE)
    if yes and not to_pbx:
        fail("--yes goes with --to-pbx", EXIT_USAGE)
    if target is not None:
        _restore_to(config_path, socket_path, backup_id, target.resolve(), as_json, as_jsonl)
        return
    command = "backup-restore-pbx"
    plan = _followed(config_path, socket_path, command, as_json, as_jsonl, id=backup_id)
    if not yes or (not plan["added"] and not plan["changed"]):
        show_result(command, plan, as_json, as_jsonl)
        if not (as_json or as_jsonl):
            if not plan["added"] and not plan["changed"]:
                click.echo("the PBX already has this backup's files: nothing to write")
            else:
                click.echo("nothing written; run again with --yes to write these files to the PBX")
        return
    if not (as_json or as_jsonl):
        click.echo(render.push_plan(plan))
    done = _followed(
        config_path, socket_path, command, as_json, as_jsonl, id=backup_id, apply=True
    )
    show_result(command, done, as_json, as_jsonl)


def _restore_to(
    config_path: Path,
    socket_path: Path | None,
    backup_id: str,
    target: Path,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """The daemon writes the files: the CLI makes the folder with a marker the daemon must see
    (a folder the sandboxed service cannot reach is refused), and withdraws it on failure."""
    from agent import restore_target

    try:
        token, created = restore_target.prepare(target)
    except AgentError as exc:
        fail(str(exc), EXIT_FAILED)
    try:
        result = _followed(
            config_path,
            socket_path,
            "backup-restore",
            as_json,
            as_jsonl,
            id=backup_id,
            to=str(target),
            token=token,
        )
    except BaseException:
        restore_target.withdraw(target, created)
        raise
    show_result("backup-restore", result, as_json, as_jsonl)


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
        fail(f"config error: {exc}", EXIT_USAGE)
    if offsite and cfg.backup.offsite is None:
        fail(f"{config_path}: backup.offsite: no archive host configured", EXIT_USAGE)
    if not offsite and cfg.backup.ssh is None:
        fail(f"{config_path}: backup.ssh: no SSH server configured", EXIT_USAGE)
    settings = archive_settings(cfg) if offsite else pbx_ssh_settings(cfg)
    try:
        key = fetch_host_key(settings.host, settings.port, settings.timeout)
    except DriverError as exc:
        fail(str(exc), EXIT_FAILED)
    click.echo(f"{settings.host}:{settings.port} offers {key.get_name()} {fingerprint(key)}")
    check = "with the archive host's administrator" if offsite else "on the PBX"
    if not yes and not click.confirm(
        f"Is this {settings.role}'s key (check it {check})? Pin it", default=False
    ):
        fail("not pinned", EXIT_FAILED)
    pin_host_key(settings.known_hosts, settings.host, settings.port, key)
    # Host keys are public; the service reads the file as its owner or group.
    give_to_service(settings.known_hosts, mode=0o640)
    click.echo(f"pinned {settings.role}'s key in {settings.known_hosts}")
