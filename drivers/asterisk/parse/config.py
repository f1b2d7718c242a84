"""Configuration sections (`getconfig`) -> endpoints, AORs, trunk pieces; the pjsip.conf
objects the inventory reads in one GetConfig (`PjsipReader`). Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any

from drivers.asterisk.parse.getconfig import ConfigReader, Options, Section
from drivers.errors import ParseError
from drivers.models import Aor, Endpoint

_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<number>[^>]*)>\s*$')


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
    quoted = _quoted_callerid(value)
    return quoted if quoted is not None else _callerid_by_expression(value)


def _quoted_callerid(value: str) -> tuple[str | None, str | None] | None:
    """The usual form, `"Name" <number>` (one space or none between), read without the
    regular expression (one per endpoint of a large office); None for any other form."""
    if value[0] != '"' or value[-1] != ">":
        return None
    close = value.find('"', 1)
    if close < 0:
        return None
    between = value[close + 1 : -1]
    if between[:1] == "<":
        number = between[1:]
    elif between[:2] == " <":
        number = between[2:]
    else:
        return None
    if ">" in number:
        return None
    return value[1:close].strip() or None, number.strip() or None


def _callerid_by_expression(value: str) -> tuple[str | None, str | None]:
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


# Sections of at most this many options are looked up among the AORs already read (an
# endpoint's 40 are not: its caller ID and AOR lines are its own, it would never be found).
SMALL_SECTION = 16


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
        # each endpoint's auth and outbound_auth as written: what `reconcile` compares with
        # the live list (without a dict of the endpoint's options again)
        self.auths: dict[str, tuple[str | None, str | None]] = {}
        # an AOR's options (the same pairs for every AOR one template writes) -> what it says
        self._aor_parts: dict[Options, tuple[int, tuple[str, ...], tuple[str, ...]]] = {}

    def _take(self, name: str, options: Options) -> None:
        if len(options) <= SMALL_SECTION:  # an AOR of a template: read once for all of them
            parts = self._aor_parts.get(options)
            if parts is not None:
                self._aors.append(Aor(name, *parts))
                return
        values = dict(options)  # the last value of each option
        kind = values.get("type")
        if kind == "endpoint":
            self._endpoints.append(endpoint_from_options(name, options, values, self._strings))
            self.auths.setdefault(name, (values.get("auth"), values.get("outbound_auth")))
        elif kind == "aor":
            aor = aor_from_options(name, options, values)
            self._aors.append(aor)
            if len(options) <= SMALL_SECTION and len(self._aor_parts) < MAX_LAYOUTS:
                self._aor_parts[options] = (aor.max_contacts, aor.static_contacts, aor.mailboxes)
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
