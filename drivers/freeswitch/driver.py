"""The FreeSWITCH driver: I/O only, over the ESL client; parsing lives in `parse`, the
inventory per domain in `inventory`, feature switching in `switching`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from drivers.base import Driver
from drivers.config_files import ConfigFiles
from drivers.errors import DriverAuthError, DriverConnectionError, DriverError
from drivers.freeswitch import inventory, parse, wire
from drivers.freeswitch.config import EslConfig
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching import FreeswitchSwitcher
from drivers.models import (
    Capability,
    EndpointSummary,
    FeaturePolicy,
    Inventory,
    PbxFacts,
    Registration,
    Switch,
    SwitchOutcome,
    SwitchPlan,
)
from drivers.settings import DriverSettings

# A start time that moves by less than this between two reads is the same start: it is
# computed from an uptime and a clock, both read a few milliseconds apart.
STARTUP_JITTER = timedelta(seconds=3)


class FreeswitchDriver(Driver):
    name: ClassVar[str] = "freeswitch"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.FACTS,
            Capability.ENDPOINTS,
            Capability.EVENTS,
            Capability.INVENTORY,
            Capability.REGISTRATIONS,
            Capability.FEATURES,
        }
    )
    settings_table: ClassVar[str] = "esl"
    settings_model: ClassVar[type[DriverSettings]] = EslConfig
    default_config_dir: ClassVar[str] = "/etc/freeswitch"

    def __init__(self, settings: EslSettings) -> None:
        self.settings = settings
        self._subscribers: list[Callable[[wire.Event], None]] = []
        self.esl = EslClient(settings, on_event=self._on_event)
        self._startup: datetime | None = None
        # Users known not to be able to register, from the last look (inventory).
        self._blocked: dict[tuple[str, str], str] | None = None
        self._switcher = FreeswitchSwitcher(self.esl, settings, self.default_config_dir)

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> FreeswitchDriver:
        if not isinstance(settings, EslConfig):
            raise TypeError("the FreeSWITCH driver is configured by [pbx.esl]")
        return cls(settings.to_settings())

    @classmethod
    def connection_hint(cls, settings: DriverSettings, error: DriverError) -> str:
        if isinstance(error, DriverAuthError):
            return (
                'check the password in pbx.esl.secret_file against <param name="password"> '
                "in autoload_configs/event_socket.conf.xml"
            )
        if "refused this client's address" in str(error):
            return (
                "allow this host in the event socket's apply-inbound-acl list "
                "(event_socket.conf.xml, acl.conf.xml), then reloadacl"
            )
        return (
            "is FreeSWITCH up with mod_event_socket loaded (listen-ip and listen-port in "
            "event_socket.conf.xml), and the port open from this host?"
        )

    def use_config_files(self, files: ConfigFiles) -> None:
        """Give the driver access to FreeSWITCH's config folder (CONFIG switches)."""
        self._switcher.use_files(files)

    def feature_switches(self) -> dict[str, str]:
        return self._switcher.describe()

    async def plan_switches(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        self._alive()
        return await self._switcher.plan(feature, policy)

    async def read_priors(self, switches: Sequence[Switch]) -> list[str]:
        return await self._switcher.priors(switches)

    async def apply_switches(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        self._alive()
        return await self._switcher.apply(switches)

    async def check_switches(
        self, switches: Sequence[Switch], *, thorough: bool
    ) -> list[SwitchOutcome]:
        self._alive()
        return await self._switcher.check(switches, thorough=thorough)

    async def undo_switches(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]:
        self._alive()
        return await self._switcher.undo(applied)

    async def connect(self) -> None:
        await self.esl.connect()

    async def close(self) -> None:
        await self.esl.close()

    def _alive(self) -> None:
        if self.esl.shutting_down:
            raise DriverConnectionError(f"FreeSWITCH at {self.esl.where} is shutting down")

    async def facts(self) -> PbxFacts:
        self._alive()
        status_text, version_text, hostname = await self.esl.api_many(
            ["status", "version", "hostname"]
        )
        received = datetime.now(UTC)
        status = parse.parse_status(status_text)
        if not status.ready:
            raise DriverConnectionError(f"FreeSWITCH at {self.esl.where} is {status.state}")
        startup = self._stable_startup(received - status.uptime)
        return PbxFacts(
            vendor="freeswitch",
            version=parse.parse_version(version_text),
            system_name=hostname.strip() or None,
            startup_time=startup,
            reload_time=None,  # FreeSWITCH keeps no time of its last reloadxml
            uptime_seconds=int(status.uptime.total_seconds()),
            api_version=None,
            extra=(
                ("sessions", str(status.sessions)),
                ("max_sessions", str(status.max_sessions)),
            ),
        )

    def _stable_startup(self, computed: datetime) -> datetime:
        """The start time, unchanged unless FreeSWITCH really restarted: a HEARTBEAT's
        timestamp minus its uptime when one came (the PBX's own clock), else ours."""
        heartbeat = self.esl.last_heartbeat
        from_pbx = parse.startup_from_heartbeat(heartbeat) if heartbeat is not None else None
        if from_pbx is not None and abs(from_pbx - computed) < STARTUP_JITTER:
            computed = from_pbx
        computed = computed.replace(microsecond=0)
        if self._startup is not None and abs(computed - self._startup) < STARTUP_JITTER:
            return self._startup
        self._startup = computed
        return computed

    async def registrations(self) -> tuple[Registration, ...]:
        """Gateways that register to a provider (a gateway with ``register=false`` shows
        NOREG and is no registration)."""
        self._alive()
        entries = parse.parse_sofia_status(await self.esl.api("sofia status"))
        return tuple(
            sorted(
                (
                    inventory.trunk(e.profile, e.name, e.data, e.state)
                    for e in entries
                    if e.kind == "gateway" and not e.state.startswith("NOREG")
                ),
                key=lambda r: r.name,
            )
        )

    async def endpoints(self) -> tuple[EndpointSummary, ...]:
        """Every user of the counted domains that can register, with its devices: a user is
        ``Reachable`` when one of its devices answers FreeSWITCH's OPTIONS pings (fact 27:
        health is Ping-Status, not Status), else ``Unavailable``."""
        self._alive()
        inv = await self.inventory() if self._blocked is None else None
        if inv is not None:
            return _summaries(inv)
        users = await inventory.read_users(self.esl, self.settings, [])
        entries = parse.parse_sofia_status(await self.esl.api("sofia status"))
        rows = await inventory.read_registrations(self.esl, self.settings, entries, [])
        devices: dict[tuple[str, str], list[parse.RegistrationRow]] = defaultdict(list)
        for row in rows:
            devices[(row.realm.lower(), row.user_id)].append(row)
        blocked = self._blocked or {}
        result = []
        for user in users:
            key = (user.domain.lower(), user.user_id)
            if key in blocked:
                continue
            mine = devices.get(key, [])
            result.append(
                _summary(user.address, [r.uri for r in mine], [r.ping_status for r in mine])
            )
        return tuple(sorted(result, key=lambda e: e.name))

    async def inventory(self) -> Inventory:
        """Everything the counting rules need, per domain."""
        facts = await self.facts()
        inv = await inventory.collect(self.esl, self.settings, facts)
        self._blocked = {
            (tenant.tenant.lower(), e.name): e.cannot_register
            for tenant in inv.tenants
            if tenant.tenant
            for e in tenant.endpoints
            if e.cannot_register
        }
        return inv

    def subscribe(self, callback: Callable[[wire.Event], None]) -> None:
        """Receive the events the client listens for (HEARTBEAT, SHUTDOWN)."""
        self.require(Capability.EVENTS)
        self._subscribers.append(callback)

    def _on_event(self, event: wire.Event) -> None:
        for callback in self._subscribers:
            callback(event)


def _summary(name: str, uris: list[str], pings: list[str]) -> EndpointSummary:
    reachable = any(p.lower() == "reachable" for p in pings)
    return EndpointSummary(
        name=name,
        technology="SIP",
        device_state="Reachable" if reachable else "Unavailable",
        aors=(name,),
        contacts=tuple(uris),
    )


def _summaries(inv: Inventory) -> tuple[EndpointSummary, ...]:
    result = []
    for tenant in inv.tenants:
        by_aor: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for contact in tenant.contacts:
            by_aor[contact.aor].append((contact.uri, contact.status))
        for endpoint in tenant.endpoints:
            if endpoint.cannot_register:
                continue
            mine = by_aor.get(endpoint.name, [])
            result.append(
                _summary(
                    f"{endpoint.name}@{tenant.tenant}",
                    [u for u, _ in mine],
                    [s for _, s in mine],
                )
            )
    return tuple(sorted(result, key=lambda e: e.name))
