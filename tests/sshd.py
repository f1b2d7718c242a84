"""A real OpenSSH sshd on a free loopback port, with its own host key and a client key, for
tests of SFTP collection, host-key pinning and the archive host. Several can run at once
(the PBX and the archive host); one can be stopped and started again on the same port (a host
that goes down and comes back), or restarted with other `internal-sftp` flags (`-R`
read-only account, `-P remove` a server that refuses deletions)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


@dataclass
class SshServer:
    port: int
    user: str
    client_key: Path
    host_key: Path
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def start(self, sftp_flags: str = "", *, log_sftp: bool = False) -> None:
        """(Re)start on the same port and keys; `sftp_flags` go to the SFTP server. With
        `log_sftp`, OpenSSH's stand-alone `sftp-server` serves and logs every request to
        `sftp_log` (fsync, close, rename...)."""
        self.stop()
        _write_config(self, sftp_flags, log_sftp)
        self.process = _spawn(self)

    @property
    def sftp_log(self) -> Path:
        return self.workdir / "sftp.log"


def available() -> bool:
    return Path(SSHD).exists() and shutil.which("ssh-keygen") is not None


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(server: SshServer, sftp_flags: str, log_sftp: bool) -> None:
    workdir = server.workdir
    subsystem = f"internal-sftp {sftp_flags}"
    if log_sftp:  # run through the user's shell, so stderr can go to a file
        subsystem = f"{SFTP_SERVER} {sftp_flags} -e -l DEBUG3 2>>{server.sftp_log}"
    (workdir / "sshd_config").write_text(
        f"Port {server.port}\nListenAddress 127.0.0.1\nHostKey {server.host_key}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\nPidFile {workdir / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        f"Subsystem sftp {subsystem}\nLogLevel VERBOSE\n"
    )


def _spawn(server: SshServer) -> subprocess.Popen[bytes]:
    config = server.workdir / "sshd_config"
    log = (server.workdir / "sshd.log").open("ab")  # a file, not a pipe: sshd never blocks
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: see {server.workdir / 'sshd.log'}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("sshd did not start listening")


def start(workdir: Path, sftp_flags: str = "", *, log_sftp: bool = False) -> SshServer:
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "client_ed25519.pub").read_text())
    authorized.chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    server = SshServer(_free_port(), getpass.getuser(), client_key, host_key, workdir)
    server.start(sftp_flags, log_sftp=log_sftp)
    return server
