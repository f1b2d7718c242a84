"""The seat rules: from an inventory to the billable count, every decision with its reason.

A seat is one extension that can make or receive calls. Endpoints and devices attached to a
seat merge into it; the link rules, strongest first, are: a mapping in config, a link the PBX
itself records, a shared AOR, an app naming pattern, the same caller-ID number. The rule that
merged each endpoint is recorded, with the weaker rules that agree. Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from agent.config.schema import CountingConfig
from agent.counting.model import REPORT_SCHEMA, CountReport, Device, Excluded, Seat, SeatEndpoint
from agent.counting.objects import OBJECT_REASONS, excluded_objects
from agent.counting.peers import judge, mixed_warning, trunk_reason
from drivers.models import Contact, DeviceKind, Endpoint, Inventory
from drivers.user_agents import classify_user_agent

__all__ = ["OBJECT_REASONS", "History", "count"]

LINK_RULES = ("config_mapping", "pbx_link", "same_aor", "app_name_pattern", "same_callerid")
PHYSICAL = {DeviceKind.DESK_PHONE, DeviceKind.CORDLESS, DeviceKind.CONFERENCE, DeviceKind.ATA}
KIND_ORDER = ("desk_phone", "cordless", "conference", "ata", "app", "unknown")
EXCLUDED_ORDER = attrgetter("kind", "name", "reason")
_BY_NAME = attrgetter("name", "technology")
_NO_OVERRIDE = (None, None, None)


@dataclass(frozen=True, slots=True)
class History:
    """What the agent has seen between polls: when each endpoint last had a registered
    device, and since when it has been watching (stale needs that much history)."""

    observing_since: datetime
    last_registered: Mapping[str, datetime]


def count(
    inventory: Inventory,
    config: CountingConfig,
    history: History,
    *,
    site_id: str,
    now: datetime,
) -> CountReport:
    return _Counter(inventory, config, history, now).report(site_id)


class _Counter:
    def __init__(
        self, inventory: Inventory, config: CountingConfig, history: History, now: datetime
    ) -> None:
        self.inv = inventory
        self.config = config
        self.history = history
        self.now = now
        self.warnings: list[str] = list(inventory.warnings)
        self.excluded: list[Excluded] = []
        self.aors = {a.name: a for a in inventory.aors}
        self.contacts: dict[str, list[Contact]] = defaultdict(list)
        for contact in sorted(inventory.contacts, key=lambda c: (c.aor, c.address_key, c.uri)):
            self.contacts[contact.aor].append(contact)
        self.endpoints = {e.name: e for e in inventory.endpoints}
        # (kind, seat, exclude) of each endpoint the config overrides; `_NO_OVERRIDE` for others
        self.overrides: dict[str, tuple[str | None, str | None, str | None]] = {
            name: (o.kind, o.seat, o.exclude) for name, o in config.endpoints.items()
        }
        self.devices: dict[str, tuple[Contact, ...]] = {}
        self.evidence: dict[str, tuple[str, ...]] = {}
        # (prefix, suffix) of each app naming pattern; a seat is stale before this moment
        self.app_patterns = [
            (prefix, suffix)
            for prefix, _, suffix in (p.partition("{ext}") for p in config.app_patterns)
        ]
        # A name of digits only fits no pattern that has a non-digit around `{ext}` (`{ext}-app`,
        # `app{ext}`, the defaults): the common extension is then judged without a loop
        self.digit_patterns_fit_nothing = all(
            (prefix + suffix) and not (prefix + suffix).isdigit()
            for prefix, suffix in self.app_patterns
        )
        self.horizon = now - timedelta(days=config.stale_days)

    # -- classification ------------------------------------------------------------------

    def _trunk_evidence(self, endpoint: Endpoint) -> list[str]:
        evidence = []
        if endpoint.outbound_registration:
            evidence.append("registers to a provider")
        if endpoint.identify:
            evidence.append("matched by source address")
        if endpoint.outbound_auth and not endpoint.inbound_auth:
            evidence.append("authenticates outbound only")
        return evidence

    def _device_kind(self, endpoint: Endpoint, contact: Contact) -> DeviceKind:
        kind = self.overrides.get(endpoint.name, _NO_OVERRIDE)[0]
        return DeviceKind(kind) if kind else classify_user_agent(contact.user_agent)

    def _devices(self, endpoint: Endpoint) -> tuple[Contact, ...]:
        """The endpoint's devices, by address numerically, except that a physical device
        comes first: on an AOR shared by a desk phone and an app, the phone is the primary.
        Worked out once per endpoint (the rules ask several times)."""
        found = self.devices.get(endpoint.name)
        if found is not None:
            return found
        if len(endpoint.aors) == 1:  # each AOR's contacts are sorted already
            contacts = self.contacts.get(endpoint.aors[0])
            if not contacts:  # (most endpoints of a large office: nothing registered)
                found = self.devices[endpoint.name] = ()
                return found
            devices = list(contacts)
        else:
            devices = sorted(
                (c for aor in endpoint.aors for c in self.contacts.get(aor, ())),
                key=lambda c: (c.address_key, c.uri),
            )
        for index, contact in enumerate(devices):
            if self._device_kind(endpoint, contact) in PHYSICAL:
                devices = [contact, *devices[:index], *devices[index + 1 :]]
                break
        found = self.devices[endpoint.name] = tuple(devices)
        return found

    def _cannot_hold_a_device(self, endpoint: Endpoint) -> str | None:
        if endpoint.peer is not None or self._devices(endpoint):
            return None
        if not endpoint.aors:
            self.warnings.append(f"endpoint {endpoint.name} has no AOR: check its configuration")
            return "no AOR: no device can register"
        if len(endpoint.aors) == 1:  # the usual case, without the lists below
            aor = self.aors.get(endpoint.aors[0])
            if aor is not None:
                cannot = aor.max_contacts == 0 and not aor.static_contacts
                return "AOR max_contacts=0: cannot register" if cannot else None
        known = [self.aors[a] for a in endpoint.aors if a in self.aors]
        if not known:
            return f"AOR {', '.join(endpoint.aors)} not configured: no device can register"
        if all(a.max_contacts == 0 and not a.static_contacts for a in known):
            return "AOR max_contacts=0: cannot register"
        return None

    def _app_stems(self, endpoint: Endpoint) -> list[str]:
        """The extension each app naming pattern (`{ext}-app`, `app{ext}`, ...) that the
        endpoint's name fits reads out of it."""
        stems: list[str] = []
        name = endpoint.name
        if name.isdigit() and self.digit_patterns_fit_nothing:
            return stems
        for prefix, suffix in self.app_patterns:
            if (
                name.startswith(prefix)
                and name.endswith(suffix)
                and len(name) > len(prefix + suffix)
            ):
                stems.append(name[len(prefix) : len(name) - len(suffix)])
        return stems

    def _role(self, endpoint: Endpoint) -> str:
        """`app` for an endpoint whose registered devices are all apps (or, with none
        registered, whose name or config says app): the licence rules treat it as an app."""
        kind = self.overrides.get(endpoint.name, _NO_OVERRIDE)[0]
        if kind:
            return "app" if kind == "app" else "phone"
        devices = self._devices(endpoint)
        if devices:
            kinds = {self._device_kind(endpoint, c) for c in devices}
            return "app" if kinds == {DeviceKind.APP} else "phone"
        return "app" if self._app_stems(endpoint) else "phone"

    # -- linking ---------------------------------------------------------------------------

    def _index(self, candidates: list[Endpoint]) -> None:
        """Lookups the link rules need, so linking stays linear in the size of the office."""
        self.by_aor: dict[str, list[str]] = defaultdict(list)
        self.by_number: dict[str, list[str]] = defaultdict(list)
        for endpoint in candidates:
            for aor in endpoint.aors:
                self.by_aor[aor].append(endpoint.name)
            if endpoint.callerid_number:
                self.by_number[endpoint.callerid_number].append(endpoint.name)
        self._hints_by_device: dict[str, list[set[str]]] | None = None

    @property
    def hints_by_device(self) -> dict[str, list[set[str]]]:
        """Each device's hints (their devices), made when first asked: only an endpoint that
        links to another seat needs them."""
        if self._hints_by_device is None:
            self._hints_by_device = defaultdict(list)
            for hint in self.inv.hints:
                devices = {d.upper() for d in hint.devices}
                for device in devices:
                    self._hints_by_device[device].append(devices)
        return self._hints_by_device

    def _links(self, endpoint: Endpoint, primaries: set[str]) -> list[tuple[str, str]]:
        """Every (rule, extension) that attaches `endpoint` to another seat, strongest first."""
        found: list[tuple[str, str]] = []
        seat = self.overrides.get(endpoint.name, _NO_OVERRIDE)[1]
        if seat and seat != endpoint.name:
            if seat in primaries:
                found.append(("config_mapping", seat))
            else:
                self.warnings.append(
                    f"counting.endpoints maps {endpoint.name} to seat {seat}, which is not the "
                    "extension of a seat on this PBX: the mapping is ignored"
                )
        if endpoint.pbx_link and endpoint.pbx_link in primaries:
            found.append(("pbx_link", endpoint.pbx_link))
        aors = endpoint.aors
        if len(aors) != 1 or len(self.by_aor.get(aors[0], ())) > 1:
            sharing = {n for aor in aors for n in self.by_aor.get(aor, ())}
            for other in sorted((sharing & primaries) - {endpoint.name}):
                found.append(("same_aor", other))
        for ext in self._app_stems(endpoint):
            if ext in primaries and ext != endpoint.name:
                found.append(("app_name_pattern", ext))
        number = endpoint.callerid_number
        if number and number != endpoint.name:
            owners = ({number} | set(self.by_number.get(number, ()))) & primaries
            owners.discard(endpoint.name)
            if owners:
                found.append(("same_callerid", min(owners)))
        return found

    def _corroboration(self, endpoint: Endpoint, target: str) -> tuple[str, ...]:
        """Evidence outside the link rules that agrees: shared mailbox, a hint with both."""
        also = []
        target_ep = self.endpoints.get(target)
        if target_ep and set(endpoint.mailboxes) & set(target_ep.mailboxes):
            also.append("same_mailbox")
        mine = f"{endpoint.technology}/{endpoint.name}".upper()
        theirs = f"{target_ep.technology if target_ep else endpoint.technology}/{target}".upper()
        if any(theirs in devices for devices in self.hints_by_device.get(mine, ())):
            also.append("pbx_hint")
        return tuple(also)

    # -- the count -------------------------------------------------------------------------

    def _candidate(self, endpoint: Endpoint) -> bool:
        """Whether the endpoint can be (part of) a seat; if not, it is excluded with why."""
        kind, _, exclude = self.overrides.get(endpoint.name, _NO_OVERRIDE)
        if exclude:
            self.excluded.append(
                Excluded("endpoint", endpoint.name, f"excluded in config: {exclude}")
            )
            return False
        if endpoint.peer is not None:
            verdict = judge(endpoint)
            if not verdict.seat:
                self.excluded.append(
                    Excluded("trunk", endpoint.name, trunk_reason(endpoint, verdict))
                )
                return False
            if verdict.mixed and not kind:
                self.warnings.append(mixed_warning(endpoint, verdict))
            self.evidence[endpoint.name] = (
                f"{endpoint.technology} peer counted as a phone: {'; '.join(verdict.phone)}",
            )
            return True
        evidence = self._trunk_evidence(endpoint)
        if evidence:
            self.excluded.append(Excluded("trunk", endpoint.name, "trunk: " + "; ".join(evidence)))
            phones = [
                c for c in self._devices(endpoint) if classify_user_agent(c.user_agent) in PHYSICAL
            ]
            if phones:
                self.warnings.append(
                    f"trunk {endpoint.name} has a phone registered "
                    f"({phones[0].user_agent[:60]}): check whether it is really a trunk"
                )
            return False
        reason = self._cannot_hold_a_device(endpoint)
        if reason:
            self.excluded.append(Excluded("endpoint", endpoint.name, reason))
            return False
        return True

    def _member(
        self, endpoint: Endpoint, role: str, rule: str, also: tuple[str, ...] = ()
    ) -> SeatEndpoint:
        return SeatEndpoint(
            endpoint.name,
            role,
            rule,
            also,
            technology=endpoint.technology,
            evidence=self.evidence.get(endpoint.name, ()),
        )

    def report(self, site_id: str) -> CountReport:
        candidates = [e for e in sorted(self.inv.endpoints, key=_BY_NAME) if self._candidate(e)]

        # Endpoints with no link of their own are the seats' own extensions (primaries);
        # everything else links to one of them, or stands alone.
        self._index(candidates)
        everyone = {e.name for e in candidates}
        linked = {e.name: self._links(e, everyone) for e in candidates}
        primaries = {name for name, links in linked.items() if not links}
        # The linked endpoints first: each joins its seat or stands as its own (few of them);
        # then every seat is made once, in the endpoints' order (by name)
        own: dict[str, SeatEndpoint] = {}
        joining: dict[str, list[SeatEndpoint]] = defaultdict(list)  # by the seat they join
        for endpoint in candidates:
            if endpoint.name in primaries:
                continue
            links = self._links(endpoint, primaries)
            kinds = {self._device_kind(endpoint, c) for c in self._devices(endpoint)}
            if not links:
                own[endpoint.name] = self._member(endpoint, self._role(endpoint), "extension")
                continue
            rule, target = links[0]
            if kinds & PHYSICAL and rule != "config_mapping":
                own[endpoint.name] = self._member(endpoint, "phone", "extension")
                self.warnings.append(
                    f"{endpoint.name} links to {target} ({rule}) but has a physical phone: counted "
                    "as its own seat; map it in config if it is the same person's"
                )
                continue
            also = tuple(r for r, t in links[1:] if t == target) + self._corroboration(
                endpoint, target
            )
            joining[target].append(self._member(endpoint, "app", rule, also))
        seats: dict[str, list[SeatEndpoint]] = {}
        for endpoint in candidates:
            name = endpoint.name
            if name in primaries:
                seats[name] = [self._member(endpoint, self._role(endpoint), "extension")]
            elif name in own:
                seats[name] = [own[name]]
        for target, members in joining.items():
            seats[target] += members
        built = [self._seat(members) for members in seats.values()]
        for seat in built:
            if seat.kind == "app" and len(seat.endpoints) == 1:
                self.warnings.append(
                    f"app endpoint {seat.extension} links to no extension: a person who uses only "
                    "the app? confirm it, or map it to an extension in config"
                )
        self.excluded += excluded_objects(self.inv)
        stale = tuple(s.extension for s in built if s.stale)
        totals = {
            "seats": len(built),
            "excluded": len(self.excluded),
            "stale": len(stale),
            "devices_registered": sum(len(s.devices) for s in built),
        }
        by_kind = Counter(s.kind for s in built)
        for kind in KIND_ORDER:
            totals[f"seats_{kind}"] = by_kind[kind]
        facts = self.inv.facts
        return CountReport(
            schema=REPORT_SCHEMA,
            generated_at=self.now.isoformat(),
            site_id=site_id,
            pbx={
                "vendor": facts.vendor,
                "version": facts.version,
                "system_name": facts.system_name,
            },
            billable=len(built),
            seats=tuple(built),
            excluded=tuple(sorted(self.excluded, key=EXCLUDED_ORDER)),
            stale=stale,
            warnings=tuple(sorted(set(self.warnings))),
            totals=totals,
        )

    def _seat(self, members: list[SeatEndpoint]) -> Seat:
        own = self.endpoints[members[0].endpoint]
        devices: list[Device] = []
        for member in members:
            endpoint = self.endpoints[member.endpoint]
            for index, contact in enumerate(self._devices(endpoint)):
                devices.append(
                    Device(
                        endpoint=endpoint.name,
                        kind=self._device_kind(endpoint, contact).value,
                        user_agent=contact.user_agent,
                        uri=contact.uri,
                        source=contact.source,
                        status=contact.status,
                        rtt_usec=contact.rtt_usec,
                        rule=member.rule if index == 0 else "same_aor",
                    )
                )
        override = self.overrides.get(own.name, _NO_OVERRIDE)[0]
        kind = override or "unknown"
        if devices and not override:
            kinds = [d.kind for d in devices if d.endpoint == own.name] or [d.kind for d in devices]
            kind = next((k for k in KIND_ORDER if k in kinds), "unknown")
        if members[0].role == "app":
            kind = "app"
        seen = self.history.last_registered
        if len(members) == 1:
            last = seen.get(members[0].endpoint)
        else:
            last = max((seen[m.endpoint] for m in members if m.endpoint in seen), default=None)
        registered = bool(devices)
        stale = not registered and (last or self.history.observing_since) <= self.horizon
        return Seat(
            extension=own.name,
            name=own.callerid_name or "",
            kind=kind,
            endpoints=tuple(members),
            devices=tuple(devices),
            registered=registered,
            last_registered=last.isoformat() if last else None,
            stale=stale,
        )
