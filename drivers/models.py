"""Typed results every driver returns and the agent consumes: frozen, slotted dataclasses."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")  # an IPv4 part as ipaddress accepts it


class Capability(StrEnum):
    """What a driver can do. The agent never calls what a driver did not declare."""

    FACTS = "facts"
    ENDPOINTS = "endpoints"
    EVENTS = "events"
    INVENTORY = "inventory"
    REGISTRATIONS = "registrations"
    FEATURES = "features"


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


class DeviceKind(StrEnum):
    """What kind of device a registered contact is, from its user agent or config."""

    DESK_PHONE = "desk_phone"
    CORDLESS = "cordless"
    CONFERENCE = "conference"
    APP = "app"
    ATA = "ata"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Contact:
    """A device bound to an address of record: registered (dynamic) or configured (static).

    Attributes:
        aor: the address of record it is bound to (a chan_iax2/chan_sip peer's own name).
        uri: the contact URI (``iax2:name@address`` for an IAX2 peer).
        user_agent: the SIP User-Agent it registered with ("" for static contacts).
        source: "address:port" it registered from, when known.
        status: the PBX's reachability word, e.g. ``Reachable``, ``Unreachable``.
        rtt_usec: the last qualify round-trip in microseconds, when measured.
        static: True for a contact written in the configuration (trunks).
    """

    aor: str
    uri: str
    user_agent: str = ""
    source: str = ""
    status: str = ""
    rtt_usec: int | None = None
    static: bool = False

    @property
    def address_key(self) -> tuple[int, int, int, str]:
        """Orders devices by address numerically (127.0.1.13 before 127.0.1.113), then port;
        an address that is not an IP sorts last, by its text."""
        where = self.source or self.uri.partition("@")[2] or self.uri.partition(":")[2]
        host, port = where, ""
        if where.startswith("["):
            host, _, rest = where[1:].partition("]")
            port = rest.lstrip(":")
        elif where.count(":") == 1:
            host, _, port = where.partition(":")
        port = port.split(";")[0]
        port_number = int(port) if port.isdigit() else 0
        host = host.split(";")[0]
        octets = host.split(".")
        if len(octets) == 4 and all(_OCTET.fullmatch(o) for o in octets):
            a, b, c, d = (int(o) for o in octets)  # the common case, without ipaddress
            if max(a, b, c, d) <= 255:
                return (4, a << 24 | b << 16 | c << 8 | d, port_number, "")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return (9, 0, 0, where)
        return (address.version, int(address), port_number, "")


@dataclass(frozen=True, slots=True)
class Aor:
    name: str
    max_contacts: int
    static_contacts: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """What the configuration says about a chan_iax2 or chan_sip peer.

    The live peer lists cannot tell a phone's peer from a trunk's (capture 2, facts 42-43:
    both are `Dynamic: yes`, `Trunk: no`, no caller ID), so the counting rules decide from this.

    Attributes:
        dynamic: ``host=dynamic``: a device registers to it.
        host: the static host when not dynamic ("" when none is set).
        trunk_flag: ``trunk=yes``.
        registers: a ``register =>`` line of the same file names it (the PBX registers there).
        dialled_by: extensions whose dialplan dials it as a device, or whose hint shows it.
        dialled_with_number: outbound routes dial numbers through it (``IAX2/name/${EXTEN}``).
    """

    dynamic: bool = False
    host: str = ""
    trunk_flag: bool = False
    registers: bool = False
    dialled_by: tuple[str, ...] = ()
    dialled_with_number: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A configured endpoint with what the counting rules need to know about it.

    Attributes:
        name: the endpoint's name, e.g. ``102-app``.
        technology: ``PJSIP``, ``SIP`` or ``IAX2``.
        callerid_name, callerid_number: from its caller ID, when set.
        context: the dialplan context its calls start in.
        aors: the addresses of record it uses.
        mailboxes: voicemail boxes it shows (``102@default``).
        inbound_auth: it authenticates devices registering to it.
        outbound_auth: it authenticates to a remote server (a trunk does).
        identify: it is matched by source address (a trunk does).
        outbound_registration: the PBX registers it to a provider (a trunk does).
        pbx_link: the extension the PBX itself associates it with, if the PBX records one.
        cannot_register: why no device can register to it, when the PBX says so (e.g. a
            FreeSWITCH user with ``sip-forbid-register``); such an endpoint is no seat.
        peer: for chan_iax2/chan_sip peers, what their configuration says (None for PJSIP).
        options: the effective options as Asterisk has them (templates and `(+)` additions
            merged, last value wins; options that accumulate, such as ``allow``, keep every
            value in order). Secrets are never kept.
    """

    name: str
    technology: str = "PJSIP"
    callerid_name: str | None = None
    callerid_number: str | None = None
    context: str | None = None
    aors: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    inbound_auth: bool = False
    outbound_auth: bool = False
    identify: bool = False
    outbound_registration: bool = False
    pbx_link: str | None = None
    cannot_register: str | None = None
    peer: PeerConfig | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Mailbox:
    context: str
    mailbox: str
    name: str = ""

    @property
    def address(self) -> str:
        return f"{self.mailbox}@{self.context}"


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hint:
    """A dialplan hint: the devices whose state makes up an extension's state."""

    extension: str
    context: str
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DialplanObject:
    """A virtual object reachable by dialling: IVR, ring group, queue, conference, paging...

    `kind` is one of: ivr, route (an inbound route into a phone tree), ring_group, queue,
    conference, paging, intercom, parking, voicemail, feature (a feature code such as ``*97``).
    """

    context: str
    extension: str
    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Registration:
    """An outbound registration the PBX makes to a provider (part of a trunk)."""

    name: str
    endpoint: str | None
    server_uri: str
    client_uri: str
    status: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything on the PBX that the counting rules look at, in a stable order.

    A multi-tenant PBX (FreeSWITCH: one directory domain per customer) gives one inventory
    per tenant in `tenants`, each with its `tenant` name; the objects of the outer inventory
    are then those no tenant owns (gateways on a shared profile, for instance).
    """

    facts: PbxFacts
    endpoints: tuple[Endpoint, ...] = ()
    aors: tuple[Aor, ...] = ()
    contacts: tuple[Contact, ...] = ()
    registrations: tuple[Registration, ...] = ()
    mailboxes: tuple[Mailbox, ...] = ()
    queues: tuple[Queue, ...] = ()
    hints: tuple[Hint, ...] = ()
    dialplan: tuple[DialplanObject, ...] = ()
    manager_users: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    tenant: str | None = None
    tenants: tuple[Inventory, ...] = ()


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One file a driver offers for a configuration backup.

    Attributes:
        path: relative POSIX path inside the backup (never absolute, never ``..``).
        size: bytes, as listed (a file that changes while it is read fails the backup).
        mode: permission bits.
        mtime: modification time, seconds since the epoch.
    """

    path: str
    size: int
    mode: int
    mtime: float


# -- switching subscription features (vendor-neutral; see drivers.base.Driver) ---------------


class SwitchKind(StrEnum):
    """How a switch lives on the PBX, which decides how it is checked and undone.

    CONFIG   configuration the agent owns, in a place the PBX's own tooling never overwrites
             (e.g. an Asterisk `(+)` block in a FreePBX `*_custom*` file, an `auth-acl` line
             in a FreeSWITCH directory file); it survives restarts, needs a reload to act.
    RUNTIME  live state that the PBX forgets when it restarts (Asterisk maintenance mode): it
             must be checked after every restart and set again.
    CUT      one-shot removal of live state, e.g. a registration (Asterisk DBDel of a contact,
             FreeSWITCH `flush_inbound_reg`): nothing to undo; it holds only while a CONFIG or
             RUNTIME switch refuses the device's next attempt.
    """

    CONFIG = "config"
    RUNTIME = "runtime"
    CUT = "cut"


@dataclass(frozen=True, slots=True)
class Switch:
    """One change that switches (part of) a subscription feature off on the PBX.

    Two switches are the same change only when every field is equal: a different `value` for
    the same target (e.g. the site's networks changed) is a new switch, the old one is undone.

    Attributes:
        feature: the subscription feature, e.g. ``softphone_app``.
        kind: how it lives on the PBX (`SwitchKind`).
        target: the PBX object it acts on, as the PBX names it, e.g. ``endpoint 102-app``,
            ``manager user crm``, ``contact 102-app;@24ff4...``.
        place: where the change lives: a config file (``pjsip.endpoint_custom_post.conf``), a
            runtime facility (``maintenance``), the registrar (``registrar``).
        value: exactly what the agent puts there (the text of its block, ``enabled``, ...).
    """

    feature: str
    kind: SwitchKind
    target: str
    place: str
    value: str


@dataclass(frozen=True, slots=True)
class Unswitchable:
    """Something a feature covers that this PBX cannot switch, reported by name."""

    target: str  # e.g. "seat 101 (Alice Nguyen)"
    reason: str  # why, and what would make it switchable


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    """How the driver switches one feature off on this PBX, now.

    Attributes:
        feature: the subscription feature.
        how: one line for technicians: the mechanism chosen on this PBX and why.
        switches: the changes that make it off (CUT switches are this moment's live targets).
        unswitchable: what the feature covers but this PBX cannot switch (named).
        refused: set when the feature cannot be switched at all here: the reason and the fix.
        applicable: False when this PBX has no such feature (nothing to switch, nothing on).
    """

    feature: str
    how: str
    switches: tuple[Switch, ...] = ()
    unswitchable: tuple[Unswitchable, ...] = ()
    refused: str | None = None
    applicable: bool = True


class SwitchState(StrEnum):
    """What the driver found of a switch on the live PBX objects."""

    IN_EFFECT = "in_effect"  # proven on the live objects (never on a reload's answer)
    ABSENT = "absent"  # not in effect: never made, undone, or lost (restart, PBX tooling)
    CONFLICT = "conflict"  # changed by someone else since the agent made it: left alone
    FAILED = "failed"  # could not be made safely; nothing was changed (detail says why)


@dataclass(frozen=True, slots=True)
class SwitchOutcome:
    """A switch after applying, checking or undoing it.

    Attributes:
        switch: the switch.
        state: what the live PBX shows now.
        detail: the proof seen, or why it is not in effect.
    """

    switch: Switch
    state: SwitchState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SeatRef:
    """A person's seat, as the counting report names it."""

    extension: str
    name: str = ""

    def label(self) -> str:
        return f"{self.extension} ({self.name})" if self.name else self.extension


@dataclass(frozen=True, slots=True)
class FeaturePolicy:
    """What switching features off acts on, from the agent's counting and config.

    Attributes:
        app_endpoints: endpoints only softphone apps use (the app of a seat, or an app-only
            seat): switched off entirely under ``softphone_app``.
        phone_endpoints: endpoints of phones (``offsite_devices`` acts on them).
        new_endpoints: phone-type endpoints that appeared after the lapse began: switched off
            entirely under ``add_extensions``.
        shared_app_seats: seats whose app registers on the same endpoint as a phone, with that
            endpoint: the PBX cannot tell the app from the phone.
        integration_accounts: management-API accounts used by CRM/API tools.
        lan_subnets: the site's networks (devices outside them are off-site).
    """

    app_endpoints: tuple[str, ...] = ()
    phone_endpoints: tuple[str, ...] = ()
    new_endpoints: tuple[str, ...] = ()
    shared_app_seats: tuple[tuple[SeatRef, str], ...] = ()
    integration_accounts: tuple[str, ...] = ()
    lan_subnets: tuple[str, ...] = ()
