"""GetConfig answers -> configuration sections -> endpoints, AORs, trunk pieces. Pure.

GetConfig expands templates (fixture fact 12): each section lists inherited options first,
then its own, so the last value of an option is the effective one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.asterisk import wire
from drivers.errors import ParseError
from drivers.models import Aor, Endpoint

_CATEGORY = re.compile(r"^Category-(\d{6})$")
_LINE = re.compile(r"^Line-(\d{6})-(\d{6})$")
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
    """The sections of one GetConfig response, in order. Values are kept as sent.

    An option line that many sections share (``context=from-internal``) becomes one tuple
    shared by all of them: an office of 10,000 endpoints repeats most of its options."""
    names: dict[str, str] = {}
    lines: dict[str, list[tuple[str, str]]] = {}
    shared: dict[str, tuple[str, str]] = {}
    for key, value in message:
        if match := _CATEGORY.match(key):
            names[match.group(1)] = value
            lines.setdefault(match.group(1), [])
        elif match := _LINE.match(key):
            pair = shared.get(value)
            if pair is None:
                option, sep, option_value = value.partition("=")
                if not sep:
                    raise ParseError(f"GetConfig: line {key} has no '=': {value[:80]!r}")
                pair = shared[value] = (sys.intern(option.strip()), option_value.strip())
            lines.setdefault(match.group(1), []).append(pair)
    missing = set(lines) - set(names)
    if missing:
        raise ParseError(f"GetConfig: lines for unnamed categories {sorted(missing)[:3]}")
    return [Section(names[n], tuple(lines[n])) for n in sorted(names)]


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


def _max_contacts(section: Section) -> int:
    raw = section.get("max_contacts", "0") or "0"
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise ParseError(f"AOR {section.name}: max_contacts {raw!r} is not a number") from exc


def parse_aors(sections: Sequence[Section]) -> tuple[Aor, ...]:
    aors = [
        Aor(
            name=s.name,
            max_contacts=_max_contacts(s),
            static_contacts=tuple(c for v in s.get_all("contact") for c in split_list(v)),
            mailboxes=split_list(s.get("mailboxes")),
        )
        for s in sections
    ]
    return tuple(sorted(aors, key=lambda a: a.name))


# Options whose every line counts (Asterisk applies them in order) rather than the last one.
ACCUMULATING = frozenset(
    {"allow", "disallow", "set_var", "deny", "permit", "contact_deny", "contact_permit", "match"}
)
# Never kept, whatever file they appear in (GetConfig returns them in plain text, fact 10).
SECRETS = frozenset({"password", "secret", "md5secret", "md5_cred", "dbsecret", "oauth_secret"})


def effective_options(section: Section) -> tuple[tuple[str, str], ...]:
    """The options as Asterisk applies them: GetConfig lists inherited options first and
    `(+)` additions last (facts 12, 21), so the last value of an option wins; options that
    accumulate keep every value, in order. Secrets are dropped."""
    last: dict[str, tuple[str, str]] = {}
    accumulated: list[tuple[str, str]] = []
    for pair in section.options:
        key = pair[0]
        if key in SECRETS:
            continue
        if key in ACCUMULATING:
            accumulated.append(pair)
        else:
            last.pop(key, None)  # an overridden option moves to where its last value stands
            last[key] = pair
    return (*last.values(), *accumulated)


def endpoint_from_section(
    section: Section, *, identify: bool = False, registration: bool = False
) -> Endpoint:
    name, number = parse_callerid(section.get("callerid"))
    return Endpoint(
        name=section.name,
        technology="PJSIP",
        callerid_name=name,
        callerid_number=number,
        context=section.get("context"),
        aors=split_list(section.get("aors")),
        mailboxes=split_list(section.get("mailboxes")),
        inbound_auth=bool(split_list(section.get("auth"))),
        outbound_auth=bool(split_list(section.get("outbound_auth"))),
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
