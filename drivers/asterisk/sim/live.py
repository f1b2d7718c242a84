"""The simulated office's runtime state: what config files do not hold (registered contacts,
trunk registration status, clocks). Loaded from the office TOML:

    [[contacts]]                 # one per registered (dynamic) contact
    aor = "101"
    uri = "sip:101@127.0.0.11:5060"
    user_agent = "Yealink SIP-T46S 66.86.0.15"
    status = "Reachable"         # Reachable | Unreachable | NonQualified
    rtt_usec = 448               # optional
    call_id = "1-8965@127.0.0.11"  # optional
    expires_in = 3600            # optional: seconds until the registration expires

A device whose contact is Unreachable never answers (qualify or call); the others answer.

    [registrations]              # outbound registration name -> status
    trunk-provider-reg = "Rejected"
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CONTACT_STATUSES = ("Reachable", "Unreachable", "NonQualified")


@dataclass(eq=False)
class Contact:
    aor: str
    uri: str
    user_agent: str
    status: str = "NonQualified"
    rtt_usec: int = 0
    call_id: str = ""
    expires_at: int = 0
    answers: bool | None = None  # the device answers OPTIONS and INVITEs (None: from status)
    expires_in: int = 3600

    def __post_init__(self) -> None:
        if self.answers is None:
            self.answers = self.status != "Unreachable"
        if not self.expires_at:
            self.expires_at = int(time.time()) + self.expires_in

    @property
    def object_name(self) -> str:
        """Asterisk names a dynamic contact `<aor>;@<md5 of the uri>`."""
        return f"{self.aor};@{hashlib.md5(self.uri.encode()).hexdigest()}"

    @property
    def via(self) -> tuple[str, int]:
        parts = urlsplit(self.uri.replace("sip:", "sip://", 1))
        return parts.hostname or "", parts.port or 5060


@dataclass
class LiveState:
    """`contacts` are the registrar's bindings (what PJSIPShowContacts lists); `devices` are
    the phones, which believe they are registered until told otherwise: a binding removed
    behind a phone's back (DBDel) comes back at its next refresh (fact 41)."""

    contacts: list[Contact] = field(default_factory=list)
    devices: list[Contact] = field(default_factory=list)
    registrations: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    reloaded_at: float = field(default_factory=time.time)
    booting: bool = False
    maintenance: set[str] = field(default_factory=set)  # endpoints in maintenance mode
    astdb: dict[str, str] = field(default_factory=dict)  # AstDB keys other than contacts
    # Bindings deleted from AstDB behind the registrar's back: gone from every list, but the
    # endpoint's device state still counts them until something really changes (fact 40).
    ghosts: list[Contact] = field(default_factory=list)
    channels: int = 0  # channels created since start (Uniqueid sequence)
    pjsip_channels: int = 0  # PJSIP channel names' sequence
    local_channels: int = 0  # Local channel names' sequence
    _settled: dict[str, tuple[str, int]] = field(default_factory=dict)
    _settled_registrations: dict[str, str] = field(default_factory=dict)
    _index: dict[str, list[Contact]] = field(default_factory=dict, repr=False)
    _index_key: tuple[int, int, int] = (0, -1, 0)
    _generation: int = 0

    def boot(self) -> None:
        """A restart: clocks from now; registered contacts restored from the internal
        database as NonQualified until re-qualified, outbound registrations Unregistered
        until their first attempt ends (fixture facts 14-15)."""
        self.started_at = self.reloaded_at = time.time()
        self.booting = True
        self.forget_runtime()
        self._settled = {c.object_name: (c.status, c.rtt_usec) for c in self.contacts}
        self._settled_registrations = dict(self.registrations)
        for contact in self.contacts:
            contact.status, contact.rtt_usec = "NonQualified", 0
        self.registrations = dict.fromkeys(self.registrations, "Unregistered")

    def settle(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """End of the boot phase: qualify results and registration outcomes, as the
        (event name, fields) Asterisk broadcasts for them, in order."""
        events: list[tuple[str, list[tuple[str, str]]]] = []
        reachable: set[str] = set()
        for contact in self.contacts:
            status, rtt = self._settled.get(contact.object_name, (contact.status, 0))
            contact.status, contact.rtt_usec = status, rtt
            if status == "Reachable" and contact.aor not in reachable:
                reachable.add(contact.aor)
                peer = [("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{contact.aor}")]
                events.append(("PeerStatus", [*peer, ("PeerStatus", "Reachable")]))
            if status in ("Reachable", "Unreachable"):
                fields = [
                    ("URI", contact.uri),
                    ("ContactStatus", status),
                    ("AOR", contact.aor),
                    ("EndpointName", contact.aor),
                ]
                fields.append(("RoundtripUsec", str(rtt if status == "Reachable" else 0)))
                events.append(("ContactStatus", fields))
        self.registrations = dict(self._settled_registrations) or self.registrations
        self.booting = False
        return events

    def forget_runtime(self) -> None:
        """What a restart loses: maintenance mode (fact 38), channel sequences, device states
        of deleted bindings."""
        self.maintenance.clear()
        self.ghosts.clear()
        self.channels = self.pjsip_channels = self.local_channels = 0

    def attempt_registration(self, name: str) -> str:
        """An outbound registration is (re)tried: its outcome is the office's."""
        outcome = self._settled_registrations.get(name) or self.registrations.get(name)
        self.registrations[name] = outcome or "Unregistered"
        return self.registrations[name]

    def fully_booted(self) -> None:
        """The start-up phase is over (a session logging in now gets the usual FullyBooted);
        contacts not yet qualified stay as they are."""
        self.booting = False

    def unplug_all(self) -> None:
        """Every device is switched off: nothing answers qualify or calls any more."""
        for device in self.devices:
            device.answers = False

    def qualify(self, aor: str, qualify_frequency: int) -> list[tuple[str, list[tuple[str, str]]]]:
        """Qualify the contacts of `aor` now: their new status from whether the device
        answers, and the events Asterisk sends for each change (ContactStatus; PeerStatus when
        the endpoint becomes reachable)."""
        events: list[tuple[str, list[tuple[str, str]]]] = []
        if qualify_frequency <= 0:
            return events
        for contact in self.contacts_of(aor):
            status = "Reachable" if contact.answers else "Unreachable"
            if status == contact.status:
                continue
            settled = self._settled.get(contact.object_name)
            rtt = (settled[1] if settled else 0) or contact.rtt_usec
            contact.status, contact.rtt_usec = status, rtt if status == "Reachable" else 0
            if status == "Reachable":
                peer = [("ChannelType", "PJSIP"), ("Peer", f"PJSIP/{aor}")]
                events.append(("PeerStatus", [*peer, ("PeerStatus", "Reachable")]))
            events.append(
                (
                    "ContactStatus",
                    [
                        ("URI", contact.uri),
                        ("ContactStatus", status),
                        ("AOR", aor),
                        ("EndpointName", aor),
                        ("RoundtripUsec", str(contact.rtt_usec)),
                    ],
                )
            )
        return events

    @classmethod
    def from_toml(cls, office: dict[str, Any]) -> LiveState:
        now = int(time.time())
        contacts = []
        for i, raw in enumerate(office.get("contacts", [])):
            where = f"contacts[{i}]"
            try:
                contact = Contact(
                    aor=str(raw["aor"]),
                    uri=str(raw["uri"]),
                    user_agent=str(raw["user_agent"]),
                    status=str(raw.get("status", "NonQualified")),
                    rtt_usec=int(raw.get("rtt_usec", 0)),
                    call_id=str(raw.get("call_id", "")),
                    expires_at=now + int(raw.get("expires_in", 7200)),
                    expires_in=int(raw.get("expires_in", 7200)),
                )
            except KeyError as exc:
                raise ValueError(f"{where}: missing key {exc.args[0]!r}") from exc
            if contact.status not in CONTACT_STATUSES:
                raise ValueError(f"{where}.status: expected one of {', '.join(CONTACT_STATUSES)}")
            contacts.append(contact)
        registrations = {str(k): str(v) for k, v in office.get("registrations", {}).items()}
        return cls(contacts=contacts, devices=list(contacts), registrations=registrations)

    def add_contact(self, contact: Contact) -> None:
        self.contacts.append(contact)
        self.ghosts = [c for c in self.ghosts if c is not contact]
        self._generation += 1

    def remove_contact(self, contact: Contact) -> None:
        self.contacts = [c for c in self.contacts if c is not contact]
        self.ghosts = [c for c in self.ghosts if c is not contact]
        self._generation += 1

    def forget_binding(self, contact: Contact) -> None:
        """The contact's AstDB row was deleted (DBDel)."""
        self.remove_contact(contact)
        self.ghosts.append(contact)

    def ghosts_of(self, aor: str) -> list[Contact]:
        return [c for c in self.ghosts if c.aor == aor]

    def contacts_of(self, aor: str) -> list[Contact]:
        key = (id(self.contacts), len(self.contacts), self._generation)
        if self._index_key != key:  # rebuilt when contacts are added or removed
            self._index = {}
            for contact in self.contacts:
                self._index.setdefault(contact.aor, []).append(contact)
            self._index_key = key
        return list(self._index.get(aor, ()))

    @property
    def uptime(self) -> int:
        return int(time.time() - self.started_at)

    @property
    def since_reload(self) -> int:
        return int(time.time() - self.reloaded_at)
