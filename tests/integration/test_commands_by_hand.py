"""Commands an operator runs by hand on the installed config, outside the unit: `config check`
and `backup pin-host-key` find a `secret_credential` beside the config (no
$CREDENTIALS_DIRECTORY there), while `run` still needs the unit's credential; pinning as root
leaves known_hosts to the service, and diag names a known_hosts the service cannot read."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon_harness import AMI_SECRET, agent_command, ssh_table, write_config
from tests.sshd import SshServer


def installed_like(tmp_path: Path, extra: str = "") -> Path:
    """A config as scripts/install lays it out: the AMI secret a credential, its file beside."""
    config = write_config(tmp_path, 5038, extra=extra)
    config.write_text(
        config.read_text().replace('secret_file = "ami-secret"', 'secret_credential = "ami-secret"')
    )
    return config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return subprocess.run(
        agent_command(*args), capture_output=True, text=True, timeout=60, env=environ | (env or {})
    )


def test_config_check_reads_the_credential_beside_the_config(tmp_path: Path) -> None:
    config = installed_like(tmp_path)
    checked = run("config", "check", str(config))
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "ami-secret").unlink()
    missing = run("config", "check", str(config))
    assert missing.returncode == 2
    assert "credential 'ami-secret' not found in" in missing.stderr


def test_config_check_prefers_the_units_credentials_directory(tmp_path: Path) -> None:
    config = installed_like(tmp_path)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    checked = run("config", "check", str(config), env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert checked.returncode == 2 and str(credentials) in checked.stderr
    (credentials / "ami-secret").write_text(AMI_SECRET + "\n")
    checked = run("config", "check", str(config), env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert checked.returncode == 0, checked.stderr


def test_the_daemon_itself_still_needs_the_units_credential(tmp_path: Path) -> None:
    config = installed_like(tmp_path)
    started = run("run", "--config", str(config))
    assert started.returncode == 2
    assert "$CREDENTIALS_DIRECTORY is not set" in started.stderr
    assert '"event": "config error"' in started.stderr, "start-up errors are JSON lines too"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_pinned_by_root_the_known_hosts_belongs_to_the_service(
    tmp_path: Path, sshd: SshServer
) -> None:
    extra = ssh_table("backup.ssh", "127.0.0.1", sshd.port, sshd.user, sshd.client_key)
    config = installed_like(tmp_path, extra=extra)
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.chown(state, 65534, 65534)  # the service's account owns its state folder
    pinned = run("backup", "pin-host-key", "--yes", "--config", str(config))
    assert pinned.returncode == 0, pinned.stderr
    known_hosts = state / "known_hosts"
    info = known_hosts.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert stat.S_IMODE(info.st_mode) == 0o640

    # Pinned the old way (root's, 0600): diag says the service cannot read it.
    os.chown(known_hosts, 0, 0)
    known_hosts.chmod(0o600)
    shown = run("diag", "--config", str(config), "--json")
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    assert checks["permissions"]["status"] == "FAIL"
    assert f"{known_hosts} cannot be read by the service" in checks["permissions"]["value"]
