"""systemd notify protocol (sd_notify): READY=1, STOPPING=1, STATUS=..., WATCHDOG=1.

Only active when systemd set `$NOTIFY_SOCKET`; otherwise every call is a no-op, so the
daemon runs the same under systemd, in a terminal and in tests.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends datagrams to systemd's notify socket (a path, or `@abstract` name)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval: float | None = int(usec) / 2_000_000 if wanted else None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> None:
        """Send `states` (e.g. "READY=1", "STATUS=polling") in one datagram; never raises."""
        if self._address is None:
            return
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1.0)
                sock.connect(address)
                sock.sendall("\n".join(states).encode())
        except OSError as exc:
            if not self._warned:  # log once, not every watchdog tick
                log.warning("systemd notify failed", socket=self._address, error=str(exc))
                self._warned = True

    def ready(self, status: str = "running") -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")
