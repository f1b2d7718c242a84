"""Configuration commands."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    fail,
    give_to_service,
    json_option,
    print_json,
)
from agent.cli.paths import default_config
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import AgentConfig


@click.group("config")
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
        errors = str(exc).splitlines()
        fail(f"config error: {exc}", EXIT_USAGE, file=str(file), valid=False, errors=errors)
    if as_json:
        print_json({"file": str(file), "valid": True, "site_id": cfg.site_id})
    else:
        click.echo(f"{file}: OK (site {cfg.site_id})")


def _load_outside_the_unit(file: Path) -> AgentConfig:
    """The config as the daemon would load it; a `*_credential` secret is read from the
    config's folder when $CREDENTIALS_DIRECTORY is not set (where the installer keeps it)."""
    from agent.config.load import load_config_outside_unit

    return load_config_outside_unit(file)


@config_group.command("show")
@click.argument(
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_config,
)
@json_option
def config_show(file: Path, as_json: bool) -> None:
    """Show the effective configuration: every key with its value after defaults, and where
    it came from (file, default, or the credential or file a secret is read from; secrets
    themselves are never shown). The output is TOML with the source as a comment.

    \b
    Examples:
      pbx-agent config show
      pbx-agent config show /etc/pbx-agent/agent.toml --json
    """
    from agent.config.effective import as_toml, effective

    try:
        entries = effective(_load_outside_the_unit(file), file)
    except ConfigError as exc:
        fail(f"config error: {exc}", EXIT_USAGE)
    if as_json:
        print_json({"file": str(file), "values": [e.to_json() for e in entries]})
    else:
        click.echo(as_toml(entries, file))


SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _site_id(value: str) -> str:
    if not SITE_ID.match(value):
        raise click.BadParameter(
            "lower-case letters, digits and '-', 2 to 63 characters, e.g. northwind-main"
        )
    return value


@config_group.command("init")
@click.argument(
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=default_config,
)
@click.option("--site-id", help="This site's id at the reseller.")
@click.option("--ami-host", help="The PBX's AMI listener address.")
@click.option("--ami-port", type=click.IntRange(1, 65535), help="Its port (Asterisk: 5038).")
@click.option("--ami-user", help="The manager.conf user of the agent.")
@click.option(
    "--secret-as",
    type=click.Choice(["credential", "file"]),
    default="credential",
    show_default=True,
    help="credential: read with systemd's LoadCredential= (the installed unit); "
    "file: read from the file directly (running by hand).",
)
@click.option("--ssh-host", help="The PBX's SSH host for backups (asked when not given).")
@click.option("--ssh-port", type=click.IntRange(1, 65535), help="Its SSH port (22).")
@click.option(
    "--state-dir",
    default="/var/lib/pbx-agent",
    show_default=True,
    help="The agent's state folder (state.db, backups, pinned host keys).",
)
@click.option("--force", is_flag=True, help="Replace an existing FILE.")
@click.option("--yes", is_flag=True, help="Ask nothing: defaults for what is not given.")
def config_init(
    file: Path,
    site_id: str | None,
    ami_host: str | None,
    ami_port: int | None,
    ami_user: str | None,
    secret_as: str,
    ssh_host: str | None,
    ssh_port: int | None,
    state_dir: str,
    force: bool,
    yes: bool,
) -> None:
    """Write a minimal configuration after asking for the site id and the PBX's AMI host,
    port and user; the AMI secret goes alone into a 0600 file beside it. Optionally the
    PBX's SSH server for backups: its host key fingerprint is shown and pinned only when
    you confirm (never with --yes). Every other key keeps its default (`config show`).

    \b
    Examples:
      pbx-agent config init
      pbx-agent config init /etc/pbx-agent/agent.toml --site-id northwind-main \\
        --ami-host 10.0.0.5 --ami-user pbx-agent --yes
    """
    from agent.config.init import InitAnswers, write_minimal

    if file.exists() and not force:
        fail(f"{file} exists: not replaced (--force replaces it)", EXIT_USAGE)

    def ask(text: str, given: Any, default: Any, **kw: Any) -> Any:
        if given is not None or yes:
            return given if given is not None else default
        return click.prompt(text, default=default, **kw)

    if site_id is not None:
        _site_id(site_id)
    elif yes:
        fail("--yes needs --site-id", EXIT_USAGE)
    site = ask("Site id (at the reseller)", site_id, None, value_proc=_site_id)
    host = ask("PBX AMI host", ami_host, "127.0.0.1")
    port = ask("PBX AMI port", ami_port, 5038, type=click.IntRange(1, 65535))
    user = ask("AMI user (manager.conf)", ami_user, "pbx-agent")
    ssh = ask("PBX SSH host for backups (empty: none)", ssh_host, "", show_default=False)
    ssh_port = ask("SSH port", ssh_port, 22, type=click.IntRange(1, 65535)) if ssh else 22
    ssh_user = ask("SSH user on the PBX", None, "root") if ssh else None
    key = ask("SSH private key of the agent", None, str(file.parent / "ssh-key")) if ssh else None
    answers = InitAnswers(
        site, host, port, user, secret_as, ssh or None, ssh_port, ssh_user, key, state_dir
    )
    secret = None
    secret_path = file.parent / "ami-secret"
    if not yes and not secret_path.exists():
        secret = click.prompt(
            f"AMI secret (stored alone in {secret_path}, mode 0600; empty: later)",
            default="",
            hide_input=sys.stdin.isatty(),
            show_default=False,
        )
    try:
        written = write_minimal(file, answers, secret or None)
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror}", EXIT_FAILED)
    for line in written:
        click.echo(line)
    if answers.ssh_host:
        _offer_pin(file, yes)
    click.echo(f"next: pbx-agent config check {file}; every other key: pbx-agent config show")


def _offer_pin(file: Path, yes: bool) -> None:
    """Show the PBX's SSH host key; pin it only when the technician says yes."""
    from agent.backup.service import pbx_ssh_settings
    from drivers.errors import DriverError
    from drivers.sftp_source import fetch_host_key, fingerprint, pin_host_key

    try:
        cfg = _load_outside_the_unit(file)
    except ConfigError as exc:
        click.echo(f"host key not pinned: the config does not load yet ({exc})")
        return
    settings = pbx_ssh_settings(cfg)
    try:
        key = fetch_host_key(settings.host, settings.port, settings.timeout)
    except DriverError as exc:
        click.echo(f"host key not pinned: {exc}; later: pbx-agent backup pin-host-key")
        return
    click.echo(f"{settings.host}:{settings.port} offers {key.get_name()} {fingerprint(key)}")
    if yes or not click.confirm(
        "Is this the PBX's key (check it on the PBX: ssh-keygen -lf /etc/ssh/ssh_host_*.pub)? "
        "Pin it",
        default=False,
    ):
        click.echo("host key not pinned; later: pbx-agent backup pin-host-key")
        return
    pin_host_key(settings.known_hosts, settings.host, settings.port, key)
    give_to_service(settings.known_hosts, mode=0o640)
    click.echo(f"pinned the PBX's key in {settings.known_hosts}")
