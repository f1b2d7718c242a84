"""ACL rules the agent appends to an endpoint or a manager user, pure.

Asterisk keeps every `deny`/`permit` line of an object in one list and the LAST rule that
matches an address decides (no match: allowed). Lines appended after the customer's therefore
win. To switch something off entirely the agent appends `deny` for every address. To keep
only the site's networks (`offsite_devices`) it must not re-open what the customer closed:
it appends `deny` everything, `permit` each site network, then the customer's own rules again
with every `permit` narrowed to the site networks. The result allows an address exactly when
the customer's rules allow it and it is on site.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DENY_ALL = (("deny", "0.0.0.0/0"), ("deny", "::/0"))
LOOPBACK = ("127.0.0.0/8", "::1/128")  # the PBX host itself is on site


def _networks(value: str) -> list[Network]:
    """A rule's value: one network or a comma list (`!` negation is kept out: unparsable)."""
    found = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        found.append(ipaddress.ip_network(item, strict=False))
    return found


def _text(network: Network) -> str:
    return str(network)


def on_site_only(existing: Sequence[tuple[str, str]], site: Sequence[str]) -> list[tuple[str, str]]:
    """The rules to append so that only `site` networks (and the PBX host) remain allowed,
    without allowing anything the `existing` (deny|permit, value) rules deny. Raises
    ValueError for a rule it cannot read (the agent then does not touch the object)."""
    allowed = [ipaddress.ip_network(n, strict=False) for n in (*site, *LOOPBACK)]
    rules: list[tuple[str, str]] = list(DENY_ALL)
    rules += [("permit", _text(n)) for n in allowed]
    for sense, value in existing:
        for network in _networks(value):
            if sense == "deny":
                rules.append(("deny", _text(network)))
                continue
            for site_net in allowed:
                narrowed = _overlap(network, site_net)
                if narrowed is not None:
                    rules.append(("permit", _text(narrowed)))
    return rules


def _overlap(a: Network, b: Network) -> Network | None:
    """The common part of two CIDR networks (one contains the other, or none)."""
    if a.version != b.version:
        return None
    if a.subnet_of(b):  # type: ignore[arg-type]
        return a
    if b.subnet_of(a):  # type: ignore[arg-type]
        return b
    return None


def allows(rules: Sequence[tuple[str, str]], address: str) -> bool:
    """Asterisk's evaluation of a rule list for one address (last match decides)."""
    ip = ipaddress.ip_address(address)
    verdict = True
    for sense, value in rules:
        for network in _networks(value):
            if network.version == ip.version and ip in network:
                verdict = sense == "permit"
    return verdict
