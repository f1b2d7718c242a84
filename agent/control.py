"""The control socket: a unix stream socket speaking JSON lines, one request per connection.
The CLI uses it to ask the running daemon.

Request: ``{"command": "status", "args": {...}}``, optionally with ``"stream": true``.
Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "kind": "..."}``
(`kind` is ``config`` when the daemon's configuration does not allow what was asked, else
``failed``). A command may send big fields of its result as lines of their own after the reply
(``"attached": ["report"]``, then the report as one line of compact JSON with its keys sorted:
as ``--json`` prints it), so that the CLI can print one without decoding and encoding it again
(a 50,000-seat count is 33 MB).

Long operations (backup, verify, restore) are *streamed* commands: each runs as an operation
of its own (`agent.operations`) with a `Progress` its handler reports to. A request with
``"stream": true`` gets ``{"operation": {"id": N, "command": ...}}``, then
``{"progress": {...}}`` lines (on change, at most every `PROGRESS_INTERVAL` s, and at least
every `HEARTBEAT` s so the client knows the daemon is there), then the final reply. A client
that goes away leaves the operation running; ``follow`` (args ``id``) streams it again and
``operations`` lists them. Without ``"stream"`` only the final reply is sent.

The socket file is mode 0660, so members of the daemon's group may use it and nobody else.
A request is bounded (size, nesting, numbers) before it is parsed, and its arguments are
checked against what the command takes before the command runs; a bad request gets a one-line
reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent import bounded_json, compact_json
from agent.control_client import MAX_REPLY, request
from agent.errors import AgentError, ConfigError, ControlError
from agent.operations import Operation, Operations
from agent.progress import Progress
from drivers.errors import DriverError

log = structlog.get_logger(__name__)

MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT = 5.0
REQUEST_LIMITS = bounded_json.Limits(MAX_REQUEST, max_depth=4, max_number_chars=24)
PROGRESS_INTERVAL = 0.5
HEARTBEAT = 5.0

ControlHandler = Callable[[Mapping[str, Any]], Awaitable[Any]]
StreamedHandler = Callable[[Mapping[str, Any], Progress], Awaitable[Any]]

__all__ = ["MAX_REPLY", "Arg", "BadRequest", "ControlServer", "request"]


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


BUILTIN_ARGS = {"follow": {"id": Arg(int, minimum=1, maximum=10**9, required=True)}}


class ControlServer:
    """Serves `handlers` (command name -> coroutine taking the request's args) and `streamed`
    (the long operations: coroutines taking the args and a `Progress`) on `path`; `args`
    names the arguments each command takes (a command not listed takes none)."""

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, ControlHandler],
        args: Mapping[str, Mapping[str, Arg]] | None = None,
        streamed: Mapping[str, StreamedHandler] | None = None,
        attached: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """`attached`: for a command, the fields of its result sent as lines of their own."""
        self.path = path
        self._handlers = dict(handlers)
        self._attached = dict(attached or {})
        self._streamed = dict(streamed or {})
        self._args = {name: dict(spec) for name, spec in {**BUILTIN_ARGS, **(args or {})}.items()}
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None  # of the socket file this server bound (and may remove)
        self.operations = Operations()

    async def check_free(self) -> None:
        """Raise `ControlError` when another daemon answers on the socket (called first, so a
        second daemon started by hand touches nothing of the running one)."""
        if (self.path.exists() or self.path.is_symlink()) and await _answers(self.path):
            raise ControlError(
                f"{self.path}: another pbx-agent daemon is already running and listening on "
                "this socket (systemctl status pbx-agent); this one stops and leaves it alone"
            )

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self.check_free()
        if self.path.exists() or self.path.is_symlink():
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
        self._inode = os.stat(self.path).st_ino

    async def stop(self) -> None:
        await self.operations.cancel_all()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        # Only the socket this server bound: never another daemon's (issue 16, defect 1).
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        except (OSError, TimeoutError) as exc:
            log.debug("control client went away", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except (ValueError, asyncio.LimitOverrunError):
            await _send(writer, _refused(f"malformed request: longer than {MAX_REQUEST} bytes"))
            return
        try:
            name, args, stream = self._parse(line)
        except BadRequest as exc:
            log.info("control request refused", reason=str(exc))
            await _send(writer, _refused(str(exc)))
            return
        if name == "follow":
            op = self.operations.get(int(args["id"]))
            if op is None:
                await _send(writer, _refused(f"no operation {args['id']} (pbx-agent operations)"))
                return
            await self._follow(writer, op, stream)
        elif name == "operations":
            result = [op.to_json() for op in self.operations.all()]
            await _send(writer, {"ok": True, "result": result})
        elif name in self._streamed:
            handler = self._streamed[name]
            op = self.operations.start(name, lambda p: self._outcome(name, handler(args, p)))
            await self._follow(writer, op, stream)
        else:
            reply = await self._outcome(name, self._handlers[name](args))
            await _send(writer, reply, self._attached.get(name, ()))

    async def _follow(self, writer: asyncio.StreamWriter, op: Operation, stream: bool) -> None:
        """Stream `op`'s progress (when asked), then its final reply. A client that goes away
        ends the streaming, never the operation."""
        if stream:
            await _send(writer, {"operation": {"id": op.id, "command": op.command}})
        sent_version, last_sent = -1, 0.0
        loop = asyncio.get_running_loop()
        while not op.task.done():
            await asyncio.wait({op.task}, timeout=PROGRESS_INTERVAL)
            if not stream or op.task.done():
                continue
            now = loop.time()
            if op.progress.version != sent_version or now - last_sent >= HEARTBEAT:
                sent_version, last_sent = op.progress.version, now
                await _send(writer, {"progress": op.progress.snapshot()})
        if stream and op.progress.version != sent_version:  # where it ended
            await _send(writer, {"progress": op.progress.snapshot()})
        reply = op.reply or _refused("the daemon stopped before the operation ended")
        await _send(writer, {**reply, "operation": op.id})

    async def _outcome(self, name: str, work: Awaitable[Any]) -> dict[str, Any]:
        """Run a command: its result, or a one-line refusal. A failure a technician can cause
        (a bad id, a folder that is not empty, the PBX down) is logged in one line; only an
        unexpected error is logged with its traceback."""
        try:
            return {"ok": True, "result": await work}
        except ConfigError as exc:
            log.info("control command refused", command=name, error=str(exc))
            return _refused(str(exc), "config")
        except (AgentError, DriverError) as exc:
            log.info("control command failed", command=name, error=str(exc))
            return _refused(str(exc))
        except TimeoutError:
            log.warning("control command timed out", command=name)
            return _refused(f"{name}: timed out")
        except OSError as exc:  # a file or folder the command was given or needs
            where = f"{exc.filename}: " if exc.filename else ""
            log.warning("control command failed", command=name, error=f"{where}{exc.strerror}")
            return _refused(f"{name} failed: {where}{exc.strerror or exc}")
        except Exception:  # one catch-all: a failing command never stops the daemon
            log.exception("control command failed", command=name)
            return _refused(
                f"{name} failed: internal error; the daemon's log (journalctl -u pbx-agent) "
                "has the details"
            )

    def _parse(self, line: bytes) -> tuple[str, dict[str, Any], bool]:
        """The command's name, checked arguments and whether the client follows progress, or
        `BadRequest`."""
        if not line.endswith(b"\n"):
            raise BadRequest("malformed request: expected one JSON line ending in a newline")
        request = bounded_json.loads(line, REQUEST_LIMITS, "malformed request", BadRequest)
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            raise BadRequest('malformed request: expected {"command": "...", "args": {...}}')
        name = request["command"]
        args = request.get("args", {})
        stream = request.get("stream", False)
        known = name in self._handlers or name in self._streamed or name in BUILTIN_COMMANDS
        if not known:
            raise BadRequest(f"unknown command {name[:64]!r}")
        if not isinstance(args, dict):
            raise BadRequest("malformed request: args must be an object")
        if not isinstance(stream, bool):
            raise BadRequest("malformed request: stream must be true or false")
        spec = self._args.get(name, {})
        for key, value in args.items():
            if key not in spec:
                raise BadRequest(f"{name} takes no argument {key[:64]!r}")
            spec[key].check(key, value)
        missing = [key for key, arg in spec.items() if arg.required and key not in args]
        if missing:
            raise BadRequest(f"{name} needs the argument {missing[0]!r}")
        return name, args, stream


BUILTIN_COMMANDS = ("follow", "operations")


def _refused(error: str, kind: str = "failed") -> dict[str, Any]:
    """A refusal: one line, short."""
    lines = error.strip().splitlines() or ["refused"]
    return {"ok": False, "error": lines[0][:500], "kind": kind}


async def _send(
    writer: asyncio.StreamWriter, message: dict[str, Any], attached: tuple[str, ...] = ()
) -> None:
    """One message; the `attached` fields of its result (those it has) after it, a line each."""
    result = message.get("result")
    parts: list[Any] = []
    if attached and isinstance(result, dict):
        names = [name for name in attached if name in result]
        parts = [result[name] for name in names]
        rest = {key: value for key, value in result.items() if key not in names}
        message = {**message, "result": rest, "attached": names}
    lines = [json.dumps(message, default=str).encode()]
    lines += [compact_json.dumps(part) for part in parts]
    writer.write(b"\n".join(lines) + b"\n")
    await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)


async def _answers(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
