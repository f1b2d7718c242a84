"""The control socket: a unix stream socket speaking one JSON request and one JSON reply per
connection, each a single line. The CLI uses it to ask the running daemon.

Request: ``{"command": "status", "args": {...}}``.
Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
The socket file is mode 0660, so members of the daemon's group may use it and nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.errors import ControlError, DaemonNotRunning

log = structlog.get_logger(__name__)

MAX_REQUEST = 64 * 1024
MAX_REPLY = 16 * 1024 * 1024
REQUEST_TIMEOUT = 5.0

ControlHandler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class ControlServer:
    """Serves `handlers` (command name -> coroutine taking the request's args) on `path`."""

    def __init__(self, path: Path, handlers: Mapping[str, ControlHandler]) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise ControlError(
                    f"{self.path}: another pbx-agent daemon is already listening on this socket"
                )
            self.path.unlink()  # stale socket left by a daemon that was killed
        old_umask = os.umask(0o117)  # the socket is created 0660, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
        except OSError as exc:
            raise ControlError(f"{self.path}: cannot listen: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.debug("control client went away", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            request = json.loads(line)
        except (ValueError, asyncio.LimitOverrunError):
            return {"ok": False, "error": "malformed request: expected one JSON line"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'malformed request: expected {"command": ...}'}
        name = request["command"]
        args = request.get("args") or {}
        handler = self._handlers.get(name)
        if handler is None or not isinstance(args, dict):
            return {"ok": False, "error": f"unknown command {name!r}"}
        try:
            return {"ok": True, "result": await handler(args)}
        except Exception as exc:  # one catch-all: a failing command never stops the daemon
            log.exception("control command failed", command=name)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def request(
    path: Path, command: str, args: Mapping[str, Any] | None = None, *, timeout: float = 10.0
) -> Any:
    """Blocking client used by the CLI: send one request, return the result or raise.

    Raises `DaemonNotRunning` when nothing listens on `path`, `ControlError` otherwise.
    """
    payload = json.dumps({"command": command, "args": dict(args or {})}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except FileNotFoundError as exc:
            raise DaemonNotRunning(f"the daemon is not running (no socket at {path})") from exc
        except ConnectionRefusedError as exc:
            raise DaemonNotRunning(
                f"the daemon is not running (stale socket at {path}, nothing listens)"
            ) from exc
        except PermissionError as exc:
            raise ControlError(
                f"{path}: permission denied (run as the pbx-agent user or a member of its group)"
            ) from exc
        except OSError as exc:
            if exc.errno == errno.ENOTSOCK:
                raise ControlError(f"{path} is not a socket") from exc
            raise ControlError(f"{path}: {exc.strerror}") from exc
        try:
            sock.sendall(payload)
            data = _read_line(sock)
        except TimeoutError as exc:
            raise ControlError(f"the daemon did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise ControlError(f"control socket error: {exc}") from exc
    try:
        reply = json.loads(data)
    except ValueError as exc:
        raise ControlError("the daemon sent a malformed reply") from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise ControlError(str(error or "the daemon refused the request"))
    return reply.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_REPLY:
            break
    return b"".join(chunks)
