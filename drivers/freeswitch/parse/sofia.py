"""mod_sofia answers -> profiles, aliases, gateways and registered devices. Pure.

``sofia status`` is a table between rule lines (fact 15); ``sofia xmlstatus profile P reg``
lists every registered device, one row per Contact (fact 24: ``show registrations`` keeps
one row per user and is not a device list); ``sofia xmlstatus gateway NAME`` is one
gateway. The xml answers are read with a small tag scanner, not an XML parser: FreeSWITCH
writes some of them malformed (``sofia xmlstatus`` puts text outside elements).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import unescape

from drivers.errors import ParseError
from drivers.freeswitch.parse.core import checked

_RULE = re.compile(r"^=+$")
_ENTITIES = {"&quot;": '"', "&apos;": "'"}
_TAG = re.compile(r"<([A-Za-z][\w-]*)>([^<]*)</\1>")
_CONTACT_URI = re.compile(r"<([^>]*)>")


@dataclass(frozen=True, slots=True)
class SofiaEntry:
    """One row of ``sofia status``: a profile, an alias (a domain) or a gateway."""

    name: str
    kind: str  # profile | alias | gateway
    data: str
    state: str
    profile: str = ""  # for a gateway, its profile


@dataclass(frozen=True, slots=True)
class RegistrationRow:
    """One registered device (one Contact) as ``sofia xmlstatus profile P reg`` lists it."""

    call_id: str
    user: str  # user@realm
    contact: str  # as FreeSWITCH stores it: '"" <sip:...>'
    agent: str
    status: str
    ping_status: str
    ping_time: str
    network_ip: str
    network_port: str
    auth_user: str
    auth_realm: str

    @property
    def uri(self) -> str:
        """The Contact's SIP URI without FreeSWITCH's empty display name (fact 28)."""
        found = _CONTACT_URI.search(self.contact)
        return found.group(1) if found else self.contact.strip()

    @property
    def user_id(self) -> str:
        return self.user.rpartition("@")[0] or self.user

    @property
    def realm(self) -> str:
        return self.user.rpartition("@")[2] if "@" in self.user else self.auth_realm


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """``sofia xmlstatus gateway NAME``: registration state and ping status (fact 36)."""

    name: str
    profile: str
    state: str  # REGED, UNREGED, FAIL_WAIT, TRYING, NOREG, ...
    status: str  # UP or DOWN (OPTIONS ping)
    proxy: str
    to: str
    from_: str


def parse_sofia_status(text: str) -> tuple[SofiaEntry, ...]:
    """Rows of ``sofia status``; a gateway's name ``external::NAME`` names its profile."""
    entries: list[SofiaEntry] = []
    rules = 0
    for line in checked("sofia status", text).splitlines():
        stripped = line.strip()
        if _RULE.match(stripped):
            rules += 1
            continue
        if rules != 1 or not stripped:
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 4:
            raise ParseError(f"sofia status: unexpected row {stripped[:80]!r}")
        name, kind, data, state = fields[0], fields[1], fields[2], "\t".join(fields[3:])
        profile = ""
        if kind == "gateway" and "::" in name:
            profile, _, name = name.partition("::")
        entries.append(SofiaEntry(name, kind, data, state, profile))
    if rules < 2:
        raise ParseError("sofia status: the table is not closed by a rule line")
    return tuple(entries)


def _fields(block: str) -> dict[str, str]:
    fields = dict(_TAG.findall(block))
    for key, value in fields.items():
        if "&" in value:  # only contact and agent are escaped, and only when they need it
            fields[key] = unescape(value, _ENTITIES)
    return fields


def _blocks(text: str, tag: str) -> Iterator[str]:
    start_tag, end_tag = f"<{tag}>", f"</{tag}>"
    position = 0
    while True:
        start = text.find(start_tag, position)
        if start < 0:
            return
        end = text.find(end_tag, start)
        if end < 0:
            raise ParseError(f"<{tag}> not closed")
        yield text[start + len(start_tag) : end]
        position = end + len(end_tag)


def parse_registrations(
    text: str, warnings: list[str] | None = None
) -> tuple[RegistrationRow, ...]:
    """Devices from ``sofia xmlstatus profile P reg`` (fact 16: ``<status>`` is lower case
    there). A row without a Call-ID or user is skipped and reported in `warnings`."""
    body = checked("sofia xmlstatus profile reg", text)
    if "<profile" not in body:
        raise ParseError(f"sofia xmlstatus reg: not a profile listing: {body.strip()[:80]!r}")
    rows = []
    for block in _blocks(body, "registration"):
        f = _fields(block)
        if not f.get("call-id") or not f.get("user"):
            if warnings is not None:
                warnings.append("a registration without call-id or user was skipped")
                continue
            raise ParseError("sofia xmlstatus reg: a registration without call-id or user")
        rows.append(
            RegistrationRow(
                call_id=f["call-id"],
                user=f["user"],
                contact=f.get("contact", ""),
                agent=f.get("agent", ""),
                status=f.get("status", ""),
                ping_status=f.get("ping-status", ""),
                ping_time=f.get("ping-time", ""),
                network_ip=f.get("network-ip", ""),
                network_port=f.get("network-port", ""),
                auth_user=f.get("sip-auth-user", ""),
                auth_realm=f.get("sip-auth-realm", ""),
            )
        )
    return tuple(rows)


def parse_gateway(text: str) -> GatewayStatus:
    body = checked("sofia xmlstatus gateway", text)
    blocks = list(_blocks(body, "gateway"))
    if not blocks:
        raise ParseError(f"sofia xmlstatus gateway: no <gateway>: {body.strip()[:80]!r}")
    f = _fields(blocks[0])
    return GatewayStatus(
        name=f.get("name", ""),
        profile=f.get("profile", ""),
        state=f.get("state", ""),
        status=f.get("status", ""),
        proxy=f.get("proxy", ""),
        to=f.get("to", ""),
        from_=f.get("from", ""),
    )


def ping_time_usec(value: str) -> int | None:
    """``Ping-Time`` is milliseconds with decimals (``0.69``)."""
    try:
        return round(float(value) * 1000)
    except ValueError:
        return None
