"""GetConfig answers -> configuration sections -> endpoints, AORs, trunk pieces. Pure.

GetConfig expands templates (fixture fact 12): each section lists inherited options first,
then its own, so the last value of an option is the effective one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import compress, islice
from operator import itemgetter, not_
from typing import Any

from drivers.asterisk import wire
from drivers.errors import ParseError
from drivers.models import Aor, Endpoint

_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<number>[^>]*)>\s*$')


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


def split_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    if "," not in value:  # the usual case: one name
        value = value.strip()
        return (value,) if value else ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _names_any(value: str | None) -> bool:
    """`bool(split_list(value))`, without making the list."""
    return value is not None and bool(value.replace(",", "").strip())


def parse_callerid(value: str | None) -> tuple[str | None, str | None]:
    """`"Bob Martinez" <102>` -> ("Bob Martinez", "102"); a bare number is a number."""
    if not value or value.strip() in ("", "<unknown>"):
        return None, None
    match = _CALLERID.match(value)
    if match is None:
        text = value.strip().strip('"')
        return (None, text) if text.replace("+", "").isdigit() else (text or None, None)
    name = match.group("qname") if match.group("qname") is not None else match.group("name")
    return (name or "").strip() or None, match.group("number").strip() or None


def _max_contacts(name: str, raw: str | None) -> int:
    raw = raw or "0"
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise ParseError(f"AOR {name}: max_contacts {raw!r} is not a number") from exc


def aor_from_options(name: str, options: Options, values: dict[str, str]) -> Aor:
    """`values`: `options` as a dict (the last value of each)."""
    contacts: tuple[str, ...] = ()
    if "contact" in values:
        contacts = tuple(c for k, v in options if k == "contact" for c in split_list(v))
    return Aor(
        name=name,
        max_contacts=_max_contacts(name, values.get("max_contacts")),
        static_contacts=contacts,
        mailboxes=split_list(values.get("mailboxes")),
    )


def parse_aors(sections: Sequence[Section]) -> tuple[Aor, ...]:
    aors = [aor_from_options(s.name, s.options, dict(s.options)) for s in sections]
    return tuple(sorted(aors, key=lambda a: a.name))


# Options whose every line counts (Asterisk applies them in order) rather than the last one.
ACCUMULATING = frozenset(
    {"allow", "disallow", "set_var", "deny", "permit", "contact_deny", "contact_permit", "match"}
)
# Never kept, whatever file they appear in (GetConfig returns them in plain text, fact 10).
SECRETS = frozenset({"password", "secret", "md5secret", "md5_cred", "dbsecret", "oauth_secret"})

_first = itemgetter(0)
# Option names in order -> what `effective_options` picks from such a section: sections written
# by one template or one generator share their layout, so the order is worked out once.
_LAYOUTS: dict[tuple[str, ...], Callable[[tuple[tuple[str, str], ...]], Any]] = {}
MAX_LAYOUTS = 4096


def _layout(keys: tuple[str, ...]) -> Callable[[tuple[tuple[str, str], ...]], Any]:
    last: dict[str, int] = {}
    accumulated: list[int] = []
    for index, key in enumerate(keys):
        if key in SECRETS:
            continue
        if key in ACCUMULATING:
            accumulated.append(index)
        else:
            last.pop(key, None)  # an overridden option moves to where its last value stands
            last[key] = index
    picked = [*last.values(), *accumulated]
    if len(picked) == 1:
        only = picked[0]
        return lambda options: (options[only],)
    return itemgetter(*picked) if picked else lambda options: ()


def effective_options(section: Section) -> Options:
    """The options as Asterisk applies them: GetConfig lists inherited options first and
    `(+)` additions last (facts 12, 21), so the last value of an option wins; options that
    accumulate keep every value, in order. Secrets are dropped."""
    return _effective(section.options)


def _effective(options: Options, values: dict[str, str] | None = None) -> Options:
    """`values`: `options` as a dict, when the caller made it: with no option twice, its
    keys are the layout (no pass over the pairs)."""
    if values is not None and len(values) == len(options):
        keys = tuple(values)
    else:
        keys = tuple(map(_first, options))
    pick = _LAYOUTS.get(keys)
    if pick is None:
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        pick = _LAYOUTS[keys] = _layout(keys)
    return tuple(pick(options))


def endpoint_from_section(
    section: Section, *, identify: bool = False, registration: bool = False
) -> Endpoint:
    endpoint = endpoint_from_options(section.name, section.options, dict(section.options))
    if identify or registration:
        endpoint = replace(endpoint, identify=identify, outbound_registration=registration)
    return endpoint


def endpoint_from_options(
    name: str, options: Options, values: dict[str, str], strings: dict[str, str] | None = None
) -> Endpoint:
    """`values`: `options` as a dict (the last value of each); `strings`: texts already
    held (the caller ID number is usually the name again: one object for both)."""
    callerid_name, number = parse_callerid(values.get("callerid"))
    if strings is not None and number is not None:
        number = strings.get(number, number)
    return Endpoint(
        name=name,
        technology="PJSIP",
        callerid_name=callerid_name,
        callerid_number=number,
        context=values.get("context"),
        aors=split_list(values.get("aors")),
        mailboxes=split_list(values.get("mailboxes")),
        inbound_auth=_names_any(values.get("auth")),
        outbound_auth=_names_any(values.get("outbound_auth")),
        options=_effective(options, values),
    )


def parse_endpoints(
    endpoints: Sequence[Section],
    identifies: Sequence[Section] = (),
    registrations: Sequence[Section] = (),
) -> tuple[Endpoint, ...]:
    """Endpoints with the facts the counting rules need; identify and outbound registration
    sections mark the endpoints they point at as trunks' pieces."""
    identified = {s.get("endpoint") for s in identifies}
    registered = {s.get("endpoint") for s in registrations}
    result = [
        endpoint_from_section(
            section,
            identify=section.name in identified,
            registration=section.name in registered,
        )
        for section in endpoints
    ]
    return tuple(sorted(result, key=lambda e: e.name))


# The pjsip.conf objects the inventory reads, in one GetConfig (the filter is a POSIX regular
# expression on each section's variables, inherited ones included: `main/config.c`
# does_category_match; auth sections, which hold the passwords, are never sent).
PJSIP_TYPES = ("endpoint", "aor", "identify", "registration")
PJSIP_FILTER = f"^type$=^({'|'.join(PJSIP_TYPES)})$"


def _not_secret(option: str) -> bool:
    return option not in SECRETS


class PjsipReader(ConfigReader):
    """`GetConfig pjsip.conf` with `PJSIP_FILTER`, streamed: each section becomes an endpoint
    or an AOR as soon as it is read (identify and registration sections mark the endpoints
    they point at), so the raw answer is never held. Its type is the last ``type`` value."""

    def __init__(self) -> None:
        super().__init__(_not_secret)
        self._endpoints: list[Endpoint] = []
        self._aors: list[Aor] = []
        self._identified: set[str | None] = set()
        self._registered: set[str | None] = set()

    def _take(self, name: str, options: Options) -> None:
        values = dict(options)  # the last value of each option
        kind = values.get("type")
        if kind == "endpoint":
            self._endpoints.append(endpoint_from_options(name, options, values, self._strings))
        elif kind == "aor":
            self._aors.append(aor_from_options(name, options, values))
        elif kind == "identify":
            self._identified.add(values.get("endpoint"))
        elif kind == "registration":
            self._registered.add(values.get("endpoint"))

    def endpoints(self) -> tuple[Endpoint, ...]:
        """As `parse_endpoints` gives them: sorted by name, trunks' pieces marked."""
        marked = [
            replace(e, identify=True, outbound_registration=e.name in self._registered)
            if e.name in self._identified
            else replace(e, outbound_registration=True)
            if e.name in self._registered
            else e
            for e in self._endpoints
        ]
        return tuple(sorted(marked, key=lambda e: e.name))

    def aors(self) -> tuple[Aor, ...]:
        return tuple(sorted(self._aors, key=lambda a: a.name))
