"""Device kind from a SIP User-Agent: vendor knowledge as data, first matching rule wins.

A rule is (pattern, kind); patterns are case-insensitive regular expressions searched in the
User-Agent. More specific models come before a vendor's catch-all.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from drivers.models import DeviceKind

MAX_USER_AGENT = 512  # longer values are cut before matching (a hostile device can send 10 kB)

D, C, F, A, T = (
    DeviceKind.DESK_PHONE,
    DeviceKind.CORDLESS,
    DeviceKind.CONFERENCE,
    DeviceKind.APP,
    DeviceKind.ATA,
)

RULES: tuple[tuple[str, DeviceKind], ...] = (
    # Softphone apps first: some embed a vendor name (e.g. "Grandstream Wave").
    (r"\bzoiper", A),
    (r"\blinphone", A),
    (r"\bbria\b|\bgroundwire|\bx-lite|counterpath|acrobits", A),
    (r"sangoma (connect|talk)|\bzulu", A),
    (r"\bmicrosip", A),
    (r"3cx ?(phone|app|windows|android|ios|softphone|mac)|3cxphone|3cx[a-z]*softphone", A),
    (r"grandstream wave|\bjabber\b|\bwebex\b|\bteams\b|\bbrowser-phone|\bjssip|\bsip\.js", A),
    # Yealink: W-series DECT bases/handsets, CP conference phones, then desk phones.
    (r"yealink[ -]?(sip-)?w\d{2}", C),
    (r"yealink[ -]?(sip-)?cp\d{3}", F),
    (r"yealink", D),
    # Poly / Polycom: Trio, SoundStation and SoundPoint IP 5000-7000 are conference phones.
    (r"polycom.*(trio|realpresence)|poly.*trio", F),
    (r"polycom.*soundstation|soundpoint ?ip ?(5000|6000|7000)", F),
    (r"polycom|\bpoly\b|\bpoly[ -](ccx|edge|vvx)", D),
    # Cisco: SPA1xx/ATA19x adapters, CP-8832 conference, the rest desk phones.
    (r"cisco.*(spa1\d\d|spa2\d\d|ata ?19\d)", T),
    (r"cisco.*cp-?88(31|32)", F),
    (r"cisco", D),
    # Grandstream: DP DECT and WP Wi-Fi handsets, HT adapters, GAC conference phones.
    (r"grandstream.*\b(dp7\d\d|dp\d{3}|wp8\d\d)", C),
    (r"grandstream.*\bht\d{3}", T),
    (r"grandstream.*\bgac\d{4}", F),
    (r"grandstream", D),
    # Snom: M-series DECT, C-series conference.
    (r"snom.?m\d{2,3}\b|snom.?m\d{2,3}[/ ]", C),
    (r"snom.?c\d{3}", F),
    (r"snom", D),
    (r"fanvil.*\b(w\d{3}|h\d)", C),
    (r"fanvil.*\bcs\d{2}", F),
    (r"fanvil", D),
    (r"gigaset.*maxwell", D),
    (r"gigaset", C),
    (r"panasonic.*kx-?(tgp|tpa|uds|tca|udt)", C),
    (r"panasonic.*kx-?(nt7|ncp)", F),
    (r"panasonic", D),
    (r"konftel", F),
    (r"obihai|\bobi\d{3}", T),
    (r"linksys.*(spa\d{3,4}|pap2)|\bpap2", T),
    (r"sangoma\b.*\bs\d{3}", D),
)


@cache
def _compiled() -> tuple[tuple[re.Pattern[str], DeviceKind], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), kind) for pattern, kind in RULES)


@lru_cache(maxsize=4096)  # offices have a few dozen distinct user agents, seen many times
def classify_user_agent(user_agent: str) -> DeviceKind:
    """The device kind a User-Agent names, or `unknown`."""
    text = user_agent[:MAX_USER_AGENT]
    for pattern, kind in _compiled():
        if pattern.search(text):
            return kind
    return DeviceKind.UNKNOWN
