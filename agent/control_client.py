"""The CLI's side of the control socket (blocking): one request and its reply, or a long
operation followed to its end through its progress lines (`agent.control` describes the
protocol)."""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from agent.errors import CommandFailed, ControlError, DaemonNotRunning

# A reply is one line, read whole. The largest is a count's report, about 0.7 KB per seat (6.6 MB
# at 10,000 extensions, 33 MB at 50,000): a bound, not a size any site should reach.
MAX_REPLY = 256 * 1024 * 1024
# A command's answer, at most (a count of a 50,000-extension PBX takes seconds, not minutes).
COMMAND_TIMEOUT = 120.0
# A followed operation sends a line at least every few seconds (agent.control.HEARTBEAT):
# this long without one, the daemon is taken as gone. There is no limit on the whole.
FOLLOW_SILENCE = 60.0


class Encoded(bytes):
    """A field of a result as the daemon encoded it (one line of compact JSON, keys sorted:
    what ``--json`` prints), left undecoded."""


def request(
    path: Path,
    command: str,
    args: Mapping[str, Any] | None = None,
    *,
    timeout: float = 10.0,
    undecoded: Collection[str] = (),
) -> Any:
    """Send one request, return the result or raise. The fields named in `undecoded` that the
    daemon sends as lines of their own (`agent.control`) come back as `Encoded`.

    Raises `DaemonNotRunning` when nothing listens on `path`, `CommandFailed` when the daemon
    refused or the command failed, `ControlError` otherwise.
    """
    silent = f"the daemon did not answer within {timeout:g} s"
    with _connected(path, timeout) as sock, sock.makefile("rb") as stream:
        _send(sock, command, args, stream=False)
        reply = _read(stream, silent)
        if reply is None:
            raise ControlError("the daemon closed the connection without answering")
        for name in reply.get("attached") or ():
            if not isinstance(reply.get("result"), dict) or not isinstance(name, str):
                raise ControlError("the daemon sent a malformed reply")
            line = _read_line(stream, silent)
            if not line.endswith(b"\n"):
                raise ControlError("the daemon closed the connection in the middle of its reply")
            part = Encoded(line[:-1]) if name in undecoded else _decode(line)
            reply["result"][name] = part
    return _result(reply)


def follow(
    path: Path,
    command: str,
    args: Mapping[str, Any] | None = None,
    *,
    on_operation: Callable[[Mapping[str, Any]], None] = lambda op: None,
    on_progress: Callable[[Mapping[str, Any]], None] = lambda snapshot: None,
) -> Any:
    """Ask for a long operation (or `follow` one by id) and follow it to its end: its id goes
    to `on_operation`, every progress line to `on_progress`; the final result is returned or
    `CommandFailed` raised. No limit on the whole: only a daemon silent for
    `FOLLOW_SILENCE` s, or one that goes away, ends it early (`ControlError`)."""
    with _connected(path, FOLLOW_SILENCE) as sock, sock.makefile("rb") as stream:
        _send(sock, command, args, stream=True)
        silent = f"the daemon sent nothing for {FOLLOW_SILENCE:g} s while {command} ran"
        while True:
            message = _read(stream, silent)
            if message is None:
                raise ControlError(
                    f"the daemon went away before {command} ended (stopped or restarted?)"
                )
            if "operation" in message and "ok" not in message:
                on_operation(message["operation"])
            elif "progress" in message:
                on_progress(message["progress"])
            else:
                return _result(message)


@contextlib.contextmanager
def _connected(path: Path, timeout: float) -> Iterator[socket.socket]:
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
        yield sock


def _send(
    sock: socket.socket, command: str, args: Mapping[str, Any] | None, *, stream: bool
) -> None:
    message: dict[str, Any] = {"command": command, "args": dict(args or {})}
    if stream:
        message["stream"] = True
    try:
        sock.sendall(json.dumps(message).encode() + b"\n")
    except OSError as exc:
        raise ControlError(f"control socket error: {exc.strerror or exc}") from exc


def _read(stream: BinaryIO, timeout_message: str) -> dict[str, Any] | None:
    """The next message, or None at the end of the connection."""
    line = _read_line(stream, timeout_message)
    if not line:
        return None
    message = _decode(line)
    if not isinstance(message, dict):
        raise ControlError("the daemon sent a malformed reply")
    return message


def _read_line(stream: BinaryIO, timeout_message: str) -> bytes:
    try:
        line = stream.readline(MAX_REPLY + 1)
    except TimeoutError as exc:
        raise ControlError(timeout_message) from exc
    except OSError as exc:
        raise ControlError(f"control socket error: {exc.strerror or exc}") from exc
    if len(line) > MAX_REPLY:
        raise ControlError(f"the daemon's reply is longer than {MAX_REPLY >> 20} MiB: not read")
    return line


def _decode(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise ControlError("the daemon sent a malformed reply") from exc


def _result(reply: Mapping[str, Any]) -> Any:
    if not reply.get("ok"):
        error = reply.get("error")
        raise CommandFailed(str(error or "the daemon refused the request"), reply.get("kind"))
    return reply.get("result")
