"""mod_sofia's apis: ``sofia status|xmlstatus`` (profiles, aliases, gateways, registered
devices), ``sofia profile P rescan|flush_inbound_reg``, ``sofia_contact``; formats as in
mod_sofia.c of 1.10.12 and the fixture transcripts (facts 15, 16, 21, 36)."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.freeswitch.sim.apis import ApiContext, api, sofia_contact_of
from drivers.freeswitch.sim.state import Gateway, Profile, Registration, SimState

LINE = "=" * 97
XML_HEADER = '<?xml version="1.0" encoding="ISO-8859-1"?>'
RETRY_STATES = ("FAILED", "FAIL_WAIT", "TRYING")


def _amp(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _entries(state: SimState) -> list[tuple[str, Profile]]:
    """(name, profile) in the order of sofia's profile hash: the office's order first."""
    names: list[tuple[str, Profile]] = []
    for profile in state.profiles.values():
        names.append((profile.name, profile))
        names += [(alias, profile) for alias in profile.aliases]
    order = {name: i for i, name in enumerate(state.office.sofia_order)}
    return sorted(names, key=lambda item: order.get(item[0], len(order)))


def _retry(state: SimState, gateway: Gateway) -> str:
    if gateway.state not in RETRY_STATES:
        return ""
    left = int(gateway.retry_at - state.now())
    return f" (retry: {left}s)" if left >= 0 else " (retry: NEVER)"


def _status_table(state: SimState) -> str:
    out = [f"{'Name':>25}\t{'   Type'}\t  {'Data':>40}\tState\n", f"{LINE}\n"]
    profiles = aliases = 0
    for name, profile in _entries(state):
        if name != profile.name:
            aliases += 1
            out.append(f"{name:>25}\t{'  alias'}\t  {profile.name:>40}\tALIASED\n")
            continue
        profiles += 1
        out.append(f"{profile.name:>25}\tprofile\t  {profile.url:>40}\tRUNNING (0)\n")
        for gw in profile.gateways:
            key = f"{profile.name}::{gw.name}"
            out.append(
                f"{key:>25}\tgateway\t  {gw.register_to:>40}\t{gw.state}{_retry(state, gw)}\n"
            )
    out.append(f"{LINE}\n")
    out.append(
        f"{profiles} profile{'' if profiles == 1 else 's'} "
        f"{aliases} alias{'' if aliases == 1 else 'es'}\n"
    )
    return "".join(out)


def _status_xml(state: SimState) -> str:
    out = [f"{XML_HEADER}\n", "<profiles>\n"]
    for name, profile in _entries(state):
        if name != profile.name:
            out.append(
                f"<alias>\n<name>{name}</name>\n<type>alias</type>\n<data>{profile.name}</data>\n"
                "<state>ALIASED</state>\n</alias>\n"
            )
            continue
        out.append(
            f"<profile>\n<name>{profile.name}</name>\n<type>profile</type>\n"
            f"<data>{profile.url}</data>\n<state>RUNNING (0)</state>\n</profile>\n"
        )
        for gw in profile.gateways:
            out.append(
                f"<gateway>\n<name>{gw.name}</name>\n<type>gateway</type>\n"
                f"<data>{gw.register_to}</data>\n<state>{gw.state}</state>\n</gateway>\n"
                f"{_retry(state, gw)}\n"
            )
    out.append("</profiles>\n")
    return "".join(out)


def _profile_info(state: SimState, asked: str, profile: Profile) -> list[tuple[str, str, str]]:
    """(text label, xml tag, value) of a profile's summary, in mod_sofia's order."""
    p = profile.param
    sip_ip = p("sip-ip")
    url = profile.url
    transports = "udp,tcp"
    registrations = sum(1 for r in state.registrations.values() if r.profile == profile.name)
    rows = [
        ("Name", "name", asked),
        ("Domain Name", "domain-name", "N/A"),
    ]
    if asked != profile.name:
        rows.append(("Alias Of", "alias-of", profile.name))
    rows += [
        ("Auto-NAT", "auto-nat", "false"),
        ("DBName", "db-name", f"sofia_reg_{profile.name}"),
        ("Pres Hosts", "pres-hosts", ""),
        ("Dialplan", "dialplan", p("dialplan", "XML")),
        ("Context", "context", p("context", "public")),
        ("Challenge Realm", "challenge-realm", p("challenge-realm", "auto_to") or "auto_to"),
        ("RTP-IP", "rtp-ip", p("rtp-ip", sip_ip)),
    ]
    if p("ext-rtp-ip"):
        rows.append(("Ext-RTP-IP", "ext-rtp-ip", p("ext-rtp-ip")))
    rows.append(("SIP-IP", "sip-ip", sip_ip))
    if p("ext-sip-ip"):
        rows.append(("Ext-SIP-IP", "ext-sip-ip", p("ext-sip-ip")))
    codecs = p("codec-prefs", "PCMU,PCMA")
    rows += [
        ("URL", "url", url),
        ("BIND-URL", "bind-url", f"{url};maddr={sip_ip};transport={transports}"),
        ("HOLD-MUSIC", "hold-music", p("hold-music") or "N/A"),
        ("OUTBOUND-PROXY", "outbound-proxy", p("outbound-proxy") or "N/A"),
        ("CODECS IN", "inbound-codecs", p("inbound-codec-prefs", codecs)),
        ("CODECS OUT", "outbound-codecs", p("outbound-codec-prefs", codecs)),
        ("TEL-EVENT", "tel-event", p("rfc2833-pt", "101")),
        ("DTMF-MODE", "dtmf-mode", p("dtmf-type", "rfc2833")),
        ("CNG", "cng", "13"),
        ("SESSION-TO", "session-to", "0"),
        ("MAX-DIALOG", "max-dialog", "0"),
        ("MAX-RECV-RPS", "max-recv-rps", "1000"),
        ("NOMEDIA", "nomedia", "false"),
        ("LATE-NEG", "late-neg", p("inbound-late-negotiation", "false")),
        ("PROXY-MEDIA", "proxy-media", "false"),
        ("AGGRESSIVENAT", "aggressive-nat", "false"),
        # the text lists calls in, failed in, out, failed out; the xml in, out, failed...
        ("CALLS-IN", "calls-in", "0"),
        ("FAILED-CALLS-IN", "failed-calls-in", "0"),
        ("CALLS-OUT", "calls-out", "0"),
        ("FAILED-CALLS-OUT", "failed-calls-out", "0"),
        ("REGISTRATIONS", "registrations", str(registrations)),
    ]
    return rows


XML_ORDER = ("calls-in", "calls-out", "failed-calls-in", "failed-calls-out")


def _xml_info(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    calls = {tag: row for row in rows for tag in [row[1]] if tag in XML_ORDER}
    head = [row for row in rows if row[1] not in XML_ORDER and row[1] != "registrations"]
    tail = [row for row in rows if row[1] == "registrations"]
    return head + [calls[tag] for tag in XML_ORDER if tag in calls] + tail


def _selected(state: SimState, profile: Profile, words: list[str]) -> list[Registration] | None:
    """The rows ``reg [filter]`` or ``user [u@]d`` selects; None when neither was asked."""
    rows = [r for r in state.registrations.values() if r.profile == profile.name]
    if words[:1] == ["reg"]:
        if len(words) > 1:
            needle = words[1].lower()
            return [r for r in rows if needle in r.contact.lower()]
        return rows
    if words[:1] == ["user"] and len(words) > 1:
        user, at, host = words[1].partition("@")
        if not at:
            user, host = "", user
        return [r for r in rows if (not user or r.user == user) and (not host or r.realm == host)]
    return None


def _expiry(state: SimState, row: Registration) -> tuple[str, int]:
    when = datetime.fromtimestamp(row.expiry, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return when, int(row.expiry - state.now())


def _reg_text(state: SimState, row: Registration) -> str:
    when, left = _expiry(state, row)
    return (
        f"Call-ID:    \t{row.call_id}\n"
        f"User:       \t{row.user}@{row.realm}\n"
        f"Contact:    \t{row.contact}\n"
        f"Agent:      \t{row.agent}\n"
        f"Status:     \t{row.status}({row.rpid}) EXP({when}) EXPSECS({left})\n"
        f"Ping-Status:\t{row.ping_status}\n"
        f"Ping-Time:\t{row.ping_us / 1000:0.2f}\n"
        f"Host:       \t{state.hostname}\n"
        f"IP:         \t{row.ip}\n"
        f"Port:       \t{row.port}\n"
        f"Auth-User:  \t{row.user}\n"
        f"Auth-Realm: \t{row.realm}\n"
        f"MWI-Account:\t{row.user}@{row.realm}\n\n"
    )


def _reg_xml(state: SimState, row: Registration) -> str:
    when, left = _expiry(state, row)
    return (
        "    <registration>\n"
        f"        <call-id>{row.call_id}</call-id>\n"
        f"        <user>{row.user}@{row.realm}</user>\n"
        f"        <contact>{_amp(row.contact)}</contact>\n"
        f"        <agent>{_amp(row.agent)}</agent>\n"
        f"        <status>{row.status}({row.rpid}) exp({when}) expsecs({left})</status>\n"
        f"        <ping-status>{row.ping_status}</ping-status>\n"
        f"        <ping-time>{row.ping_us / 1000:0.2f}</ping-time>\n"
        f"        <host>{state.hostname}</host>\n"
        f"        <network-ip>{row.ip}</network-ip>\n"
        f"        <network-port>{row.port}</network-port>\n"
        f"        <sip-auth-user>{row.user}</sip-auth-user>\n"
        f"        <sip-auth-realm>{row.realm}</sip-auth-realm>\n"
        f"        <mwi-account>{row.user}@{row.realm}</mwi-account>\n"
        "    </registration>\n"
    )


def _gateway_fields(state: SimState, gw: Gateway) -> list[tuple[str, str, str]]:
    profile = state.profiles[gw.profile]
    user = gw.param("username", gw.name)
    realm = gw.param("realm", gw.param("proxy", gw.name))
    from_domain = gw.param("from-domain", realm)
    contact = f"<sip:gw+{gw.name}@{profile.param('sip-ip')}:{profile.param('sip-port', '5060')}"
    contact += f";transport=udp;gw={gw.name}>"
    ping = gw.param("ping", "0")
    expires = gw.param("expire-seconds", "3600")
    return [
        ("Name    ", "name", gw.name),
        ("Profile ", "profile", gw.profile),
        ("Scheme  ", "scheme", "Digest"),
        ("Realm   ", "realm", realm),
        ("Username", "username", user),
        ("Password", "password", "yes" if gw.param("password") else "no"),
        ("From    ", "from", f"<sip:{user}@{from_domain}>"),
        ("Contact ", "contact", contact),
        ("Exten   ", "exten", gw.param("extension", user)),
        ("To      ", "to", gw.register_to),
        ("Proxy   ", "proxy", f"sip:{gw.param('proxy', realm)}"),
        ("Context ", "context", gw.param("context", "public")),
        ("Expires ", "expires", expires),
        ("Freq    ", "freq", expires),
        ("Ping    ", "ping", str(int(state.now()) + int(ping or 0))),
        ("PingFreq", "pingfreq", ping),
    ]


def _gateway_text(state: SimState, gw: Gateway) -> str:
    out = [f"{LINE}\n"]
    out += [f"{label}\t{value}\n" for label, _, value in _gateway_fields(state, gw)]
    out += [
        "PingTime\t0.00\n",
        "PingState\t1/0/1\n",
        f"State   \t{gw.state}\n",
        f"Status  \t{gw.status}\n",
        "Uptime  \t0s\n",
        "CallsIN \t0\n",
        "CallsOUT\t0\n",
        "FailedCallsIN\t0\n",
        "FailedCallsOUT\t0\n",
        f"{LINE}\n",
    ]
    return "".join(out)


def _gateway_xml(state: SimState, gw: Gateway) -> str:
    out = ["  <gateway>\n"]
    for _, tag, value in _gateway_fields(state, gw):
        encoded = _amp(value) if tag in ("from", "contact", "exten") else value
        out.append(f"    <{tag}>{encoded}</{tag}>\n")
    out += [
        "    <pingmin>1</pingmin>\n",
        "    <pingcount>0</pingcount>\n",
        "    <pingmax>1</pingmax>\n",
        "    <pingtime>0.00</pingtime>\n",
        "    <pinging>0</pinging>\n",
        f"    <state>{gw.state}</state>\n",
        f"    <status>{gw.status}</status>\n",
        "    <uptime-usec>0</uptime-usec>\n",
        "    <calls-in>0</calls-in>\n",
        "    <calls-out>0</calls-out>\n",
        "    <failed-calls-in>0</failed-calls-in>\n",
        "    <failed-calls-out>0</failed-calls-out>\n",
    ]
    if gw.state in RETRY_STATES:
        left = int(gw.retry_at - state.now())
        out.append(f"    <retry>{left}s</retry>\n" if left >= 0 else "    <retry>NEVER</retry>\n")
    out.append("  </gateway>\n")
    return "".join(out)


def _status(state: SimState, words: list[str], xml: bool) -> str:
    if not words:
        return _status_xml(state) if xml else _status_table(state)
    if words[0] == "gateway" and len(words) > 1:
        gw = state.gateway(words[1])
        if gw is None:
            return "Invalid Gateway!\n"
        return f"{XML_HEADER}\n{_gateway_xml(state, gw)}" if xml else _gateway_text(state, gw)
    if words[0] == "profile" and len(words) > 1:
        profile = state.profile(words[1])
        if profile is None:
            return "Invalid Profile!\n"
        rest = words[2:]
        rows = _selected(state, profile, rest)
        info = (
            _profile_info(state, words[1], profile) if rest[:1] not in (["reg"], ["user"]) else []
        )
        if xml:
            out = [f"{XML_HEADER}\n", "<profile>\n"]
            if info:
                out.append("  <profile-info>\n")
                out += [f"    <{tag}>{value}</{tag}>\n" for _, tag, value in _xml_info(info)]
                out.append("  </profile-info>\n")
            if rows is not None:
                out.append("  <registrations>\n")
                out += [_reg_xml(state, row) for row in rows]
                out.append("  </registrations>\n")
            out.append("</profile>\n")
            return "".join(out)
        out = []
        if info:
            out.append(f"{LINE}\n")
            out += [f"{label:<17}\t{value}\n" for label, _, value in info]
        if rows is not None:
            out.append(f"\nRegistrations:\n{LINE}\n")
            out += [_reg_text(state, row) for row in rows]
            out.append(f"Total items returned: {len(rows)}\n{LINE}\n")
        return "".join(out)
    return "Invalid Syntax!\n"


def _profile_command(state: SimState, words: list[str]) -> str:
    if len(words) < 2:
        return "Invalid Args!\n"
    profile = state.profile(words[0])
    if profile is None:
        return f"Invalid Profile [{words[0]}]"
    action = words[1].lower()
    if action == "rescan":
        return (
            f"Reload XML [{'Success' if 'Success' in state.reloadxml() else 'Failed'}]\n"
            "+OK scan complete\n"
        )
    if action == "flush_inbound_reg":
        reboot = "reboot" in [w.lower() for w in words[2:]]
        targets = [w for w in words[2:] if w.lower() != "reboot"]
        verb = "rebooting" if reboot else "flushing"
        if targets:
            state.flush(profile.name, targets[0])
            return f"+OK {verb} all registrations matching specified call_id\n"
        for row in [r for r in state.registrations.values() if r.profile == profile.name]:
            state.expire(row.call_id)
        return f"+OK {verb} all registrations\n"
    return "-ERR Unknown command!\n"


@api("sofia")
def sofia(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split()
    if not words:
        return "-USAGE: sofia <cmd> <args>\n"
    command, rest = words[0].lower(), words[1:]
    if command == "status":
        return _status(state, rest, xml=False)
    if command == "xmlstatus":
        return _status(state, rest, xml=True)
    if command == "profile":
        return _profile_command(state, rest)
    return "-ERR Unknown command!\n"


@api("sofia_contact")
def sofia_contact(state: SimState, arg: str, ctx: ApiContext) -> str:
    """``sofia_contact [profile/]user@domain``: every contact, comma-joined (fact 21)."""
    target = arg.strip()
    profile, slash, rest = target.partition("/")
    if not slash:
        profile, rest = "*", target
    user, _, domain = rest.partition("@")
    return sofia_contact_of(state, profile, user, domain)
