"""A Debian bookworm root booted under a real systemd with systemd-nspawn, for the installed
unit's end-to-end test.

The root is made once with debootstrap and cached in the git-ignored `.cache/systemd/`
(rebuilt when absent, or when the package list below changes); every boot puts a tmpfs overlay
over it (`--volatile=overlay`), so nothing a test does reaches the cache. The container shares
the host's network namespace, so the test's servers on host loopback (AMI simulator, licence
server, sshd) are the PBX and the reseller's side; nothing inside it reaches the package index:
the wheels are built on the host and installed with `--no-index --find-links`. Commands run in
the container's namespaces through `nsenter` into its PID 1 (no machined registration needed).
"""

from __future__ import annotations

import fcntl
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "systemd"
SUITE = "bookworm"
# What an operator's Debian host has that a minbase root lacks: systemd as init, and Python
# with venv for scripts/install. Changing this list rebuilds the cached root.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The source tree an operator clones: what is not build output, caches or the venv.
NOT_IN_A_CLONE = (".git", ".venv", ".cache", "__pycache__", "*.egg-info", "build", "demo-state")
NOT_IN_A_CLONE += (".mypy_cache", ".ruff_cache", ".pytest_cache")


class ContainerUnavailable(Exception):
    """systemd-nspawn cannot boot a container on this machine (the reason is the message)."""


def missing_tools() -> list[str]:
    """The Debian packages this stage needs that are not installed."""
    tools = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}
    return [pkg for tool, pkg in tools.items() if shutil.which(tool) is None]


def rootfs(log: Path) -> Path:
    """The cached bookworm root, made with debootstrap first when it is absent or stale. One
    maker at a time (a lock beside the cache): `scripts/test` starts making it in the
    background while the other tests run, and the stage waits for that instead of racing it."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{SUITE}.lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _rootfs(log)


def _rootfs(log: Path) -> Path:
    root, stamp = CACHE / SUITE, "\n".join(PACKAGES) + "\n"
    marker = CACHE / f"{SUITE}.packages"  # written last: a root without it is incomplete
    if root.is_dir() and marker.is_file() and marker.read_text() == stamp:
        return root
    marker.unlink(missing_ok=True)
    partial = CACHE / f"{SUITE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE]
    command += [str(partial), *_host_mirror()]
    with log.open("wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"debootstrap failed ({done.returncode}):\n" + "\n".join(tail))
    for deb in (partial / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
    partial.rename(root)
    marker.write_text(stamp)
    return root


def _host_mirror() -> list[str]:
    """The Debian mirror this host's apt uses (debootstrap's default when none is found)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line[:20]
            )
            uris = fields.get("URIs", "").split()
            if SUITE in fields.get("Suites", "").split() and uris:
                return [uris[0]]
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return [words[1]]
    return []


def wheelhouse(log: Path) -> Path:
    """Wheels of every dependency of this checkout (and the build backend), built on the host
    with the test venv's pip; rebuilt when pyproject.toml changes."""
    wheels, stamp = CACHE / "wheels", (REPO / "pyproject.toml").read_bytes()
    marker = wheels / ".pyproject.toml"
    if marker.is_file() and marker.read_bytes() == stamp:
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q"]
    command += ["--wheel-dir", str(wheels), str(REPO), "setuptools>=68"]
    with log.open("wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel failed:\n{log.read_text(errors='replace')[-3000:]}")
    for own in wheels.glob("pbx_agent-*.whl"):  # the container installs from the clone
        own.unlink()
    marker.write_bytes(stamp)
    return wheels


def clone(target: Path) -> Path:
    """A copy of this checkout as an operator's clone has it."""
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE), symlinks=True)
    return target


@dataclass
class Done:
    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Container:
    """A booted container. `binds` maps host paths to paths inside it."""

    root: Path
    workdir: Path
    binds: dict[Path, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"pbx-agent-test-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None
    pid1: int = 0

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    def boot(self, timeout: float = 90) -> None:
        command = ["systemd-nspawn", "--quiet", "--directory", str(self.root)]
        command += ["--volatile=overlay", "--boot", "--register=no", "--keep-unit"]
        command += [f"--machine={self.name}", "--console=read-only"]
        command += [f"--bind={host}:{inside}" for host, inside in self.binds.items()]
        with self.console_log.open("wb") as console:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self.pid1:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ContainerUnavailable(self._failure("did not start"))
            self.pid1 = _container_init(self.process.pid)
            time.sleep(0.1)
        while True:
            state = self.run("systemctl is-system-running", timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ContainerUnavailable(self._failure(f"did not finish booting ({state})"))
            time.sleep(0.2)

    def _failure(self, what: str) -> str:
        tail = self.console_log.read_text(errors="replace").splitlines()[-10:]
        return f"systemd-nspawn --boot {what}: " + " | ".join(tail)

    def run(
        self,
        command: str,
        *,
        user: str | None = None,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str = "/root",
        timeout: float = 120,
    ) -> Done:
        """`command` (a shell line) in the container: as root from `cwd` in a clean
        environment, or in a login shell of `user`."""
        variables = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        if user is None:
            shell = ["/bin/bash", "-c", f"cd {cwd} && {command}"]
        else:
            shell = ["runuser", "--login", user, "--command", command]
        argv = ["nsenter", "--target", str(self.pid1), "--all", "--"]
        argv += ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items()), *shell]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        return Done(command, done.returncode, done.stdout, done.stderr)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _container_init(nspawn: int) -> int:
    """The container's systemd: the process below nspawn whose PID is 1 in its namespace."""
    todo = [nspawn]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "1" and pid != nspawn:
                return pid
        todo += [int(child) for child in children]
    return 0


if __name__ == "__main__":  # `python -m tests.systemd.container LOG`: make the root ahead
    rootfs(Path(sys.argv[1]))
