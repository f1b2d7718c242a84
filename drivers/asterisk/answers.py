"""Reading one AMI answer into ordered pairs (`Messages`, the generic `wire.AnswerReader`):
list completion on ``EventList: Complete`` whatever the event is called, fields read out by
name, events handed to a parser as they are read."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from drivers.asterisk import wire

# Headers kept whatever a `keep` set says: the framing of responses and lists.
FRAMING = frozenset({"response", "event", "eventlist", "message", "actionid", "listitems"})


class Messages:
    """The generic `wire.AnswerReader`: the answer's messages as ordered pairs. With `keep`
    (field names as Asterisk spells them; matched without case), only those fields and the
    framing are read out of each message. With `each`, every event after the response goes
    to `each` as it is read, as `wire.Fields`, instead of being kept: a parser building its
    items as the list streams in. The answer is a list when its response says
    ``EventList: start`` (or "will follow", as older Asterisks wrote), and it ends with the
    message carrying ``EventList: Complete``, whatever that event is called."""

    def __init__(
        self,
        keep: Iterable[str] | None = None,
        each: Callable[[wire.Fields], None] | None = None,
    ) -> None:
        self.messages: list[wire.Message] = []
        self._fields = None if keep is None else _fields_pattern(keep)
        self._wanted = wire.markers(("Event", *keep)) if keep is not None else None
        self._each = each
        self._text: list[str] = []  # the message in progress
        self._list = False

    @property
    def response(self) -> wire.Message:
        return self.messages[0] if self.messages else []

    @property
    def events(self) -> bool:
        """Whether `feed_events` may be used: a list in progress, its events going to `each`."""
        return self._list and self._each is not None

    def feed(self, text: str) -> None:
        self._text.append(text)

    def end_message(self) -> bool:
        text = "".join(self._text)
        self._text.clear()
        message = self._fields.findall(text) if self._fields else wire.parse_lines(text)
        if not message:
            return False
        marker = ""
        for key, value in message:
            if key == "EventList" or key.lower() == "eventlist":
                marker = value.lower()
                break
        if not self.messages:
            self.messages.append(message)
            self._list = marker == "start" or "will follow" in (
                wire.get(message, "Message") or ""
            )
            return not self._list
        if self._each is None:
            self.messages.append(message)
        else:
            self._each(wire.fields(message))
        return marker == "complete"

    def feed_events(self, texts: list[str]) -> None:
        """Whole events of the list in progress, none of them its last (the protocol cuts a
        run of them out of what arrived): each field found by its spelling."""
        each, wanted = self._each, self._wanted
        if each is None or wanted is None:
            for text in texts:
                self.feed(text + "\r\n")
                self.end_message()
            return
        for text in texts:
            found = wire.pick(text, wanted)
            if found is None:  # another spelling: read it line by line
                found = wire.fields(self._fields.findall(text) if self._fields else [])
            each(found)


@functools.lru_cache(maxsize=64)
def _pattern(names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(re.escape(name) for name in names))
    # `[^\r\n]*` also leaves out the stray newline a value may end with (fact 3)
    return re.compile(rf"^({alternatives}): ?([^\r\n]*)", re.MULTILINE | re.IGNORECASE)


def _fields_pattern(keep: Iterable[str]) -> re.Pattern[str]:
    return _pattern(frozenset(name.lower() for name in keep) | FRAMING)
