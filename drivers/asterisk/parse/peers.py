"""chan_iax2 and chan_sip peers: the live peer list (IAXpeerlist / SIPpeers) is what the PBX
runs; the configuration (GetConfig iax.conf / sip.conf) and the dialplan say what a peer is,
because the lists cannot tell a phone's peer from a trunk's (capture 2, facts 42-43). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from drivers.asterisk import wire
from drivers.asterisk.parse.config import effective_options, parse_callerid
from drivers.asterisk.parse.dialplan import PeerDials
from drivers.asterisk.parse.getconfig import Section
from drivers.asterisk.parse.lists import events
from drivers.errors import ParseError
from drivers.models import Contact, Endpoint, PeerConfig

TECHNOLOGY = {"IAX": "IAX2", "IAX2": "IAX2", "SIP": "SIP"}
PEER_TYPES = ("peer", "friend")
NO_ADDRESS = ("", "(null)", "-none-", "0.0.0.0")
# Options read from iax.conf/sip.conf; secrets are never among them (fact 10).
PEER_OPTIONS = frozenset(
    {"type", "host", "trunk", "callerid", "context", "username", "defaultuser", "mailbox"}
)


@dataclass(frozen=True, slots=True)
class LivePeer:
    """One PeerEntry of IAXpeerlist or SIPpeers."""

    name: str
    technology: str
    address: str  # "ip:port" when a device is registered, else ""
    status: str


def keep_peer_option(option: str) -> bool:
    """What is read of iax.conf/sip.conf (`ConfigReader`): the options above and `register`
    lines (whose secrets `parse_register` drops at once)."""
    return option in PEER_OPTIONS or option == "register"


def parse_register(value: str) -> tuple[str, str]:
    """`register => user[:secret[:authuser]]@host[:port][/extension]` -> (user, host)."""
    value = value.lstrip(">").strip()
    userpart, _, hostpart = value.rpartition("@")
    user = userpart.split(":")[0].split("?")[-1]
    host = hostpart.split("/")[0].split(":")[0]
    return user.strip(), host.strip()


def parse_live_peers(messages: Sequence[wire.Message]) -> tuple[LivePeer, ...]:
    """PeerEntry events of IAXpeerlist or SIPpeers (fact 42: IAXpeers is not the same list)."""
    peers = []
    for m in events(messages, "PeerEntry"):
        technology = TECHNOLOGY.get((wire.get(m, "Channeltype") or "").upper())
        name = wire.get(m, "ObjectName")
        if technology is None or not name:
            continue
        if "/" in name:  # IAXpeers writes name/username
            name = name.split("/", 1)[0]
        ip = (wire.get(m, "IPaddress") or "").strip()
        port = (wire.get(m, "Port") or wire.get(m, "IPport") or "").strip()
        address = "" if ip in NO_ADDRESS else f"{ip}:{port}" if port not in NO_ADDRESS else ip
        peers.append(LivePeer(name, technology, address, (wire.get(m, "Status") or "").strip()))
    return tuple(sorted(peers, key=lambda p: p.name))


def peer_endpoint(
    technology: str,
    section: Section,
    registered_to: set[str],
    dials: Mapping[tuple[str, str], PeerDials],
) -> Endpoint:
    """A configured peer as an endpoint, with the evidence the counting rules weigh."""
    host = (section.get("host") or "").strip()
    dynamic = host.lower() == "dynamic"
    dialled = dials.get((technology, section.name), PeerDials())
    name, number = parse_callerid(section.get("callerid"))
    users = {section.name, section.get("username") or "", section.get("defaultuser") or ""}
    return Endpoint(
        name=section.name,
        technology=technology,
        callerid_name=name,
        callerid_number=number,
        context=section.get("context"),
        aors=(section.name,),
        mailboxes=tuple(m.strip() for m in (section.get("mailbox") or "").split(",") if m.strip()),
        inbound_auth=dynamic,
        peer=PeerConfig(
            dynamic=dynamic,
            host="" if dynamic else host,
            trunk_flag=(section.get("trunk") or "").lower() in ("yes", "true", "1", "on"),
            registers=bool((users - {""}) & registered_to)
            or (not dynamic and host in registered_to),
            dialled_by=tuple(sorted(dialled.extensions)),
            dialled_with_number=dialled.with_number,
        ),
        options=effective_options(section),
    )


@dataclass(frozen=True, slots=True)
class Peers:
    endpoints: tuple[Endpoint, ...]
    contacts: tuple[Contact, ...]
    warnings: tuple[str, ...]


def parse_peers(
    technology: str,
    config: Sequence[Section],
    live: Sequence[LivePeer],
    dials: Mapping[tuple[str, str], PeerDials],
) -> Peers:
    """Peers as the PBX runs them (the live list), described by their configuration. A peer
    in the file but not loaded, or loaded but gone from the file, is reported with both
    views; the live one counts."""
    registered_to: set[str] = set()
    sections: dict[str, Section] = {}
    for section in config:
        if section.name == "general":
            for value in section.get_all("register"):
                try:
                    user, host = parse_register(value)
                except (ValueError, IndexError) as exc:  # pragma: no cover - defensive
                    raise ParseError(f"{technology}: unreadable register line") from exc
                registered_to |= {user, host}
        elif (section.get("type") or "").lower() in PEER_TYPES:
            sections.setdefault(section.name, section)
    endpoints, contacts, warnings = [], [], []
    for peer in live:
        configured = sections.get(peer.name)
        if configured is None:
            warnings.append(
                f"{technology} peer {peer.name} is loaded in Asterisk but not in its "
                "configuration file: counted as Asterisk runs it, with no caller ID or host "
                "to judge it by (it goes at the next reload)"
            )
            configured = Section(peer.name, (("type", "peer"), ("host", "dynamic")))
        endpoints.append(peer_endpoint(technology, configured, registered_to, dials))
        if peer.address:
            contacts.append(
                Contact(
                    aor=peer.name,
                    uri=f"{technology.lower()}:{peer.name}@{peer.address}",
                    source=peer.address,
                    status=peer.status,
                )
            )
    running = {p.name for p in live}
    for name in sorted(set(sections) - running):
        warnings.append(
            f"{technology} peer {name} is in its configuration file but not loaded in Asterisk: "
            f"not counted until {'chan_iax2' if technology == 'IAX2' else 'chan_sip'} is reloaded"
        )
    return Peers(tuple(endpoints), tuple(contacts), tuple(warnings))
