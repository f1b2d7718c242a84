"""What the simulated switch holds: registered devices (a row of sofia's table), gateways,
SIP profiles, calls, ACL lists; and small helpers shared by the simulator's modules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import xmldoc

EXPIRES_MARGIN = 60  # sip-expires-late-margin (fact 25)


@dataclass
class Registration:
    """One row of sofia's sip_registrations table (one Contact)."""

    profile: str
    user: str
    realm: str
    uri: str
    call_id: str
    agent: str
    expires: int
    registered_at: float
    ip: str
    port: str
    ping_status: str = "Reachable"
    ping_us: int = 0
    transport: str = "udp"
    rpid: str = "unknown"

    @property
    def contact(self) -> str:
        return f'"" <{self.uri}>'  # FreeSWITCH adds an empty display name (fact 28)

    @property
    def status(self) -> str:
        return f"Registered({self.transport.upper()})"

    @property
    def expiry(self) -> int:
        return int(self.registered_at) + self.expires + EXPIRES_MARGIN


@dataclass
class Gateway:
    profile: str
    name: str
    params: dict[str, str]
    state: str = "NOREG"
    status: str = "DOWN"
    retry_at: float = 0.0

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    @property
    def registers(self) -> bool:
        return d.is_true(self.params.get("register", "false"))

    @property
    def register_to(self) -> str:
        user = self.param("username", self.name)
        return f"sip:{user}@{self.param('realm', self.param('proxy', self.name))}"


@dataclass
class Profile:
    name: str
    params: dict[str, str]
    aliases: list[str] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    @property
    def url(self) -> str:
        return f"sip:mod_sofia@{self.param('sip-ip')}:{self.param('sip-port', '5060')}"


@dataclass
class Channel:
    uuid: str
    direction: str
    created: float
    name: str
    cid_name: str
    cid_num: str
    dest: str
    context: str
    application: str
    application_data: str
    callee_name: str
    callee_num: str
    callee_direction: str
    call_uuid: str
    initial_cid_name: str
    initial_cid_num: str


@dataclass
class AclList:
    default_allow: bool
    nodes: list[tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]]

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        best: tuple[int, bool] | None = None
        for allow, network in self.nodes:
            fits = ip.version == network.version and ip in network
            if fits and (best is None or network.prefixlen >= best[0]):
                best = (network.prefixlen, allow)
        return self.default_allow if best is None else best[1]


def params_of(element: xmldoc.Element) -> list[tuple[str, str]]:
    return [(p.attr("name") or "", p.attr("value") or "") for p in element.all("param")]


def host_port(uri: str) -> tuple[str, str]:
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";", 1)[0]
    host, _, port = rest.partition(":")
    return host, port or "5060"


def uptime_text(seconds: float) -> str:
    """``0 years, 0 days, 0 hours, 1 minute, 20 seconds, 35 milliseconds, 394
    microseconds``: singular for 1 (fact 35, ``api status``)."""
    micros = int(seconds * 1_000_000)
    parts = []
    for unit, size in (
        ("year", 365 * 86400 * 10**6),
        ("day", 86400 * 10**6),
        ("hour", 3600 * 10**6),
        ("minute", 60 * 10**6),
        ("second", 10**6),
        ("millisecond", 1000),
        ("microsecond", 1),
    ):
        count, micros = divmod(micros, size)
        parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return ", ".join(parts)
