"""AMI client: panoramisk's actions (request encoding, ActionIDs) over a reader of our own that
streams each answer into the parser that wants it (`ami_stream`), with the connection policy
the field needs (a timeout on every action, a safety limit on every answer, list completion
on ``EventList: Complete``, a supervised reconnect with back-off).

Answers are read as they arrive: each complete line of a message goes at once to the
`wire.AnswerReader` of the action it answers (found by its ActionID), so a 100 MB GetConfig is
parsed while it streams and never held whole, and memory follows what the parsers keep, not
the size of the largest answer. Actions may be pipelined: Asterisk answers one session's
actions in order, and the reader parses one answer while the PBX works on the next.

Results of `action`/`list_action` are `wire.Message` (ordered key/value pairs), so the parsers
never see panoramisk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar

import structlog

from drivers.asterisk import wire
from drivers.asterisk.ami_stream import StreamProtocol
from drivers.asterisk.answers import Messages
from drivers.asterisk.settings import AmiSettings
from drivers.errors import (
    CommandError,
    DriverAuthError,
    DriverConnectionError,
    DriverError,
    PermissionDenied,
)
from drivers.link import SupervisedLink

log = structlog.get_logger(__name__)

EventCallback = Callable[[wire.Message], None]
R = TypeVar("R", bound=wire.AnswerReader)

class AmiClient(SupervisedLink):
    """One supervised AMI session (`SupervisedLink`: the first `connect()` raises if it fails,
    a lost connection is re-established in the background with back-off, calls made meanwhile
    fail fast). Unsolicited events go to `on_event`.
    """

    label: ClassVar[str] = "AMI"
    interface: ClassVar[str] = "the AMI"

    def __init__(self, settings: AmiSettings, *, on_event: EventCallback | None = None) -> None:
        super().__init__(settings)
        self.settings = settings
        self._on_event = on_event
        self._protocol: StreamProtocol | None = None
        self.api_version: str | None = None

    async def action(
        self, name: str, *, keep: Iterable[str] | None = None, **headers: str
    ) -> wire.Message:
        """Send one action and return its response; raises on ``Response: Error``.
        `keep` names the fields wanted (as Asterisk spells them; matched without case); the
        others are dropped as they arrive."""
        answer = await self.read(name, Messages(keep), **headers)
        return answer.messages[0]

    async def list_action(
        self,
        name: str,
        *,
        keep: Iterable[str] | None = None,
        each: Callable[[wire.Fields], None] | None = None,
        **headers: str,
    ) -> list[wire.Message]:
        """Send a list action; return the response followed by every event of the list (with
        `each`, only the response: each event goes to `each` as soon as it is read)."""
        return (await self.read(name, Messages(keep, each), **headers)).messages

    async def read(self, name: str, reader: R, **headers: str) -> R:
        """Send an action and stream its answer into `reader` (a parser that builds its result
        as the lines arrive); return the reader. Raises on ``Response: Error``."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise DriverConnectionError(
                f"not connected to the AMI at {self.where}"
                + (f" (last error: {self.last_error})" if self.last_error else "")
            )
        future = protocol.request(
            {"Action": name, **headers}, reader, self.settings.action_timeout
        )
        try:
            await future
        except asyncio.CancelledError:
            protocol.forget(future)
            raise
        _raise_for_error(name, reader.response)
        return reader

    async def command(self, cli: str) -> list[str]:
        """Run a CLI command; one string per output line (fact 9: one ``Output:`` per line)."""
        message = await self.action("Command", Command=cli)
        return wire.get_all(message, "Output")

    def dispatch(self, message: wire.Message) -> None:
        """Called by the protocol for every unsolicited event."""
        if self._on_event is not None:
            try:
                self._on_event(message)
            except Exception:  # a faulty subscriber must not break the connection
                log.exception("AMI event callback failed")

    def too_large(self, action: str) -> str:
        limit = self.settings.max_answer_bytes
        return (
            f"{action}: the answer from {self.where} passed the safety limit of "
            f"{limit / 1048576:g} MiB (pbx.ami.max_answer_mb): not read; raise the limit "
            "if this PBX really is that large"
        )

    # -- internals ---------------------------------------------------------------------

    async def _handshake(self) -> StreamProtocol:
        s = self.settings
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: StreamProtocol(self), s.host, s.port)
        self._opening = protocol
        self.api_version = await protocol.banner
        login = {"Action": "Login", "Username": s.username, "Secret": s.secret}
        reader = await protocol.request(login, Messages(), s.connect_timeout)
        message = reader.response
        if (wire.get(message, "Response") or "").lower() != "success":
            reason = wire.get(message, "Message") or "login refused"
            raise DriverAuthError(f"AMI at {self.where} refused user {s.username!r}: {reason}")
        return protocol

    async def _goodbye(self, protocol: StreamProtocol) -> None:
        with contextlib.suppress(DriverError):
            await protocol.request({"Action": "Logoff"}, Messages(), 1.0)


def _raise_for_error(action: str, message: wire.Message) -> None:
    if (wire.get(message, "Response") or "").lower() != "error":
        return
    reason = (wire.get(message, "Message") or "error").strip()
    if reason.lower() == "permission denied":
        raise PermissionDenied(action, reason)
    raise CommandError(action, reason)
