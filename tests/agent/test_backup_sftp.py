"""Backups over SFTP from a real OpenSSH sshd: byte-identical through the stock age CLI, and
host keys pinned (unknown or changed keys refused, never accepted)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import paramiko
import pyrage
import pytest

from agent.backup.archive import MANIFEST, write_archive
from drivers.errors import DriverAuthError
from drivers.sftp_source import (
    HostKeyRefused,
    SftpSettings,
    SftpSource,
    fingerprint,
    pin_host_key,
    remote_disk_free,
)
from tests.sshd import SshServer


@pytest.fixture
def remote_tree(tmp_path: Path) -> Path:
    root = tmp_path / "remote" / "etc" / "asterisk"
    (root / "keys").mkdir(parents=True)
    (root / "pjsip.conf").write_text("[100]\ntype = endpoint\n" * 50)
    (root / "keys" / "tls.pem").write_bytes(bytes(range(256)) * 64)
    (root / "extensions.conf").write_text("[internal]\nexten => 100,1,Dial(PJSIP/100)\n")
    (root / "huge.db").write_bytes(b"\x00\x01" * 600_000)
    (root / "link.conf").symlink_to(root / "pjsip.conf")
    return root


def settings(server: SshServer, known_hosts: Path, root: Path) -> SftpSettings:
    return SftpSettings(
        host="127.0.0.1",
        port=server.port,
        username=server.user,
        key_file=server.client_key,
        known_hosts=known_hosts,
        root=str(root),
        timeout=5,
    )


def pinned(server: SshServer, tmp_path: Path) -> Path:
    known = tmp_path / "known_hosts"
    key = paramiko.PKey.from_path(str(server.host_key))
    pin_host_key(known, "127.0.0.1", server.port, key)
    return known


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.skipif(shutil.which("age") is None, reason="the stock age CLI is needed")
def test_backup_over_sftp_decrypts_with_stock_age_byte_identical(
    sshd: SshServer, remote_tree: Path, tmp_path: Path
) -> None:
    identity = pyrage.x25519.Identity.generate()
    store = tmp_path / "store"
    store.mkdir()
    with SftpSource(settings(sshd, pinned(sshd, tmp_path), remote_tree)) as source:
        result = write_archive(
            source, store, "b.age", [str(identity.to_public())], {"driver": "asterisk"}
        )
        assert source.skipped == ["link.conf"], "links are never backed up"
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    plain = subprocess.run(
        ["age", "-d", "-i", str(key), str(result.path)], capture_output=True, check=True
    ).stdout
    tar = subprocess.run(["zstd", "-d", "-c"], input=plain, capture_output=True, check=True).stdout
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    (out / MANIFEST).unlink()
    assert snapshot(out) == snapshot(remote_tree)


def test_unknown_host_key_is_refused_with_its_fingerprint(
    sshd: SshServer, remote_tree: Path, tmp_path: Path
) -> None:
    offered = fingerprint(paramiko.PKey.from_path(str(sshd.host_key)))
    with pytest.raises(HostKeyRefused, match="is not pinned") as info:
        SftpSource(settings(sshd, tmp_path / "empty_known_hosts", remote_tree)).connect()
    assert offered in str(info.value) and "pin-host-key" in str(info.value)


def test_changed_host_key_is_refused(sshd: SshServer, remote_tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    pin_host_key(known, "127.0.0.1", sshd.port, paramiko.PKey.from_path(str(other)))
    with pytest.raises(HostKeyRefused, match="HOST KEY CHANGED"):
        SftpSource(settings(sshd, known, remote_tree)).connect()


def test_wrong_client_key_is_an_auth_error(
    sshd: SshServer, remote_tree: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    s = settings(sshd, pinned(sshd, tmp_path), remote_tree)
    s.key_file = stranger
    with pytest.raises(DriverAuthError):
        SftpSource(s).connect()


def test_pbx_disk_space_over_ssh_matches_the_filesystem(
    sshd: SshServer, remote_tree: Path, tmp_path: Path
) -> None:
    total, free = remote_disk_free(
        settings(sshd, pinned(sshd, tmp_path), remote_tree), str(remote_tree)
    )
    local = os.statvfs(remote_tree)  # the sshd runs on this host: same filesystem
    assert total == pytest.approx(local.f_blocks * local.f_frsize, rel=0.01)
    assert free == pytest.approx(local.f_bavail * local.f_frsize, rel=0.05)
