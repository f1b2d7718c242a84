"""GetConfig answers -> configuration sections -> endpoints, AORs, trunk pieces. Pure.

GetConfig expands templates (fixture fact 12): each section lists inherited options first,
then its own, so the last value of an option is the effective one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import repeat
from operator import itemgetter
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


_MISSING = object()


class ConfigReader:
    """GetConfig's answer read as it streams (a `wire.AnswerReader`): each section is built
    as soon as its lines are in and handed to `take` (or kept in `sections`), so the answer is
    never held whole. Asterisk writes a category's lines right after it (``Category-000003``,
    then ``Line-000003-000000`` ...); a line outside its category is refused.

    An option line that many sections share (``context=from-internal``) becomes one tuple
    shared by all of them: an office of 10,000 endpoints repeats most of its options.
    `keep` says which options are kept, by name (None: every one); it is asked once per
    distinct line.
    """

    def __init__(
        self,
        take: Callable[[Section], None] | None = None,
        keep: Callable[[str], bool] | None = None,
    ) -> None:
        self.sections: list[Section] = []
        self.response: wire.Message = []
        self._take = take or self.sections.append
        self._keep = keep
        self._name: str | None = None  # the category in progress
        self._prefix = ""  # its lines' prefix, ``Line-000003-``
        self._pairs: list[tuple[str, str]] = []
        self._shared: dict[str, Any] = {}  # line text -> its shared pair, None if dropped

    def feed(self, text: str) -> None:
        """Complete CRLF-ended lines of the answer, in any number of pieces."""
        pieces = ("\r\n" + text).split("\r\nCategory-")
        self._body(pieces[0])
        for piece in pieces[1:]:
            head, _, body = piece.partition("\r\n")
            number, sep, name = head.partition(": ")
            if not sep or not number.isdigit():
                raise ParseError(f"GetConfig: unreadable category line {head[:80]!r}")
            self._close()
            self._name, self._prefix = name, f"Line-{number}-"
            self._body("\r\n" + body)

    def feed_pairs(self, message: wire.Message) -> None:
        """A message already split into pairs (recorded transcripts, tests)."""
        self.feed("".join(f"{k}: {v}\r\n" if k else f"{v}\r\n" for k, v in message))

    def end_message(self) -> bool:
        self._close()
        self._shared = {}
        return True

    def _body(self, body: str) -> None:
        """Lines after a category line (or before the first one): its options, or framing."""
        lines = wire.lines(body[2:]) if body.startswith("\r\n") else wire.lines(body)
        if not lines:
            return
        count = body.count("\r\nLine-")
        if count != len(lines):  # framing (Response, Message), IsTemplate, Templates ...
            for line in lines:
                if not line.startswith(("Line-", "IsTemplate-", "Templates-")):
                    key, sep, value = line.partition(": ")
                    self.response.append((key, value) if sep else ("", line))
            lines = [line for line in lines if line.startswith("Line-")]
        if not lines:
            return
        if self._name is None or body.count("\r\n" + self._prefix) != count:
            raise ParseError(f"GetConfig: option line outside its category: {lines[0][:80]!r}")
        shared = self._shared
        values = [line.partition(": ")[2] for line in lines]
        pairs = list(map(shared.get, values, repeat(_MISSING)))
        if _MISSING in pairs:
            for index, pair in enumerate(pairs):
                if pair is _MISSING:
                    pairs[index] = shared[values[index]] = self._pair(values[index])
        if None in pairs:
            pairs = [pair for pair in pairs if pair is not None]
        self._pairs += pairs

    def _pair(self, text: str) -> tuple[str, str] | None:
        option, sep, value = text.partition("=")
        if not sep:
            raise ParseError(f"GetConfig: an option line without '=': {text[:80]!r}")
        option = sys.intern(option.strip())
        if self._keep is not None and not self._keep(option):
            return None
        return (option, value.strip())

    def _close(self) -> None:
        if self._name is not None:
            self._take(Section(self._name, tuple(self._pairs)))
        self._name, self._pairs = None, []


def split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


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


def aor_from_section(section: Section, values: dict[str, str] | None = None) -> Aor:
    """`values`: the section's options as a dict, when the caller has it already."""
    values = dict(section.options) if values is None else values
    return Aor(
        name=section.name,
        max_contacts=_max_contacts(section.name, values.get("max_contacts")),
        static_contacts=tuple(c for v in section.get_all("contact") for c in split_list(v))
        if "contact" in values
        else (),
        mailboxes=split_list(values.get("mailboxes")),
    )


def parse_aors(sections: Sequence[Section]) -> tuple[Aor, ...]:
    return tuple(sorted(map(aor_from_section, sections), key=lambda a: a.name))


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


def effective_options(section: Section) -> tuple[tuple[str, str], ...]:
    """The options as Asterisk applies them: GetConfig lists inherited options first and
    `(+)` additions last (facts 12, 21), so the last value of an option wins; options that
    accumulate keep every value, in order. Secrets are dropped."""
    options = section.options
    keys = tuple(map(_first, options))
    pick = _LAYOUTS.get(keys)
    if pick is None:
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        pick = _LAYOUTS[keys] = _layout(keys)
    return tuple(pick(options))


def endpoint_from_section(
    section: Section,
    *,
    identify: bool = False,
    registration: bool = False,
    values: dict[str, str] | None = None,
) -> Endpoint:
    """`values`: the section's options as a dict (the last value of each), if already made."""
    values = dict(section.options) if values is None else values
    name, number = parse_callerid(values.get("callerid"))
    return Endpoint(
        name=section.name,
        technology="PJSIP",
        callerid_name=name,
        callerid_number=number,
        context=values.get("context"),
        aors=split_list(values.get("aors")),
        mailboxes=split_list(values.get("mailboxes")),
        inbound_auth=bool(split_list(values.get("auth"))),
        outbound_auth=bool(split_list(values.get("outbound_auth"))),
        identify=identify,
        outbound_registration=registration,
        options=effective_options(section),
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


class PjsipReader(ConfigReader):
    """`GetConfig pjsip.conf` with `PJSIP_FILTER`, streamed: each section becomes an endpoint
    or an AOR as soon as it is read (identify and registration sections mark the endpoints
    they point at), so the raw answer is never held. Its type is the last ``type`` value."""

    def __init__(self) -> None:
        super().__init__(self._section, lambda option: option not in SECRETS)
        self._endpoints: list[Endpoint] = []
        self._aors: list[Aor] = []
        self._identified: set[str | None] = set()
        self._registered: set[str | None] = set()

    def _section(self, section: Section) -> None:
        values = dict(section.options)  # the last value of each option
        kind = values.get("type")
        if kind == "endpoint":
            self._endpoints.append(endpoint_from_section(section, values=values))
        elif kind == "aor":
            self._aors.append(aor_from_section(section, values))
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
