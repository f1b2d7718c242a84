"""`pbx-agent config show` (every key's value and where it came from) and `config init` (the
minimal config from a technician's answers; an SSH host key pinned only on confirmation), run
as processes the way a technician types them."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from tests.integration.daemon_harness import agent_command, cli, write_config
from tests.sshd import SshServer


async def typed(answers: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with `answers` typed at its prompts (one per line)."""
    return await asyncio.to_thread(
        subprocess.run,
        agent_command(*args),
        input=answers,
        capture_output=True,
        text=True,
        timeout=60,
    )


def values(shown: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert shown.returncode == 0, shown.stderr
    return {v["key"]: v for v in json.loads(shown.stdout)["values"]}


async def test_config_show_says_where_every_value_came_from(tmp_path: Path) -> None:
    config = write_config(tmp_path, 15038)
    shown = values(await cli("config", "show", str(config), "--json"))
    assert shown["pbx.ami.port"] == {"key": "pbx.ami.port", "value": 15038, "source": "file"}
    assert shown["pbx.ami.username"]["source"] == "file"
    assert shown["poll.interval"] == {"key": "poll.interval", "value": 5.0, "source": "file"}
    assert shown["counting.interval"] == {
        "key": "counting.interval",
        "value": 3600.0,
        "source": "default",
    }
    assert shown["state.dir"]["value"] == str(tmp_path / "state")  # resolved from the file
    assert shown["backup.path"] == {"key": "backup.path", "value": "/etc/asterisk",
                                    "source": "default"}
    assert shown["pbx.ami.secret"] == {
        "key": "pbx.ami.secret",
        "value": "(hidden)",
        "source": f"file {tmp_path / 'ami-secret'}",
    }
    text = await cli("config", "show", str(config))
    assert "nwT3st" not in text.stdout, "the secret itself is never shown"
    assert tomllib.loads(text.stdout)["pbx"]["ami"]["port"] == 15038, "the output is TOML"
    assert "counting.interval" not in text.stdout and "interval = 3600.0" in text.stdout

    # A credential (systemd LoadCredential=) is named as the source.
    credential = config.read_text().replace('secret_file = "ami-secret"',
                                            'secret_credential = "ami-secret"')
    config.write_text(credential)
    shown = values(await cli("config", "show", str(config), "--json"))
    assert shown["pbx.ami.secret"]["source"] == "credential ami-secret"

    config.write_text(credential.replace("[poll]\ninterval = 5", "[poll]\ninterval = 1"))
    bad = await cli("config", "show", str(config), "--json")
    assert bad.returncode == 2
    assert "poll.interval" in json.loads(bad.stdout)["error"]


async def test_config_init_asks_and_writes_a_minimal_config(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "agent.toml"
    # site id (a wrong one first), AMI host, port, user, no SSH host, the AMI secret
    answers = "Bad Site!\nnorthwind-main\n10.0.0.5\n\npbx-agent\n\nthe-ami-secret\n"
    made = await typed(
        answers, "config", "init", str(config), "--secret-as", "file",
        "--state-dir", str(tmp_path / "state"),
    )
    assert made.returncode == 0, made.stderr
    assert "lower-case letters, digits and '-'" in made.stdout + made.stderr
    assert f"wrote {config}" in made.stdout
    secret = config.parent / "ami-secret"
    assert secret.read_text() == "the-ami-secret\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    data = tomllib.loads(config.read_text())
    assert data["site_id"] == "northwind-main"
    assert data["pbx"]["ami"] == {
        "host": "10.0.0.5",
        "port": 5038,
        "username": "pbx-agent",
        "secret_file": "ami-secret",
    }
    assert "backup" not in data, "no SSH host given: no backup table"
    checked = await cli("config", "check", str(config))
    assert checked.returncode == 0, checked.stderr

    again = await typed("", "config", "init", str(config))
    assert again.returncode == 2 and "not replaced (--force replaces it)" in again.stderr
    unattended = await cli("config", "init", str(tmp_path / "other.toml"), "--yes")
    assert unattended.returncode == 2 and "--yes needs --site-id" in unattended.stderr


async def test_config_init_pins_the_ssh_host_key_only_when_confirmed(
    sshd: SshServer, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    state = tmp_path / "state"
    common = ["config", "init", str(config), "--state-dir", str(state), "--site-id", "site-a",
              "--ami-host", "127.0.0.1", "--ami-port", "5038", "--ami-user", "agent"]
    # SSH host, port, user, key file, the AMI secret, then the fingerprint question.
    ssh = f"127.0.0.1\n{sshd.port}\n{sshd.user}\n{sshd.client_key}\nsecret\n"
    declined = await typed(ssh + "\n", *common)
    assert declined.returncode == 0, declined.stderr
    assert f"127.0.0.1:{sshd.port} offers ssh-ed25519 SHA256:" in declined.stdout
    assert "host key not pinned" in declined.stdout
    assert not (state / "known_hosts").exists(), "nothing pinned without a yes"

    unattended = await typed(
        "", *common, "--force", "--yes", "--ssh-host", "127.0.0.1", "--ssh-port", str(sshd.port)
    )
    assert unattended.returncode == 0, unattended.stderr
    assert "SHA256:" in unattended.stdout and "host key not pinned" in unattended.stdout
    assert not (state / "known_hosts").exists(), "--yes never pins"

    confirmed = await typed(ssh + "y\n", *common, "--force")
    assert confirmed.returncode == 0, confirmed.stderr
    assert f"pinned the PBX's key in {state / 'known_hosts'}" in confirmed.stdout
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in (state / "known_hosts").read_text()
    data = tomllib.loads(config.read_text())
    assert data["backup"]["ssh"]["port"] == sshd.port and data["backup"]["enabled"] is False
