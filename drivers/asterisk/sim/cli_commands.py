"""CLI commands for `Action: Command` that print tables of the office: `pjsip show endpoints`,
`pjsip show contacts`, `voicemail show users`, `queue show` (column layouts as Asterisk 22)."""

from __future__ import annotations

import hashlib
import ipaddress

from drivers.asterisk.sim.base import SimContext, cli
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.pjsip_actions import device_state
from drivers.asterisk.sim.pjsip_detail import aor_defaults, display, tos

STATUS = {"Reachable": "Avail", "Unreachable": "Unavail", "NonQualified": "NonQual"}
ENDPOINTS_HEADER = [
    "",
    " Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>",
    "    I/OAuth:  <AuthId/UserName...........................................................>",
    "        Aor:  <Aor............................................>  <MaxContact>",
    "      Contact:  <Aor/ContactUri..........................> <Hash....> <Status> <RTT(ms)..>",
    "  Transport:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress..................>",
    "   Identify:  <Identify/Endpoint.........................................................>",
    "        Match:  <criteria.........................>",
    "    Channel:  <ChannelId......................................>  <State.....>  <Time.....>",
    "        Exten: <DialedExten...........>  CLCID: <ConnectedLineCID.......>",
    "=" * 90,
    "",
]
CONTACTS_HEADER = [
    "",
    "  Contact:  <Aor/ContactUri..............................> <Hash....> <Status> <RTT(ms)..>",
    "=" * 90,
    "",
]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _contacts(ctx: SimContext, conf: ConfFile, aor: Category) -> list[tuple[str, str, str, str]]:
    """(aor/uri, hash, status, rtt) of an AOR's contacts: registered, then static."""
    rows = []
    for c in ctx.live.contacts_of(aor.name):
        rtt = f"{c.rtt_usec / 1000:.3f}" if c.status == "Reachable" else "nan"
        rows.append(
            (
                f"{aor.name}/{c.uri}",
                c.object_name.split("@")[-1][:10],
                STATUS.get(c.status, "Unknown"),
                rtt,
            )
        )
    for uri in _split(conf.value(aor, "contact")):
        digest = hashlib.md5(uri.encode()).hexdigest()[:10]
        rows.append((f"{aor.name}/{uri}", digest, "NonQual", "nan"))
    return rows


def _all_contacts(ctx: SimContext, conf: ConfFile) -> list[tuple[str, str, str, str]]:
    keyed = []
    for aor in conf.objects("aor"):
        for dynamic in ctx.live.contacts_of(aor.name):
            keyed.append((dynamic.object_name, dynamic.uri))
        for uri in _split(conf.value(aor, "contact")):
            keyed.append((f"{aor.name}@@{hashlib.md5(uri.encode()).hexdigest()}", uri))
    rows = {
        row[0].split("/", 1)[1] + row[1]: row
        for a in conf.objects("aor")
        for row in _contacts(ctx, conf, a)
    }
    ordered = sorted(keyed)
    return [rows[uri + name.split("@")[-1][:10]] for name, uri in ordered]


@cli("pjsip show contacts")
def pjsip_show_contacts(ctx: SimContext, words: list[str]) -> list[str]:
    conf = ctx.loaded("pjsip.conf")
    rows = _all_contacts(ctx, conf)
    lines = list(CONTACTS_HEADER)
    lines += [f"  Contact:  {a:<46} {h} {s:<7} {r:>11}" for a, h, s, r in rows]
    return [*lines, "", f"Objects found: {len(rows)}", ""]


def _cid_number(callerid: str | None) -> str | None:
    if not callerid or "<" not in callerid:
        return None
    return callerid.rsplit("<", 1)[1].rstrip(">").strip() or None


def _match_cidr(value: str) -> list[str]:
    out = []
    for item in _split(value):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            out.append(item)
    return out


@cli("pjsip show endpoints")
def pjsip_show_endpoints(ctx: SimContext, words: list[str]) -> list[str]:
    conf = ctx.loaded("pjsip.conf")
    lines = list(ENDPOINTS_HEADER)
    endpoints = sorted(conf.objects("endpoint"), key=lambda c: c.name)
    for endpoint in endpoints:
        number = _cid_number(conf.value(endpoint, "callerid"))
        ident = f"{endpoint.name}/{number}" if number else endpoint.name
        busy = conf.value(endpoint, "device_state_busy_at") or "0"
        limit = "inf" if busy == "0" else busy
        state = device_state(ctx, conf, endpoint)
        lines.append(f" Endpoint:  {ident:<53}{state:<14}0 of {limit}")
        for label, option in (("InAuth", "auth"), ("OutAuth", "outbound_auth")):
            for name in _split(conf.value(endpoint, option)):
                auth = conf.find(name, "auth")
                user = (conf.value(auth, "username") if auth else None) or name
                lines.append(f"{label + ':':>12}  {name}/{user}")
        for name in _split(conf.value(endpoint, "aors")):
            aor = conf.find(name, "aor")
            if aor is None:
                continue
            lines.append(f"        Aor:  {name:<51}{conf.value(aor, 'max_contacts') or '0'}")
            lines += [
                f"      Contact:  {a:<42} {h} {s:<7} {r:>11}"
                for a, h, s, r in _contacts(ctx, conf, aor)
            ]
        transport = conf.find(conf.value(endpoint, "transport") or "", "transport")
        if transport is not None:
            lines.append(transport_row(conf, transport, "  "))
        for identify in conf.objects("identify"):
            if conf.value(identify, "endpoint") == endpoint.name:
                lines.append(f"   Identify:  {identify.name}/{endpoint.name}")
                lines += [
                    f"        Match: {m}" for m in _match_cidr(conf.value(identify, "match") or "")
                ]
        lines.append("")
    return [*lines, "", f"Objects found: {len(endpoints)}", ""]


@cli("voicemail show users")
def voicemail_show_users(ctx: SimContext, words: list[str]) -> list[str]:
    from drivers.asterisk.sim.office_actions import mailboxes

    boxes = mailboxes(ctx)
    lines = [f"{'Context':<10} {'Mbox':<5} {'User':<25} {'Zone':<10} {'NewMsg':>6}"]
    lines += [f"{c:<10} {m:<5} {p[1]:<25} {o.get('tz', ''):<10} {0:>6}" for c, m, p, o in boxes]
    return [*lines, f"{len(boxes)} voicemail users configured."]


@cli("queue show")
def queue_show(ctx: SimContext, words: list[str]) -> list[str]:
    from drivers.asterisk.sim.office_actions import member_available, queue_members, queues

    conf = ctx.loaded("queues.conf")
    since_login = ctx.live.uptime
    lines: list[str] = []
    for queue in sorted(queues(ctx), key=lambda q: q.name):
        maxlen = conf.value(queue, "maxlen") or "0"
        limit = "unlimited" if maxlen == "0" else maxlen
        lines.append(
            f"{queue.name} has 0 calls (max {limit}) in "
            f"'{conf.value(queue, 'strategy') or 'ringall'}' strategy (0s holdtime, 0s talktime), "
            f"W:{conf.value(queue, 'weight') or '0'}, C:0, A:0, SL:0.0%, SL2:0.0% within "
            f"{conf.value(queue, 'servicelevel') or '0'}s"
        )
        lines.append("   Members: ")
        ringinuse = (conf.value(queue, "ringinuse") or "yes").lower() in ("no", "false", "0")
        for interface, penalty, name, state_interface in queue_members(conf, queue):
            penalty_text = f" with penalty {penalty}" if penalty != "0" else ""
            ring = " (ringinuse disabled)" if ringinuse else ""
            state = "Not in use" if member_available(ctx, state_interface) else "Unavailable"
            lines.append(
                f"      {name} ({interface}){penalty_text}{ring} ({state}) has taken no calls yet "
                f"(login was {since_login} secs ago)"
            )
        lines += ["   No Callers", ""]
    return [*lines, ""]


TRANSPORTS_HEADER = [
    "",
    "Transport:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress....................>",
    "=" * 90,
    "",
]


def transport_row(conf: ConfFile, transport: Category, indent: str = "") -> str:
    protocol = conf.value(transport, "protocol") or "udp"
    cos = conf.value(transport, "cos") or "0"
    tos_value = tos(conf.value(transport, "tos") or "0")
    bind = conf.value(transport, "bind") or ""
    return f"{indent}Transport:  {transport.name:<26}{protocol:<6}{cos:>4}{tos_value:>7}  {bind}"


@cli("pjsip show transports")
def pjsip_show_transports(ctx: SimContext, words: list[str]) -> list[str]:
    conf = ctx.loaded("pjsip.conf")
    transports = sorted(conf.objects("transport"), key=lambda c: c.name)
    lines = [*TRANSPORTS_HEADER, *(transport_row(conf, t) for t in transports)]
    return [*lines, "", f"Objects found: {len(transports)}", ""]


AOR_HEADER = [
    "",
    "      Aor:  <Aor..............................................>  <MaxContact>",
    "    Contact:  <Aor/ContactUri............................> <Hash....> <Status> <RTT(ms)..>",
    "=" * 90,
    "",
]
# `pjsip show aor` parameters, alphabetical, and the AorDetail field each is displayed like.
AOR_PARAMETERS = {
    "authenticate_qualify": "AuthenticateQualify",
    "contact": "",
    "default_expiration": "DefaultExpiration",
    "mailboxes": "Mailboxes",
    "max_contacts": "MaxContacts",
    "maximum_expiration": "MaximumExpiration",
    "minimum_expiration": "MinimumExpiration",
    "outbound_proxy": "OutboundProxy",
    "qualify_2xx_only": "Qualify2xxOnly",
    "qualify_frequency": "QualifyFrequency",
    "qualify_timeout": "QualifyTimeout",
    "remove_existing": "RemoveExisting",
    "remove_unavailable": "RemoveUnavailable",
    "support_path": "SupportPath",
    "voicemail_extension": "VoicemailExtension",
}


@cli("pjsip show aor")
def pjsip_show_aor(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 4:
        return None
    conf = ctx.loaded("pjsip.conf")
    aor = conf.find(words[3], "aor")
    if aor is None:
        return [f"Unable to find object {words[3]}.", ""]
    lines = list(AOR_HEADER)
    lines.append(f"      Aor:  {aor.name:<53}{conf.value(aor, 'max_contacts') or '0'}")
    rows = _contacts(ctx, conf, aor)
    lines += [f"    Contact:  {a:<44} {h} {s:<7} {r:>11}" for a, h, s, r in rows]
    defaults = aor_defaults()
    values = []
    for option, field_name in AOR_PARAMETERS.items():
        configured = conf.value(aor, option)
        default = defaults.get(field_name, "")
        if configured is None:
            values.append((option, default))
        else:
            values.append((option, display(configured, default) if field_name else configured))
    name_width = max(len("ParameterName"), *(len(n) for n, _ in values))
    value_width = max(len("ParameterValue"), *(len(v) for _, v in values))
    lines += ["", "", f" {'ParameterName':<{name_width}} : ParameterValue"]
    lines.append(" " + "=" * (name_width + 3 + value_width))
    lines += [f" {n:<{name_width}} : {v}" for n, v in values]
    return [*lines, ""]
