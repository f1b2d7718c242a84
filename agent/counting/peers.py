"""The rule for chan_iax2 and chan_sip peers, whose live lists cannot tell a phone from a
trunk (capture 2, facts 42-43): the peer's configuration and the dialplan decide."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.models import Endpoint

PEER_RULE = (
    "An IAX2 or SIP peer is a seat when a phone registers to it (host=dynamic) and it has a "
    "caller ID or an extension that dials it; it is a trunk when it has trunk=yes, a static "
    "host, a register => line or is dialled only from outbound routes, or when nothing marks "
    "it as a phone. With signs of both it counts as a seat, with a warning naming the setting "
    "that settles it."
)


@dataclass(frozen=True, slots=True)
class PeerVerdict:
    seat: bool
    phone: tuple[str, ...]  # the signs of a phone
    trunk: tuple[str, ...]  # the signs of a trunk

    @property
    def mixed(self) -> bool:
        return bool(self.phone and self.trunk)


def judge(endpoint: Endpoint) -> PeerVerdict:
    """Seat or trunk, with the evidence each way. Only for endpoints with a `peer`."""
    peer = endpoint.peer
    assert peer is not None
    phone: list[str] = []
    if peer.dynamic and (endpoint.callerid_number or peer.dialled_by):
        phone.append("a phone registers to it (host=dynamic)")
    if endpoint.callerid_number:
        phone.append(f"caller ID <{endpoint.callerid_number}>")
    if peer.dialled_by:
        shown = ", ".join(peer.dialled_by[:3]) + (" ..." if len(peer.dialled_by) > 3 else "")
        phone.append(f"dialled as a phone by extension {shown}")
    trunk: list[str] = []
    if peer.trunk_flag:
        trunk.append("trunk=yes")
    if peer.host:
        trunk.append(f"static host {peer.host}")
    if peer.registers:
        trunk.append("a register => line names it")
    if peer.dialled_with_number and not peer.dialled_by:
        trunk.append("dialled only from outbound routes")
    return PeerVerdict(seat=bool(phone), phone=tuple(phone), trunk=tuple(trunk))


def trunk_reason(endpoint: Endpoint, verdict: PeerVerdict) -> str:
    if verdict.trunk:
        return f"trunk: {endpoint.technology} peer ({'; '.join(verdict.trunk)})"
    return (
        f"trunk: {endpoint.technology} peer with no caller ID and no extension that dials it "
        "(a link to another PBX)"
    )


def mixed_warning(endpoint: Endpoint, verdict: PeerVerdict) -> str:
    key = f'[counting.endpoints."{endpoint.name}"]'
    return (
        f"{endpoint.technology} peer {endpoint.name} shows signs of a phone "
        f"({'; '.join(verdict.phone)}) and of a trunk ({'; '.join(verdict.trunk)}): counted as a "
        f'seat. If it links to another PBX, set {key} exclude = "trunk to <where>" in the agent '
        f'config; if it is a phone, set {key} kind = "desk_phone" (or the kind it is) to confirm'
    )
