"""Encrypted configuration backups: now, list, verify, restore, pin-host-key."""

from __future__ import annotations

from pathlib import Path

import click

from agent import render
from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask,
    config_option,
    fail,
    json_option,
    print_json,
    socket_option,
)
from agent.errors import ConfigError


@click.group()
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
    row = ask(config_path, socket_path, "backup-now")
    if as_json:
        print_json(row)
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
    result = ask(config_path, socket_path, "backup-verify", id=backup_id)
    if as_json:
        print_json(result)
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
    help="A new or empty folder.",
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

    Everything is decrypted and checked first. --to-pbx shows what would change on the PBX
    and writes nothing; add --yes to write the added and changed files (each replaced
    atomically). Files that exist only on the PBX are never deleted.

    \b
    Examples:
      pbx-agent backup restore 20261125T023000000000Z --to /tmp/asterisk-restore
      pbx-agent backup restore 20261125T023000000000Z --to-pbx
      pbx-agent backup restore 20261125T023000000000Z --to-pbx --yes
    """
    if (target is None) == (not to_pbx):
        fail("give exactly one of --to DIR and --to-pbx", EXIT_USAGE)
    if yes and not to_pbx:
        fail("--yes goes with --to-pbx", EXIT_USAGE)
    if target is not None:
        result = ask(
            config_path, socket_path, "backup-restore", id=backup_id, to=str(target.resolve())
        )
        click.echo(f"backup {backup_id}: {result['files']} files restored into {result['to']}")
        return
    plan = ask(config_path, socket_path, "backup-restore-pbx", id=backup_id, apply=False)
    click.echo(render.push_plan(plan))
    if not plan["added"] and not plan["changed"]:
        click.echo("the PBX already has this backup's files: nothing to write")
        return
    if not yes:
        click.echo("nothing written; run again with --yes to write these files to the PBX")
        return
    done = ask(config_path, socket_path, "backup-restore-pbx", id=backup_id, apply=True)
    written = len(done["added"]) + len(done["changed"])
    click.echo(f"backup {backup_id}: {written} files written to the PBX")


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
    from agent.config import load_config
    from drivers.errors import DriverError
    from drivers.sftp_source import fetch_host_key, fingerprint, pin_host_key

    try:
        cfg = load_config(config_path)
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
    click.echo(f"pinned {settings.role}'s key in {settings.known_hosts}")
