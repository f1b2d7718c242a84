"""The control socket: a unix stream socket speaking one JSON request and one JSON reply per
connection, each a single line. The CLI uses it to ask the running daemon.

Request: ``{"command": "status", "args": {...}}``.
Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
The socket file is mode 0660, so members of the daemon's group may use it and nobody else.
A request is bounded (size, nesting, numbers) before it is parsed, and its arguments are
checked against what the command takes before the command runs; a bad request gets a one-line
reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent import bounded_json
from agent.errors import AgentError, ControlError, DaemonNotRunning
from drivers.errors import DriverError

log = structlog.get_logger(__name__)

MAX_REQUEST = 64 * 1024
MAX_REPLY = 16 * 1024 * 1024
REQUEST_TIMEOUT = 5.0
REQUEST_LIMITS = bounded_json.Limits(MAX_REQUEST, max_depth=4, max_number_chars=24)

ControlHandler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class BadRequest(ControlError):
    """A request the daemon refuses before running anything."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument a command takes: its type, and for int its range, for str its length."""

    kind: type[int] | type[str] | type[bool]
    minimum: int = 0
    maximum: int = 1_000_000
    required: bool = False

    def check(self, name: str, value: Any) -> None:
        if self.kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadRequest(f"argument {name!r} must be an integer")
            if not self.minimum <= value <= self.maximum:
                raise BadRequest(f"argument {name!r} must be {self.minimum}..{self.maximum}")
        elif self.kind is str:
            if not isinstance(value, str) or not 1 <= len(value) <= self.maximum:
                raise BadRequest(f"argument {name!r} must be a string of 1-{self.maximum} chars")
            if any(ord(c) < 32 for c in value):
                raise BadRequest(f"argument {name!r} holds control characters")
        elif not isinstance(value, bool):
            raise BadRequest(f"argument {name!r} must be true or false")


class ControlServer:
    """Serves `handlers` (command name -> coroutine taking the request's args) on `path`;
    `args` names the arguments each command takes (a command not listed takes none)."""

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, ControlHandler],
        args: Mapping[str, Mapping[str, Arg]] | None = None,
    ) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._args = {name: dict(spec) for name, spec in (args or {}).items()}
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
        except (ValueError, asyncio.LimitOverrunError):
            return _refused(f"malformed request: longer than {MAX_REQUEST} bytes")
        try:
            name, args = self._parse(line)
        except BadRequest as exc:
            log.info("control request refused", reason=str(exc))
            return _refused(str(exc))
        try:
            return {"ok": True, "result": await self._handlers[name](args)}
        except (AgentError, DriverError) as exc:
            log.warning("control command failed", command=name, error=str(exc))
            return _refused(str(exc))
        except TimeoutError:
            log.warning("control command timed out", command=name)
            return _refused(f"{name}: timed out")
        except Exception as exc:  # one catch-all: a failing command never stops the daemon
            log.exception("control command failed", command=name)
            return _refused(
                f"{name} failed: internal error ({type(exc).__name__}); the daemon's log "
                "(journalctl -u pbx-agent) has the details"
            )

    def _parse(self, line: bytes) -> tuple[str, dict[str, Any]]:
        """The command's name and checked arguments, or `BadRequest`."""
        if not line.endswith(b"\n"):
            raise BadRequest("malformed request: expected one JSON line ending in a newline")
        request = bounded_json.loads(line, REQUEST_LIMITS, "malformed request", BadRequest)
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            raise BadRequest('malformed request: expected {"command": "...", "args": {...}}')
        name = request["command"]
        args = request.get("args", {})
        if name not in self._handlers:
            raise BadRequest(f"unknown command {name[:64]!r}")
        if not isinstance(args, dict):
            raise BadRequest("malformed request: args must be an object")
        spec = self._args.get(name, {})
        for key, value in args.items():
            if key not in spec:
                raise BadRequest(f"{name} takes no argument {key[:64]!r}")
            spec[key].check(key, value)
        missing = [key for key, arg in spec.items() if arg.required and key not in args]
        if missing:
            raise BadRequest(f"{name} needs the argument {missing[0]!r}")
        return name, args


def _refused(error: str) -> dict[str, Any]:
    """A refusal: one line, short."""
    lines = error.strip().splitlines() or ["refused"]
    return {"ok": False, "error": lines[0][:500]}


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
