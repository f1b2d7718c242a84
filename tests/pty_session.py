"""A command run on a pseudo-terminal, as a technician's terminal runs it: what it draws is
read back, keys (Ctrl-C) are typed into it, and its exit code is collected."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Mapping
from pathlib import Path

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class PtySession:
    def __init__(
        self, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.output = b""
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session of its own with the pty as its terminal
            try:
                # As a terminal starts a program: Ctrl-C interrupts it, even when the tests
                # themselves run where SIGINT is ignored (started in the background by a
                # shell without job control, which also makes bash unable to trap it).
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(argv[0], argv, {**os.environ, **(env or {})})
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.code: int | None = None

    def read_until(self, wanted: bytes | re.Pattern[bytes], timeout: float) -> bool:
        """Read until `wanted` shows (in the text without escape codes); False at the
        deadline or the end of output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._found(wanted):
                return True
            if not self._read(0.1):
                return self._found(wanted)
        return self._found(wanted)

    def _found(self, wanted: bytes | re.Pattern[bytes]) -> bool:
        text = self.text_bytes
        return wanted in text if isinstance(wanted, bytes) else bool(wanted.search(text))

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data
        return bool(data)

    def _drain(self) -> None:
        """What is left to read, without waiting for more."""
        while select.select([self.fd], [], [], 0.05)[0]:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout: float) -> int:
        """Read to the end and return the exit code (the process is killed at the deadline)."""
        deadline = time.monotonic() + timeout
        open_terminal = True
        while time.monotonic() < deadline:
            if open_terminal:
                open_terminal = self._read(0.1)
            else:
                time.sleep(0.05)
            finished, status = os.waitpid(self.pid, os.WNOHANG)
            if finished:
                self.code = os.waitstatus_to_exitcode(status)
                self._drain()
                os.close(self.fd)
                return self.code
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"still running after {timeout} s:\n{self.text}")

    @property
    def text_bytes(self) -> bytes:
        return ANSI.sub(b"", self.output)

    @property
    def text(self) -> str:
        return self.text_bytes.decode(errors="replace")
