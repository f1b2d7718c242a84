"""The contract between the simulator's server and its action handlers.

A handler receives the logged-in `Session`, the shared `SimContext` and the request, and
returns a `Reply`: the exact messages Asterisk would send, in order. Handlers build
messages with `response()` and `event()` so that `ActionID` lands where Asterisk puts it
(second line of a response; right after ``Event:`` in most list events, last in a few).
With no ActionID in the request, no ActionID appears anywhere (fixture fact 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from drivers.asterisk.sim.conffile import ConfFile, ConfigInvalid
from drivers.asterisk.wire import Message, get

if TYPE_CHECKING:  # pragma: no cover
    from drivers.asterisk.sim.conffile import ConfigStore

T = TypeVar("T")

# Which config files a reload of a module re-reads.
MODULE_FILES: dict[str, tuple[str, ...]] = {
    "res_pjsip.so": ("pjsip.conf",),
    "chan_pjsip.so": ("pjsip.conf",),
    "manager": ("manager.conf",),
    "app_voicemail.so": ("voicemail.conf",),
    "app_queue.so": ("queues.conf",),
    "chan_iax2.so": ("iax.conf",),
    "pbx_config.so": ("extensions.conf",),
}


@dataclass
class Session:
    """One TCP connection's login state.

    `read`/`write` are the manager.conf permission classes of the logged-in user
    (lower-case, e.g. {"system", "config"}); `events_on` reflects Login's ``Events:``.
    """

    username: str | None = None
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    events_on: bool = True
    challenge: str | None = None
    address: str = ""  # the client's IP address
    started: float = 0.0  # when the TCP connection opened

    @property
    def logged_in(self) -> bool:
        return self.username is not None


@dataclass
class Reply:
    """What the server sends for one request.

    Attributes:
        messages: the response and any list events, in order.
        delay: seconds to wait before sending (Asterisk delays a failed login by ~1 s).
        close: close the TCP connection after sending (failed login, Logoff).
        broadcast: unsolicited events sent afterwards to every session that wants events
            (e.g. ``Reload`` after a reload, ``Registry`` after PJSIPRegister).
    """

    messages: list[Message]
    delay: float = 0.0
    close: bool = False
    broadcast: list[Message] = field(default_factory=list)


@dataclass
class SimContext:
    """Everything handlers share: the office's config files and its live state.

    `config` is the `ConfigStore` over the office's `pbx-config/` directory. `live` holds the
    office's runtime state (registered contacts, trunk registrations, versions, clocks...):
    its type is owned by the module that loads the office; handlers read what they need.
    """

    config: ConfigStore
    live: Any
    system_name: str | None = None
    version: str = "22.10.1"
    ami_version: str = "11.0.0"
    scratch: Path | None = None
    not_built: tuple[str, ...] = ()  # modules the office's Asterisk build lacks
    crashed: bool = False
    manager_reloads: int = 0
    sessions: list[Session] = field(default_factory=list)  # every open AMI connection
    _loaded: dict[str, ConfFile] = field(default_factory=dict)
    _memo: dict[tuple[object, ...], tuple[tuple[ConfFile, ...], object]] = field(
        default_factory=dict
    )

    def loaded(self, filename: str) -> ConfFile:
        """The configuration the running PBX uses: read at start and at each reload of the
        module that owns the file, not at every change on disk (edits need a reload). A file
        Asterisk cannot parse at start-up leaves the module with nothing configured."""
        if filename not in self._loaded:
            try:
                self._loaded[filename] = self.config.read(filename)
            except ConfigInvalid:
                self._loaded[filename] = ConfFile(filename)
        return self._loaded[filename]

    def memo(
        self, key: tuple[object, ...], sources: tuple[ConfFile, ...], build: Callable[[], T]
    ) -> T:
        """`build()`, remembered while `sources` are the same parsed files: answers that
        depend only on configuration are computed once per version of it (a real PBX serves
        them from memory; the benchmark measures the agent, not this simulator)."""
        cached = self._memo.get(key)
        if (
            cached is not None
            and len(cached[0]) == len(sources)
            and all(a is b for a, b in zip(cached[0], sources, strict=True))
        ):
            return cast(T, cached[1])
        value = build()
        self._memo[key] = (sources, value)
        return value

    def load_all(self) -> None:
        """What the PBX reads at start: every module's configuration file that exists."""
        for filename in sorted({f for files in MODULE_FILES.values() for f in files}):
            try:
                self.loaded(filename)
            except FileNotFoundError:
                continue

    def restarted(self) -> None:
        """A fresh start: every module loads what is on disk now."""
        self._loaded.clear()

    def reloaded(self, module: str) -> None:
        """Re-read what `module` reads (``All``: everything). A file that cannot be parsed
        now keeps the objects of the last good load, and the reload still "succeeds"
        (fixture fact 31)."""
        filenames = list(self._loaded) if module == "All" else MODULE_FILES.get(module, ())
        for filename in filenames:
            try:
                self._loaded[filename] = self.config.read(filename)
            except ConfigInvalid:
                continue
            except FileNotFoundError:
                self._loaded.pop(filename, None)

    def unsolicited(self, name: str, fields: Iterable[tuple[str, str]]) -> Message:
        """An unsolicited event as Asterisk broadcasts it: Privilege, then SystemName."""
        head: Message = [("Event", name), ("Privilege", "system,all")]
        if self.system_name:
            head.append(("SystemName", self.system_name))
        return head + list(fields)


Handler = Callable[[SimContext, Session, Message], Reply]

# Action name (lower-case) -> handler. Filled by the handler modules via `action()`.
HANDLERS: dict[str, Handler] = {}


def action(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for one or more action names (matched case-insensitively)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            HANDLERS[name.lower()] = handler
        return handler

    return register


def action_id(request: Message) -> str | None:
    return get(request, "ActionID")


def response(
    request: Message, status: str = "Success", fields: Iterable[tuple[str, str]] = ()
) -> Message:
    """``Response: <status>``, then ``ActionID`` when the request had one, then `fields`."""
    msg: Message = [("Response", status)]
    aid = action_id(request)
    if aid is not None:
        msg.append(("ActionID", aid))
    msg.extend(fields)
    return msg


def error(request: Message, text: str) -> Message:
    return response(request, "Error", [("Message", text)])


def event(
    request: Message | None,
    name: str,
    fields: Iterable[tuple[str, str]] = (),
    *,
    action_id_last: bool = False,
) -> Message:
    """``Event: <name>``, with the request's ActionID right after it or, if `action_id_last`,
    after every field (QueueParams/QueueMember/QueueSummary put it last)."""
    msg: Message = [("Event", name)]
    aid = action_id(request) if request is not None else None
    if aid is not None and not action_id_last:
        msg.append(("ActionID", aid))
    msg.extend(fields)
    if aid is not None and action_id_last:
        msg.append(("ActionID", aid))
    return msg


def list_reply(
    request: Message,
    start_message: str,
    items: list[Message],
    complete_event: str,
    *,
    list_items: int | None = None,
    complete_extra: Iterable[tuple[str, str]] = (),
) -> Reply:
    """The standard list framing: start response, items, ``XxxComplete`` with ``ListItems``."""
    start = response(request, "Success", [("EventList", "start"), ("Message", start_message)])
    count = len(items) if list_items is None else list_items
    done = event(
        request,
        complete_event,
        [("EventList", "Complete"), ("ListItems", str(count)), *complete_extra],
    )
    return Reply([start, *items, done])


CliHandler = Callable[[SimContext, list[str]], list[str] | None]
"""A CLI command for ``Action: Command``: gets the command's words, returns the output lines
(one ``Output:`` header each), or None when the words do not match (-> "No such command")."""

# First words of a CLI command (lower-case, space-joined, e.g. "pjsip show endpoints") -> handler.
CLI_COMMANDS: dict[str, CliHandler] = {}


def cli(*prefixes: str) -> Callable[[CliHandler], CliHandler]:
    """Register a CLI command under one or more word prefixes; the longest prefix wins."""

    def register(handler: CliHandler) -> CliHandler:
        for prefix in prefixes:
            CLI_COMMANDS[" ".join(prefix.lower().split())] = handler
        return handler

    return register
