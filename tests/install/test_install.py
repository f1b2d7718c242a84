"""scripts/install and scripts/uninstall into a staging root: the files, modes and owners they
lay down, an upgrade that keeps a changed config and the state, and an uninstall that keeps
config and state unless --purge (which also removes the user and group). The same scripts on a
real system under systemd: tests/systemd/test_operator.py."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=600,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def service_ids(root: Path) -> tuple[int, int] | None:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        name, _, uid, gid, *_ = line.split(":")
        if name == "pbx-agent":
            return int(uid), int(gid)
    return None


@pytest.mark.timeout(600)  # two pip installs into a fresh venv; slow on a loaded machine
def test_staged_install_upgrade_and_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = run("install", "--root", str(root))
    assert first.returncode == 0, first.stderr
    etc = root / "etc" / "pbx-agent"
    state = root / "var" / "lib" / "pbx-agent"
    unit = root / "etc" / "systemd" / "system" / "pbx-agent.service"
    program = root / "opt" / "pbx-agent" / "venv" / "bin" / "pbx-agent"
    assert "ExecStart=/opt/pbx-agent/venv/bin/pbx-agent run" in unit.read_text()
    assert (root / "etc" / "sysusers.d" / "pbx-agent.conf").exists()
    assert mode(etc) == 0o750 and mode(etc / "agent.toml") == 0o640
    assert mode(etc / "ami-secret") == 0o600 and mode(state) == 0o750
    assert mode(unit) == 0o644
    version = subprocess.run([str(program), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "pbx-agent" in version.stdout
    on_path = root / "usr" / "local" / "bin" / "pbx-agent"
    completion = root / "usr" / "share" / "bash-completion" / "completions" / "pbx-agent"
    assert os.readlink(on_path) == "/opt/pbx-agent/venv/bin/pbx-agent"
    assert "_PBX_AGENT_COMPLETE" in completion.read_text()
    if os.geteuid() == 0:
        ids = service_ids(root)
        assert ids is not None, "the pbx-agent user exists in the staging root"
        uid, gid = ids
        assert (state.stat().st_uid, state.stat().st_gid) == (uid, gid)
        assert (etc / "agent.toml").stat().st_uid == 0
        assert (etc / "agent.toml").stat().st_gid == gid
        assert (etc / "ami-secret").stat().st_uid == 0

    # The minimal config is valid once the secret exists (as a systemd credential).
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "ami-secret").write_text("s3cret\n")
    checked = subprocess.run(
        [str(program), "config", "check", str(etc / "agent.toml")],
        capture_output=True,
        text=True,
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Upgrade in place: a changed config and the state survive.
    changed = (etc / "agent.toml").read_text().replace("change-me", "northwind-main")
    (etc / "agent.toml").write_text(changed)
    (state / "state.db").write_bytes(b"state")
    second = run("install", "--root", str(root))
    assert second.returncode == 0, second.stderr
    assert "kept the existing" in second.stdout
    assert (etc / "agent.toml").read_text() == changed
    assert (state / "state.db").read_bytes() == b"state"

    removed = run("uninstall", "--root", str(root))
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not (root / "opt" / "pbx-agent").exists()
    assert not on_path.is_symlink() and not completion.exists()
    assert (etc / "agent.toml").read_text() == changed
    assert (state / "state.db").exists()

    purged = run("uninstall", "--root", str(root), "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not etc.exists() and not state.exists()
    if os.geteuid() == 0:
        assert service_ids(root) is None, "--purge removes the user"
        groups = (root / "etc" / "group").read_text().splitlines()
        assert not [g for g in groups if g.startswith("pbx-agent:")], "and the group"


@pytest.mark.parametrize("args", [["--bogus"], ["--prefix", "relative/path", "--root", "x"]])
def test_install_refuses_bad_arguments(args: list[str], tmp_path: Path) -> None:
    result = run("install", *args)
    assert result.returncode == 2 and "install:" in result.stderr
