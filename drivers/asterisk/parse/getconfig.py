"""GetConfig answers -> configuration sections, read as they stream (`ConfigReader`) or from
a whole recorded message (`parse_get_config`). Pure.

GetConfig expands templates (fixture fact 12): each section lists inherited options first,
then its own, so the last value of an option is the effective one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress, islice
from operator import itemgetter, not_
from typing import Any

from drivers.asterisk import wire
from drivers.errors import ParseError


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    options: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The effective (last) value of `key`."""
        value = default
        for k, v in self.options:
            if k == key:
                value = v
        return value

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.options if k == key]


def parse_get_config(message: wire.Message) -> list[Section]:
    """The sections of one GetConfig response (a whole message), in order; values as sent."""
    reader = ConfigReader()
    reader.feed_pairs(message)
    reader.end_message()
    return reader.sections


Options = tuple[tuple[str, str], ...]
_TEMPLATE_LINES = ("IsTemplate-", "Templates-")
_VALUE = itemgetter(slice(8, None))  # "000012: allow=g722" -> "allow=g722"
_VALUE20 = itemgetter(slice(20, None))  # "Line-000003-000012: allow=g722" -> "allow=g722"


def _category_lines(text: str) -> list[int]:
    """Indices of the lines of `text` (complete lines) that are ``Category-`` lines."""
    starts: list[int] = []
    line, at = 0, 0  # the line starting at character `at` is line number `line`
    if text.startswith("Category-"):
        starts.append(0)
    found = text.find("\r\nCategory-")
    while found >= 0:
        line += text.count("\r\n", at, found + 2)
        at = found + 2
        starts.append(line)
        found = text.find("\r\nCategory-", at)
    return starts
_DROPPED: tuple[str, ...] = ()  # the pair of a line `keep` refuses (falsy, like a miss)
# An option whose lines missed the shared ones this often has a value per section (caller ID,
# AOR and auth names): its lines are no longer remembered.
MAX_MISSES = 512


class ConfigReader:
    """GetConfig's answer read as it streams (a `wire.AnswerReader`): each section is built
    as soon as its lines are in and handed to `take` (or kept in `sections`), so the answer is
    never held whole. Asterisk writes a category's lines right after it (``Category-000003``,
    then ``Line-000003-000000`` ...); a line outside its category is refused.

    An option line that many sections share (``context=from-internal``) becomes one tuple
    shared by all of them: an office of 10,000 endpoints repeats most of its options.
    `keep` says which options are kept, by name (None: every one); it is asked once per
    distinct line. Sections go to `sections`, or to a subclass's `_take`.
    """

    def __init__(self, keep: Callable[[str], bool] | None = None) -> None:
        self.sections: list[Section] = []
        self.response: wire.Message = []
        self._keep = keep
        self._name: str | None = None  # the category in progress
        self._prefix = ""  # its lines' start, ``\r\nLine-000003-``
        self._pairs: list[tuple[str, str]] = []
        self._shared: dict[str, Any] = {}  # line text -> its shared pair, or _DROPPED
        self._misses: dict[str, int] = {}  # option -> lines of it not found in _shared
        self._options: dict[str, tuple[str, bool]] = {}  # as written -> (name, kept?)
        # One string for one text: a section's name, its AOR, auth and caller ID number
        # ("100001" four times) are one object
        self._strings: dict[str, str] = {}

    def feed(self, text: str) -> None:
        """Complete CRLF-ended lines of the answer, in any number of pieces.

        Asterisk numbers with ``%06d`` (`action_getconfig`), so each option's text starts 20
        characters into its line: the values of a whole piece are cut and looked up in a
        few C-level passes, and only each category costs Python work. Anything else (a
        category numbered past 999999, lines out of order) is read category by category."""
        if "\n\r\n" in text:  # a value ending in a stray newline (fact 3)
            text = "\r\n".join(wire.lines(text)) + "\r\n"
        lines = text.split("\r\n")
        lines.pop()
        starts = _category_lines(text)
        if not starts:
            self._lines("\r\n" + text)
            return
        if starts[0]:  # the category in progress goes on (or the response's own lines)
            self._lines("\r\n" + "\r\n".join(lines[: starts[0]]) + "\r\n")
        values = list(map(_VALUE20, lines))
        pairs: list[Any] = list(map(self._shared.get, values))
        ends = [*starts[1:], len(lines)]
        for start, end in zip(starts, ends, strict=True):
            head = lines[start]
            number, sep, name = head[9:].partition(": ")
            if len(number) != 6 or not sep or not number.isdigit():
                self._by_category("\r\n".join(lines[start:]) + "\r\n")
                return
            if self._name is not None:
                self._take(self._name, tuple(self._pairs))
            name = self._strings.setdefault(name, name)
            first = start + 1
            while first < end and lines[first].startswith(_TEMPLATE_LINES):
                first += 1
            prefix = f"Line-{number}-"
            count = end - first
            if count and not (
                lines[first].startswith(prefix)
                and lines[end - 1].startswith(prefix)
                and lines[end - 1][12:18] == f"{count - 1:06d}"
            ):  # not laid out as Asterisk lays it out: this category line by line
                self._name, self._prefix, self._pairs = name, f"\r\n{prefix}", []
                self._lines("\r\n" + "\r\n".join(lines[first:end]) + "\r\n")
                continue
            section = pairs[first:end]
            if not all(section):
                section = self._complete(section, values, first)
            self._name, self._prefix, self._pairs = name, f"\r\n{prefix}", section

    def _by_category(self, text: str) -> None:
        """`text` (complete lines from a category line on) read category by category."""
        pieces = ("\r\n" + text).split("\r\nCategory-")
        if len(pieces[0]) > 2:
            self._lines(pieces[0])
        for piece in pieces[1:]:
            if self._name is not None:
                self._take(self._name, tuple(self._pairs))
            head, _, body = piece.partition("\r\n")
            number, sep, name = head.partition(": ")
            if not sep or not number.isdigit():
                raise ParseError(f"GetConfig: unreadable category line {head[:80]!r}")
            name = self._strings.setdefault(name, name)
            self._name, self._prefix, self._pairs = name, f"\r\nLine-{number}-", []
            if body:
                self._lines("\r\n" + body)

    def _complete(self, pairs: list[Any], values: list[str], offset: int) -> list[Any]:
        """`pairs` with the lines not seen before made (None) and those not kept dropped."""
        dropped = False
        for index in compress(range(len(pairs)), map(not_, pairs)):
            pair = pairs[index]
            if pair is None:
                pair = pairs[index] = self._pair(values[offset + index])
            dropped = dropped or pair is _DROPPED
        return [pair for pair in pairs if pair] if dropped else pairs

    def feed_pairs(self, message: wire.Message) -> None:
        """A message already split into pairs (recorded transcripts, tests)."""
        self.feed("".join(f"{k}: {v}\r\n" if k else f"{v}\r\n" for k, v in message))

    def end_message(self) -> bool:
        if self._name is not None:
            self._take(self._name, tuple(self._pairs))
        self._name, self._pairs = None, []
        self._shared, self._misses, self._strings, self._options = {}, {}, {}, {}
        return True

    def _take(self, name: str, options: Options) -> None:
        """A complete section (subclasses turn it into what they keep)."""
        self.sections.append(Section(name, options))

    def _lines(self, body: str) -> None:
        """CRLF-started lines: a category's (its ``IsTemplate``/``Templates`` lines, then
        its options ``Line-NNNNNN-MMMMMM: name=value``), or the response's own before the
        first category. Asterisk numbers with ``%06d`` (`action_getconfig`): a category's
        options are the pieces between its ``Line-NNNNNN-`` starts, each value 8 characters
        into its piece."""
        if self._name is None:
            for line in body.split("\r\n")[1:]:
                self._other(line)
            return
        pieces = body.split(self._prefix)
        if len(pieces[0]) > 2:
            for line in pieces[0].split("\r\n")[1:]:
                self._other(line)
        if len(pieces) == 1:
            return
        if body.count("\r\nLine-") != len(pieces) - 1:
            raise ParseError(f"GetConfig: an option line outside its category {self._name!r}")
        last = pieces[-1]
        end = last.find("\r\n")
        if end >= 0:
            if end + 2 < len(last):  # lines after the options: not Asterisk's, kept aside
                for line in last[end:].split("\r\n")[1:]:
                    self._other(line)
            pieces[-1] = last[:end]
        values = list(map(_VALUE, islice(pieces, 1, None)))
        pairs: list[Any] = list(map(self._shared.get, values))
        if not all(pairs):  # lines not seen before (None), or not kept (_DROPPED)
            pairs = self._complete(pairs, values, 0)
        if self._pairs:
            self._pairs += pairs
        else:
            self._pairs = pairs

    def _other(self, line: str) -> None:
        """A line that is not an option: the response's own, kept (templates' are not)."""
        if line and not line.startswith(_TEMPLATE_LINES):
            key, sep, value = line.partition(": ")
            self.response.append((key, value) if sep else ("", line))

    def _pair(self, text: str) -> Any:
        """The pair for one option line (`_DROPPED` when `keep` refuses it), remembered for
        the next section that has the same line, unless the option's values seldom repeat
        (a caller ID, an AOR name: remembering those would only cost memory)."""
        option, sep, value = text.partition("=")
        if not sep:
            raise ParseError(f"GetConfig: an option line without '=': {text[:80]!r}")
        known = self._options.get(option)
        if known is None:  # first line of this option: its name, and whether it is kept
            name = sys.intern(option.strip())
            known = self._options[option] = (name, self._keep is None or self._keep(name))
        name, kept = known
        pair: Any = _DROPPED
        if kept:
            value = value.strip()
            pair = (name, self._strings.setdefault(value, value))
        misses = self._misses.get(name, 0)
        if misses < MAX_MISSES:
            self._misses[name] = misses + 1
            self._shared[text] = pair
        return pair
