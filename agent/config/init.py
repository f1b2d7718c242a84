"""`pbx-agent config init`: the minimal configuration a site needs, from a technician's
answers; everything else keeps its default."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = "/var/lib/pbx-agent"
SOCKET = "/run/pbx-agent/control.sock"  # the installed unit's RuntimeDirectory

@dataclass(frozen=True, slots=True)
class InitAnswers:
    site_id: str
    ami_host: str
    ami_port: int
    ami_user: str
    secret_as: str  # "credential" (systemd LoadCredential=) or "file"
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    state_dir: str = STATE_DIR


def minimal_toml(answers: InitAnswers) -> str:
    q = json.dumps  # a TOML basic string
    secret = (
        'secret_credential = "ami-secret"    # systemd: LoadCredential=ami-secret:<this folder>/'
        "ami-secret"
        if answers.secret_as == "credential"
        else 'secret_file = "ami-secret"          # beside this file, mode 0600'
    )
    text = f"""# pbx-agent: written by `pbx-agent config init`. Every other key keeps its default:
# see them with `pbx-agent config show`, documented in agent.example.toml.
site_id = {q(answers.site_id)}

[pbx]
driver = "asterisk"

[pbx.ami]
host = {q(answers.ami_host)}
port = {answers.ami_port}
username = {q(answers.ami_user)}
{secret}

[state]
dir = {q(answers.state_dir)}

[control]
socket = {q(SOCKET if answers.state_dir == STATE_DIR else answers.state_dir + "/control.sock")}
"""
    if answers.ssh_host:
        text += f"""
[backup]
# Backups stay off until you add the age recipients and set enabled = true.
enabled = false
source = "sftp"

[backup.ssh]
host = {q(answers.ssh_host)}
port = {answers.ssh_port}
username = {q(answers.ssh_user or "root")}
key_file = {q(answers.ssh_key or "ssh-key")}
"""
    return text


def write_minimal(path: Path, answers: InitAnswers, secret: str | None) -> list[str]:
    """Write the config (0640) and, when given, the AMI secret alone in `ami-secret` beside
    it (0600); what was done, one line each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, minimal_toml(answers), 0o640)
    done = [f"wrote {path}"]
    secret_path = path.parent / "ami-secret"
    if secret:
        _write(secret_path, secret + "\n", 0o600)
        done.append(f"wrote the AMI secret to {secret_path} (mode 0600)")
    elif not secret_path.exists():
        done.append(f"put the AMI secret alone in {secret_path} (mode 0600)")
    return done


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically, created with `mode` (never briefly wider)."""
    temp = path.with_name(f".{path.name}.partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
