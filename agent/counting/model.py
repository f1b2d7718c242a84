"""The count report: what is billed and why, in plain data that renders to text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REPORT_SCHEMA = "pbx-agent/count-report/1"


@dataclass(frozen=True, slots=True)
class Device:
    """A device seen on a seat: a registered contact, classified from its user agent."""

    endpoint: str
    kind: str
    user_agent: str
    uri: str
    source: str
    status: str
    rtt_usec: int | None
    rule: str  # how it joined the seat: "extension", "same_aor", or the endpoint's link rule


@dataclass(frozen=True, slots=True)
class SeatEndpoint:
    endpoint: str
    role: str  # "phone" or "app" (an endpoint whose devices are all apps)
    rule: str  # "extension" for the seat's own endpoint, else the link rule that merged it
    also: tuple[str, ...] = ()  # weaker rules that point the same way
    technology: str = "PJSIP"  # PJSIP, SIP or IAX2
    evidence: tuple[str, ...] = ()  # why an IAX2/SIP peer counts as a phone


@dataclass(frozen=True, slots=True)
class Seat:
    extension: str
    name: str
    kind: str
    endpoints: tuple[SeatEndpoint, ...]
    devices: tuple[Device, ...]
    registered: bool
    last_registered: str | None
    stale: bool
    tenant: str | None = None  # the tenant (FreeSWITCH domain) on a multi-tenant PBX


@dataclass(frozen=True, slots=True)
class Excluded:
    kind: str  # endpoint, trunk, registration, mailbox, ivr, queue, ring_group, ...
    name: str
    reason: str
    tenant: str | None = None  # None on a multi-tenant PBX: shared by every tenant


@dataclass(frozen=True, slots=True)
class TenantCount:
    """One tenant's part of a multi-tenant PBX's count."""

    tenant: str
    billable: int
    excluded: int
    stale: int
    warnings: int
    totals: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CountReport:
    schema: str
    generated_at: str
    site_id: str
    pbx: dict[str, Any]
    billable: int
    seats: tuple[Seat, ...]
    excluded: tuple[Excluded, ...]
    stale: tuple[str, ...]
    warnings: tuple[str, ...]
    totals: dict[str, int] = field(default_factory=dict)
    tenants: tuple[TenantCount, ...] = ()  # each tenant of a multi-tenant PBX; () otherwise

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
