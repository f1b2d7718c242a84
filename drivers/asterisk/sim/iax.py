"""chan_iax2 over AMI and the CLI: IAXpeerlist, IAXpeers, `iax2 show peers`, `iax2 show peer`
(fixture facts 42-43). Peers are the `type=peer|friend` sections of iax.conf as chan_iax2
loaded them (at start and on `reload chan_iax2.so`), listed in its peer container's order
(563 buckets, unsorted). IAXpeers entries carry no ActionID (fact 42).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.asterisk.sim import ao2
from drivers.asterisk.sim.base import (
    Reply,
    Session,
    SimContext,
    action,
    cli,
    event,
    list_reply,
)
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.wire import Message

YES = {"yes", "true", "1", "on", "y", "t"}
PEER_BUCKETS = 563
# What `iax2 show peer` prints for a peer that configures no codecs (the captured peer 120).
DEFAULT_CODECS = (
    "(g723|gsm|ulaw|alaw|g726aal2|adpcm|slin|lpc10|g729|speex|ilbc|g726|g722|siren7|siren14|slin16)"
)
DEFAULT_CODEC_ORDER = (
    "(ulaw|alaw|siren14|siren7|g722|slin16|slin|g726|g726aal2|adpcm|gsm|ilbc|speex|lpc10|g729|g723)"
)


@dataclass
class Peer:
    name: str
    username: str
    dynamic: bool
    trunk: bool
    host: str
    port: str
    qualify: bool
    section: Category

    @property
    def label(self) -> str:
        return f"{self.name}/{self.username}" if self.username else self.name

    @property
    def status(self) -> str:
        return "UNKNOWN" if self.qualify else "Unmonitored"


def peers(ctx: SimContext) -> list[Peer]:
    conf: ConfFile = ctx.loaded("iax.conf")
    found: dict[str, Peer] = {}
    for section in conf.categories:
        if section.name == "general" or conf.value(section, "type") not in ("peer", "friend"):
            continue
        dynamic = conf.value(section, "host") == "dynamic"
        found.setdefault(
            section.name,
            Peer(
                name=section.name,
                username=conf.value(section, "username") or "",
                dynamic=dynamic,
                trunk=(conf.value(section, "trunk") or "").lower() in YES,
                host="(null)" if dynamic else conf.value(section, "host") or "(null)",
                port="(null)" if dynamic else conf.value(section, "port") or "4569",
                qualify=(conf.value(section, "qualify") or "no").lower()
                not in ("no", "false", "0"),
                section=section,
            ),
        )
    order = ao2.hash_order(list(found), PEER_BUCKETS, sort_in_bucket=False)
    return [found[name] for name in order]


def _tail(peer: Peer) -> list[tuple[str, str]]:
    return [
        ("Dynamic", "yes" if peer.dynamic else "no"),
        ("Trunk", "yes" if peer.trunk else "no"),
        ("Encryption", "no"),
        ("Status", peer.status),
    ]


@action("IAXpeerlist")
def iax_peer_list(ctx: SimContext, session: Session, request: Message) -> Reply:
    items = []
    for peer in peers(ctx):
        names = (
            [("ObjectName", peer.name), ("ObjectUsername", peer.username)]
            if peer.username
            else [("ObjectName", peer.label)]
        )
        fields = [
            ("Channeltype", "IAX"),
            *names,
            ("ChanObjectType", "peer"),
            ("IPaddress", peer.host),
            ("Mask", "(null)"),
            ("Port", peer.port),
            *_tail(peer),
        ]
        items.append(event(request, "PeerEntry", fields))
    return list_reply(request, "IAX Peer status list will follow", items, "PeerlistComplete")


@action("IAXpeers")
def iax_peers(ctx: SimContext, session: Session, request: Message) -> Reply:
    items = [
        event(
            None,  # chan_iax2 leaves the ActionID out of these entries (fact 42)
            "PeerEntry",
            [
                ("Channeltype", "IAX2"),
                ("ObjectName", peer.label),
                ("ChanObjectType", "peer"),
                ("IPaddress", peer.host),
                ("IPport", peer.port),
                *_tail(peer),
                ("Description", ""),
            ],
        )
        for peer in peers(ctx)
    ]
    return list_reply(request, "Peer status list will follow", items, "PeerlistComplete")


@cli("iax2 show peers")
def iax2_show_peers(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 3:
        return None
    listed = peers(ctx)
    lines = [
        f"{'Name/Username':<15.15}  {'Host':<40.40} {'   '}   {'Mask':<40.40}  {'Port':<9} "
        f"{'   '}  {'Status':<11} {'Description':<32.32}"
    ]
    for peer in listed:
        dynamic = "(D)" if peer.dynamic else "(S)"
        trunk = "(T)" if peer.trunk else "   "
        lines.append(
            f"{peer.label:<15.15}  {peer.host:<40.40} {dynamic}  {'(null)':<40.40}  "
            f"{peer.port:<6}{trunk} {'   '}  {peer.status:<11} {'':<32.32}"
        )
    online = 0
    offline = sum(1 for p in listed if p.qualify)
    lines.append(
        f"{len(listed)} iax2 peers [{online} online, {offline} offline, "
        f"{len(listed) - online - offline} unmonitored]"
    )
    return lines


@cli("iax2 show peer")
def iax2_show_peer(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 4:
        return None
    peer = next((p for p in peers(ctx) if p.name == words[3]), None)
    if peer is None:
        return [f"Peer {words[3]} not found.", ""]
    conf = ctx.loaded("iax.conf")

    def opt(key: str, default: str = "") -> str:
        return conf.value(peer.section, key) or default

    callerid = opt("callerid") or "<unspecified>"
    token = opt("requirecalltoken", "yes").lower()
    calltoken = "Auto" if token == "auto" else "No" if token in ("no", "false", "0") else "Yes"
    acl = any(k in ("permit", "deny", "acl") for k, _ in conf.expanded(peer.section))
    return [
        "",
        "",
        f"  * Name       : {peer.name}",
        f"  Description  : {opt('description')}",
        f"  Secret       : {'<Set>' if opt('secret') else '<Not set>'}",
        f"  Context      : {opt('context')}",
        f"  Parking lot  : {opt('parkinglot')}",
        f"  Mailbox      : {opt('mailbox')}",
        f"  Dynamic      : {'Yes' if peer.dynamic else 'No'}",
        f"  Callnum limit: {opt('maxcallnumbers', '0')}",
        f"  Calltoken req: {calltoken}",
        f"  Trunk        : {'Yes' if peer.trunk else 'No'}",
        "  Encryption   : No",
        f"  Callerid     : {callerid}",
        "  Expire       : -1",
        f"  ACL          : {'Yes' if acl else 'No'}",
        f"  Addr->IP     : {peer.host} Port {peer.port}",
        "  Defaddr->IP  : (null) Port (null)",
        f"  Username     : {peer.username}",
        f"  Codecs       : {DEFAULT_CODECS}",
        f"  Codec Order  : {DEFAULT_CODEC_ORDER}",
        f"  Status       : {peer.status}",
        "  Qualify      : every 60000ms when OK, every 10000ms when UNREACHABLE "
        "(sample smoothing Off)",
        "",
    ]
