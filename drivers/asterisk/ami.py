"""AMI client on panoramisk: its protocol, message parser, actions and ActionID correlation,
with the connection policy the field needs on top (timeouts on every call, list completion
on ``EventList: Complete``, byte-level framing with a bounded buffer, and a supervised
reconnect loop with exponential back-off and jitter).

Results are `wire.Message` (ordered key/value pairs), so the parsers never see panoramisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Any, ClassVar

import structlog
from panoramisk.actions import Action as _PanoramiskAction
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message as _PanoramiskMessage

from drivers.asterisk import wire
from drivers.asterisk.settings import AmiSettings
from drivers.errors import (
    CommandError,
    DriverAuthError,
    DriverConnectionError,
    DriverError,
    DriverTimeout,
    PermissionDenied,
)
from drivers.link import SupervisedLink

log = structlog.get_logger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_MESSAGE = 8 * 1024 * 1024

EventCallback = Callable[[wire.Message], None]


Keep = Callable[[str, str], bool]
"""A filter on (header, value) applied to each message as it arrives, so a large answer
never sits in memory whole: what it rejects is dropped at once (framing headers stay)."""

FRAMING = frozenset({"response", "event", "eventlist", "message", "actionid", "listitems"})


class _ListAction(_PanoramiskAction):  # type: ignore[misc]
    """A panoramisk action that completes as Asterisk documents it: a list ends with the event
    carrying ``EventList: Complete`` (and our ActionID), whatever that event is called."""

    keep: Keep | None = None

    @property
    def completed(self) -> bool:
        last = self.responses[-1]
        if self.multi:
            return str(last.get("eventlist", "")).lower() == "complete"
        return True


_ACTION_ID = re.compile(r"^ActionID: (.*)$", re.MULTILINE)


def _message(text: str, keep: Keep | None) -> Any:
    """One message for panoramisk's correlation, carrying its fields as ordered pairs.

    panoramisk's own parser builds a case-insensitive dict of every header in pure Python,
    which dominates the cost of large lists; here its Message holds only the framing headers
    it needs (Response/Event/EventList/ActionID/Message/ListItems), and the fields travel in
    `pairs`, already filtered by `keep` (a 30-field event reduced to 3 costs a tenth).
    Returns None for a block with neither Response nor Event (garbage).
    """
    framing: dict[str, Any] = {}
    pairs: wire.Message = []
    for line in text.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep:
                continue
        value = value.rstrip("\n")  # fact 3: a value may end with a bare newline
        lowered = key.lower()
        if lowered in FRAMING:
            if key in framing:
                existing = framing[key]
                framing[key] = (
                    [*existing, value] if isinstance(existing, list) else [existing, value]
                )
            else:
                framing[key] = value
        elif keep is not None and not keep(key, value):
            continue
        pairs.append((key, value))
    if "Response" not in framing and "Event" not in framing:
        return None
    message = _PanoramiskMessage(framing)
    message.pairs = pairs
    return message


def _to_pairs(message: Any) -> wire.Message:
    pairs = getattr(message, "pairs", None)
    if isinstance(pairs, list):
        return pairs
    result: wire.Message = []
    for key, value in message.items():
        if key == "content" and not value:  # panoramisk stores a body slot as a header
            continue
        values = value if isinstance(value, list) else [value]
        result.extend((key, str(v).rstrip("\n")) for v in values)
    return result


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with byte-level framing: bytes are buffered until ``\\r\\n\\r\\n``
    and decoded per message, so a UTF-8 character split across TCP chunks is never lost, and
    the buffer is bounded against a peer that never ends a message."""

    def __init__(self, client: AmiClient) -> None:
        super().__init__()
        self._client = client
        self._splitter = wire.Splitter(MAX_MESSAGE)
        self._head = bytearray()
        self.banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.factory = self._client
        self.encoding = "utf-8"

    def data_received(self, data: bytes) -> None:
        if not self.banner.done():
            self._head += data
            end = self._head.find(b"\r\n")
            if end < 0:
                if len(self._head) > 1024:
                    self._fail(DriverConnectionError("the peer sent no AMI greeting"))
                return
            line = self._head[:end].decode("utf-8", "replace")
            data = bytes(self._head[end + 2 :])
            self._head.clear()
            if not line.startswith(BANNER_PREFIX):
                self._fail(DriverConnectionError(f"not an AMI server (greeting {line[:60]!r})"))
                return
            self.version = line[len(BANNER_PREFIX) :].strip()
            self.banner.set_result(self.version)
        try:
            blocks = list(self._splitter.feed(data))
        except wire.FramingError as exc:
            self._fail(DriverConnectionError(str(exc)))
            return
        for block in blocks:
            text = block.decode("utf-8", "replace").strip()
            found = _ACTION_ID.search(text)
            action = self.responses.get(found.group(1).strip()) if found else None
            message = _message(text, action.keep if action is not None else None)
            if message is None:
                log.debug("ignored a block that is not an AMI message", size=len(block))
                continue
            self.handle_message(message)

    def _fail(self, exc: DriverError) -> None:
        if not self.banner.done():
            self.banner.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        error = DriverConnectionError(
            f"AMI connection lost: {exc}" if isinstance(exc, Exception) else "AMI connection lost"
        )
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(error)
        self.responses.clear()
        with contextlib.suppress(Exception):
            self.transport.close()  # also reached on a Shutdown event, with the socket open
        if not self.banner.done():
            self.banner.set_exception(error)
        self.closed = True
        self._client._lost(self)


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
        self._protocol: _Protocol | None = None
        self.api_version: str | None = None
        # The attributes panoramisk's protocol expects of its factory.
        self.forgetable_actions: tuple[str, ...] = ()
        self.awaiting_actions: list[Any] = []

    async def action(self, name: str, *, keep: Keep | None = None, **headers: str) -> wire.Message:
        """Send one action and return its response; raises on ``Response: Error``."""
        result = await self._call({"Action": name, **headers}, keep)
        if isinstance(result, list):  # a list answer to a non-list call: keep the response
            result = result[0]
        message = _to_pairs(result)
        _raise_for_error(name, message)
        return message

    async def list_action(
        self, name: str, *, keep: Keep | None = None, **headers: str
    ) -> list[wire.Message]:
        """Send a list action; return the response followed by every event of the list."""
        result = await self._call({"Action": name, **headers}, keep)
        messages = [_to_pairs(m) for m in (result if isinstance(result, list) else [result])]
        _raise_for_error(name, messages[0])
        return messages

    async def command(self, cli: str) -> list[str]:
        """Run a CLI command; one string per output line (fact 9: one ``Output:`` per line)."""
        message = await self.action("Command", Command=cli)
        return wire.get_all(message, "Output")

    def dispatch(self, message: Any) -> None:
        """Called by panoramisk's protocol for every unsolicited event."""
        if self._on_event is not None:
            try:
                self._on_event(_to_pairs(message))
            except Exception:  # a faulty subscriber must not break the connection
                log.exception("AMI event callback failed")

    # -- internals ---------------------------------------------------------------------

    async def _call(self, headers: dict[str, str], keep: Keep | None = None) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise DriverConnectionError(
                f"not connected to the AMI at {self.where}"
                + (f" (last error: {self.last_error})" if self.last_error else "")
            )
        try:
            return await self._send(
                protocol, headers, limit=self.settings.action_timeout, keep=keep
            )
        except DriverTimeout:
            # A PBX that stops answering mid-session gets a fresh connection.
            protocol.transport.close()
            raise

    async def _send(
        self,
        protocol: _Protocol,
        headers: dict[str, str],
        *,
        limit: float,
        keep: Keep | None = None,
    ) -> Any:
        action = _ListAction(headers)
        action.keep = keep
        future = protocol.send(action, as_list=None)  # None: detect lists from the answer
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError as exc:
            protocol.responses.pop(action.id, None)
            raise DriverTimeout(
                f"{headers['Action']}: no complete answer from {self.where} within {limit:g} s"
            ) from exc

    async def _handshake(self) -> _Protocol:
        s = self.settings
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _Protocol(self), s.host, s.port)
        self._opening = protocol
        self.api_version = await protocol.banner
        login = _ListAction({"Action": "Login", "Username": s.username, "Secret": s.secret})
        message = _to_pairs(await protocol.send(login, as_list=False))
        if (wire.get(message, "Response") or "").lower() != "success":
            reason = wire.get(message, "Message") or "login refused"
            raise DriverAuthError(f"AMI at {self.where} refused user {s.username!r}: {reason}")
        return protocol

    async def _goodbye(self, protocol: _Protocol) -> None:
        await self._send(protocol, {"Action": "Logoff"}, limit=1.0)


def _raise_for_error(action: str, message: wire.Message) -> None:
    if (wire.get(message, "Response") or "").lower() != "error":
        return
    reason = (wire.get(message, "Message") or "error").strip()
    if reason.lower() == "permission denied":
        raise PermissionDenied(action, reason)
    raise CommandError(action, reason)
