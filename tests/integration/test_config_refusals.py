"""Issue 14, defect 11, with the CLI as a process: `config check` refuses an invalid age
recipient, a missing identity file, one readable by others, and TOML nested too deeply, each
with a sentence naming the file and the key, never a Python internal; `run` on a state folder
it cannot write names the folder and the fix instead of "unable to open database file"."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from tests.integration.daemon_harness import agent_command, cli, write_config

INTERNALS = ("Traceback", "KeyError", "RecursionError", "ValueError", "unable to open database")


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith("pbx-agent: config error: ") and "\n" not in message, message
    assert not any(word in message for word in INTERNALS), message
    return message


def backup_config(tmp_path: Path, lines: str) -> Path:
    return write_config(tmp_path, 5038, extra=f"[backup]\n{lines}\n")


async def test_an_invalid_age_recipient_is_refused(tmp_path: Path) -> None:
    config = backup_config(tmp_path, 'recipients = ["age1notakey"]')
    message = refusal(await cli("config", "check", str(config)))
    assert f"{config}: backup.recipients: recipient 'age1notakey' is not an age" in message
    good = pyrage.x25519.Identity.generate().to_public()
    config = backup_config(tmp_path, f'recipients = ["{good}"]')
    accepted = await cli("config", "check", str(config))
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist"),
        ("mode 0644", "has mode 0644"),
        ("not a key", "holds no age identity"),
        ("bad key", "is not a valid age X25519 identity"),
    ],
)
async def test_a_bad_identity_file_is_refused(tmp_path: Path, case: str, expected: str) -> None:
    identity = tmp_path / "identity.txt"
    key = str(pyrage.x25519.Identity.generate())
    if case != "missing":
        text = {"mode 0644": key, "not a key": "hello", "bad key": "AGE-SECRET-KEY-1NOPE"}[case]
        identity.write_text(text + "\n")
        identity.chmod(0o644 if case == "mode 0644" else 0o600)
    config = backup_config(tmp_path, f'identity_file = "{identity}"')
    message = refusal(await cli("config", "check", str(config)))
    assert "backup.identity_file: " in message and expected in message
    assert key not in message and "NOPE" not in message, "never the key itself"


async def test_toml_nested_too_deeply_is_refused_plainly(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5038, extra="x = " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested too deeply" in refusal(await cli("config", "check", str(config)))


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp folder is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pbx-agent-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_state_folder_it_cannot_write_is_named_with_the_fix(shared_dir: Path) -> None:
    config = write_config(shared_dir, 5038)
    state = shared_dir / "state"
    state.mkdir(mode=0o755)
    command = agent_command("run", "--config", str(config))
    if os.geteuid() == 0:  # root writes anywhere: run as an ordinary user, as the service does
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop root")
        nobody = pwd.getpwnam("nobody")
        os.chown(shared_dir / "ami-secret", nobody.pw_uid, nobody.pw_gid)
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        user = "nobody"
    else:
        state.chmod(0o555)
        user = pwd.getpwuid(os.geteuid()).pw_name
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip("the test venv cannot be run by another user here")
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert f"{state} is not writable by user {user}" in message
    assert f"Fix: chown -R {user} {state}" in message
    assert not any(word in message for word in INTERNALS), message
    assert not (state / "state.db").exists()
