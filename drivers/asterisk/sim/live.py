"""The simulated office's runtime state: what config files do not hold (registered contacts,
trunk registration status, clocks). Loaded from the office TOML:

    [[contacts]]                 # one per registered (dynamic) contact
    aor = "101"
    uri = "sip:101@127.0.0.11:5060"
    user_agent = "Yealink SIP-T46S 66.86.0.15"
    status = "Reachable"         # Reachable | Unreachable | NonQualified
    rtt_usec = 448               # optional
    call_id = "1-8965@127.0.0.11"  # optional

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


@dataclass
class Contact:
    aor: str
    uri: str
    user_agent: str
    status: str = "NonQualified"
    rtt_usec: int = 0
    call_id: str = ""
    expires_at: int = 0

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
    contacts: list[Contact] = field(default_factory=list)
    registrations: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    reloaded_at: float = field(default_factory=time.time)
    booting: bool = False
    _settled: dict[str, tuple[str, int]] = field(default_factory=dict)
    _settled_registrations: dict[str, str] = field(default_factory=dict)
    _index: dict[str, list[Contact]] = field(default_factory=dict, repr=False)
    _index_key: tuple[int, int] = (0, -1)

    def boot(self) -> None:
        """A restart: clocks from now; registered contacts restored from the internal
        database as NonQualified until re-qualified, outbound registrations Unregistered
        until their first attempt ends (fixture facts 14-15)."""
        self.started_at = self.reloaded_at = time.time()
        self.booting = True
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
                )
            except KeyError as exc:
                raise ValueError(f"{where}: missing key {exc.args[0]!r}") from exc
            if contact.status not in CONTACT_STATUSES:
                raise ValueError(f"{where}.status: expected one of {', '.join(CONTACT_STATUSES)}")
            contacts.append(contact)
        registrations = {str(k): str(v) for k, v in office.get("registrations", {}).items()}
        return cls(contacts=contacts, registrations=registrations)

    def contacts_of(self, aor: str) -> list[Contact]:
        key = (id(self.contacts), len(self.contacts))
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
