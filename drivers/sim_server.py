"""What every vendor simulator shares: reading the office file, and the TCP side (bind a
loopback port, 0 picks a free one, kept across a crash or shutdown so a restart comes back
on it; track the session tasks; close them all when the server stops listening; serve until
SIGTERM/SIGINT for `pbx-agent simulate <vendor>`). What a session says is the vendor's own.
"""

from __future__ import annotations

import asyncio
import signal
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any


class OfficeError(ValueError):
    """The office description cannot be used (the message names the file and the key)."""


def read_office(path: Path) -> tuple[dict[str, Any], Path]:
    """The office file's TOML and its config folder (relative to the file), after checking
    the keys every vendor needs: `name`, `config_dir` and `pbx.version`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise OfficeError(f"{path}: office file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise OfficeError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OfficeError(f"{path}: not valid TOML: {exc}") from exc
    pbx = raw.get("pbx", {})
    for key, table in (("name", raw), ("config_dir", raw), ("version", pbx)):
        if not isinstance(table.get(key), str):
            where = key if table is raw else f"pbx.{key}"
            raise OfficeError(f"{path}: {where}: required string is missing")
    return raw, (path.parent / raw["config_dir"]).resolve()


class SimServer:
    """Subclasses implement `_serve` (one session) and `_drop_sessions` (close them all)."""

    max_request = 64 * 1024  # the stream reader's limit

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The TCP port, kept across a crash or shutdown so a restart comes back on it."""
        if not self._requested_port:
            raise RuntimeError("the simulator was never started")
        return self._requested_port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._session, self.host, self._requested_port, limit=self.max_request
        )
        self._requested_port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._stop_listening()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _drop_sessions(self) -> None:
        raise NotImplementedError

    def _close_server(self) -> None:
        """Stop accepting and drop every session, without waiting (a crash)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_sessions()

    async def _stop_listening(self) -> None:
        self._close_server()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)


async def serve_until_signal(
    simulator: SimServer, ready: Callable[[int], None] | None = None
) -> None:
    """Start `simulator`, report its port to `ready`, serve until SIGTERM/SIGINT, stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before `ready`: a stop right after is clean
        loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    if ready is not None:
        ready(simulator.port)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
