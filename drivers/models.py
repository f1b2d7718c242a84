"""Typed results every driver returns and the agent consumes: frozen, slotted dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Capability(StrEnum):
    """What a driver can do. The agent never calls what a driver did not declare."""

    FACTS = "facts"
    ENDPOINTS = "endpoints"
    EVENTS = "events"


@dataclass(frozen=True, slots=True)
class PbxFacts:
    """Identity and liveness of the PBX.

    Attributes:
        vendor: e.g. ``asterisk``.
        version: the PBX software version, e.g. ``22.10.1``.
        system_name: the PBX's own name for itself, if it has one.
        startup_time: when the PBX process started (aware, UTC).
        reload_time: when its configuration was last reloaded (aware, UTC).
        uptime_seconds: seconds since start-up, as measured when the facts were read.
        api_version: version of the management protocol, e.g. AMI ``11.0.0``.
    """

    vendor: str
    version: str
    system_name: str | None = None
    startup_time: datetime | None = None
    reload_time: datetime | None = None
    uptime_seconds: int | None = None
    api_version: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """One endpoint as the PBX lists it, before any billing rule is applied.

    Attributes:
        name: the endpoint's identifier on the PBX (e.g. ``101`` or ``trunk-provider``).
        technology: e.g. ``PJSIP``.
        device_state: the PBX's device state text, e.g. ``Not in use``, ``Unavailable``.
        aors: the address-of-record names the endpoint uses.
        contacts: the contact URIs currently bound (registered or static).
        active_channels: number of channels in use.
    """

    name: str
    technology: str
    device_state: str
    aors: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()
    active_channels: int = 0
