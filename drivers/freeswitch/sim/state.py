"""The simulated FreeSWITCH: its loaded configuration, global variables, registered devices
(sofia's table, one row per Contact, and the core's, one row per user: fact 24), gateways,
ACL lists, calls, and the events all of that fires.

Devices are played by callers (`register`, `expire`, `ping_status`...): FreeSWITCH's answer
to each REGISTER (200 or 403) and the events it fires come from the loaded directory as in
mod_sofia: ``sip-forbid-register``, an empty password with ``allow-empty-password=false``,
and ``auth-acl`` (fact 22: read from the directory at every REGISTER, so a ``reloadxml``
takes effect at the next one; existing rows are never dropped by it).
"""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import xmldoc
from drivers.freeswitch.sim.events import Identity, SimEvent, stamp
from drivers.freeswitch.sim.office import Office

EXPIRES_MARGIN = 60  # sip-expires-late-margin (fact 25)
SOFIA_REG = "sofia_reg.c"


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


class SimState:
    """Everything the simulated switch knows; `sink` receives every fired event."""

    def __init__(self, office: Office) -> None:
        self.office = office
        self.scratch = Path(tempfile.mkdtemp(prefix="fs-sim-"))
        self.conf_dir = self.scratch / "freeswitch"
        shutil.copytree(office.config_dir, self.conf_dir)
        self.sink: Callable[[SimEvent], None] = lambda event: None
        # Whether any session would receive an event: events nobody listens to are counted
        # but not dated and serialised (most api calls fire one, fact: API events).
        self.listening: Callable[[SimEvent], bool] = lambda event: True
        self.fired_hooks: list[Callable[[SimEvent], None]] = []
        self.sequence = 0
        self.boot(uptime=office.uptime, keep_registrations=False)

    # -- start-up and configuration ----------------------------------------------------

    def boot(self, *, uptime: float = 0.0, keep_registrations: bool = True) -> None:
        """(Re)start: fresh clocks and core UUID, configuration read again; registrations
        live in sofia's database and survive (fact 26)."""
        self.started = time.time() - uptime
        first = self.office.core_uuid if not keep_registrations else None
        self.core_uuid: str = first or str(uuid.uuid4())
        self.variables: dict[str, str] = dict(self.office.globals)
        self.variables["conf_dir"] = self.variables.get("conf_dir", "/etc/freeswitch")
        processor = xmldoc.Preprocessor(self.variables)
        self.fsxml = processor.run(self.conf_dir / "freeswitch.xml")
        self.tree = xmldoc.parse(self.fsxml)
        self._users: dict[tuple[str, str], d.User] | None = None
        self.variables = processor.variables
        self.variables["core_uuid"] = self.core_uuid
        self.acl = self._acl_lists()
        self.profiles = self._profiles()
        self.sessions_total = 0
        self.sessions_peak = 0
        self.session_times: list[float] = []
        self.channels: list[Channel] = []
        self.conference_uuid = ""
        self.conference_started = 0.0
        self.shutting_down = False
        if not keep_registrations:
            self.registrations: dict[str, Registration] = {}
            self.core_rows: dict[tuple[str, str], Registration] = {}
            now = time.time()
            by_age = sorted(self.office.devices, key=lambda dev: -dev.age)
            for device in self.office.devices:
                host, port = _host_port(device.contact)
                row = Registration(
                    profile=device.profile,
                    user=device.user_id,
                    realm=device.domain,
                    uri=device.contact,
                    call_id=device.call_id,
                    agent=device.agent,
                    expires=device.expires,
                    registered_at=now - device.age,
                    ip=host,
                    port=port,
                    ping_status=device.ping,
                    ping_us=round(device.ping_time * 1000),
                )
                self.registrations[device.contact] = row
            for device in by_age:
                row = self.registrations[device.contact]
                self.core_rows.pop((row.user, row.realm), None)
                self.core_rows[(row.user, row.realm)] = replace(row)

    def reloadxml(self) -> str:
        """Read the configuration again; a document that does not parse leaves the loaded
        one in use, and the answer still starts with +OK (fact 13, 22)."""
        processor = xmldoc.Preprocessor(dict(self.office.globals))
        text = processor.run(self.conf_dir / "freeswitch.xml")
        try:
            tree = xmldoc.parse(text)
        except xmldoc.XmlError as exc:
            return f"+OK [{exc}]\n"
        self.fsxml, self.tree, self._users = text, tree, None
        for name, value in processor.variables.items():
            self.variables.pop(name, None)
            self.variables[name] = value
        return "+OK [Success]\n"

    def reloadacl(self) -> None:
        self.reloadxml()
        self.acl = self._acl_lists()

    def user(self, user_id: str, domain: str) -> d.User | None:
        """A directory user by id or number-alias (switch_xml_locate_user), indexed once per
        loaded tree."""
        if self._users is None:
            index: dict[tuple[str, str], d.User] = {}
            for domain_element in d.domains(self.tree):
                name = (domain_element.attr("name") or "").lower()
                for found in d.users(domain_element):
                    if (found.element.attr("type") or "") == "pointer":
                        continue
                    index.setdefault((name, found.id), found)
                    alias = found.element.attr("number-alias")
                    if alias:
                        index.setdefault((name, alias), found)
            self._users = index
        return self._users.get((domain.lower(), user_id))

    def configuration(self, name: str) -> xmldoc.Element | None:
        conf = d.section(self.tree, "configuration")
        return conf.find("configuration", "name", name) if conf is not None else None

    def _acl_lists(self) -> dict[str, AclList]:
        lists: dict[str, AclList] = {}
        conf = self.configuration("acl.conf")
        box = conf.child("network-lists") if conf is not None else None
        for item in box.all("list") if box is not None else ():
            nodes = []
            for node in item.all("node"):
                try:
                    network = ipaddress.ip_network(node.attr("cidr") or "", strict=False)
                except ValueError:
                    continue
                nodes.append(((node.attr("type") or "").lower() == "allow", network))
            default = (item.attr("default") or "deny").lower() == "allow"
            lists[(item.attr("name") or "").lower()] = AclList(default, nodes)
        loopback = [
            (True, ipaddress.ip_network("127.0.0.0/8")),
            (True, ipaddress.ip_network("::1/128")),
        ]
        lists.setdefault("loopback.auto", AclList(False, loopback))
        return lists

    def acl_allows(self, address: str, name: str) -> bool:
        """An ACL name or a literal CIDR (fact 22: an unloaded name matches nothing)."""
        if "/" in name and name.lower() not in self.acl:
            try:
                return ipaddress.ip_address(address) in ipaddress.ip_network(name, strict=False)
            except ValueError:
                return False
        found = self.acl.get(name.lower())
        return found is not None and found.allows(address)

    def _profiles(self) -> dict[str, Profile]:
        profiles: dict[str, Profile] = {}
        sofia = self.configuration("sofia.conf")
        box = sofia.child("profiles") if sofia is not None else None
        for element in box.all("profile") if box is not None else ():
            name = element.attr("name") or ""
            params = dict(d.pairs(element, "settings", "param"))
            profile = Profile(name, params)
            gateways = element.child("gateways")
            for gw in gateways.all("gateway") if gateways is not None else ():
                gw_name = gw.attr("name") or ""
                state = self.office.gateways.get(gw_name)
                gateway = Gateway(name, gw_name, dict((k, v) for k, v in _params(gw)))
                gateway.state = state or ("NOREG" if not gateway.registers else "UNREGED")
                if gateway.state in ("FAILED", "FAIL_WAIT", "TRYING"):
                    gateway.retry_at = time.time() + float(gateway.param("retry-seconds", "30"))
                profile.gateways.insert(0, gateway)  # FreeSWITCH lists the newest first
            domains_box = element.child("domains")
            for entry in domains_box.all("domain") if domains_box is not None else ():
                if d.is_true(entry.attr("alias")):
                    wanted = entry.attr("name") or ""
                    names = [x.attr("name") or "" for x in d.domains(self.tree)]
                    profile.aliases += names if wanted == "all" else [wanted]
            profiles[name] = profile
        return profiles

    def profile(self, name: str) -> Profile | None:
        found = self.profiles.get(name)
        if found is not None:
            return found
        return next((p for p in self.profiles.values() if name in p.aliases), None)

    def gateway(self, name: str) -> Gateway | None:
        for profile in self.profiles.values():
            for gateway in profile.gateways:
                if gateway.name == name:
                    return gateway
        return None

    # -- clock, identity, events -------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def uptime(self) -> float:
        return max(0.0, self.now() - self.started)

    @property
    def hostname(self) -> str:
        return self.variables.get("hostname", "freeswitch")

    def identity(self) -> Identity:
        return Identity(
            core_uuid=self.core_uuid,
            hostname=self.hostname,
            ipv4=self.variables.get("local_ip_v4", "127.0.0.1"),
            ipv6=self.variables.get("local_ip_v6", "::1"),
        )

    def fire(self, event: SimEvent) -> None:
        self.sequence += 1
        if not self.fired_hooks and not self.listening(event):
            return
        stamp(event, self.identity(), self.sequence, self.now())
        self.sink(event)
        for hook in list(self.fired_hooks):
            hook(event)

    def custom(
        self, subclass: str, headers: list[tuple[str, str]], calling: tuple[str, str, int]
    ) -> None:
        self.fire(SimEvent("CUSTOM", headers, calling, subclass=subclass))

    # -- registrations ---------------------------------------------------------------------

    def find_registration(self, call_id: str) -> Registration | None:
        return next((r for r in self.registrations.values() if r.call_id == call_id), None)

    def register(
        self,
        *,
        user: str,
        domain: str,
        uri: str,
        call_id: str,
        agent: str,
        expires: int,
        ip: str,
        port: str,
        profile: str = "internal",
    ) -> int:
        """A REGISTER with the right credentials from a device; FreeSWITCH's SIP answer."""
        base = [
            ("profile-name", profile),
            ("from-user", user),
            ("from-host", domain),
            ("contact", f'"" <{uri}>'),
            ("call-id", call_id),
            ("rpid", "unknown"),
            ("status", "Registered(UDP)"),
            ("expires", str(expires)),
            ("to-user", user),
            ("to-host", domain),
            ("network-ip", ip),
            ("network-port", port),
        ]
        where = "sofia_reg_handle_register_token"
        self.custom("sofia::pre_register", [*base, ("user-agent", agent)], (SOFIA_REG, where, 1810))
        found = self.user(user, domain)
        refusal = self._refusal(found, ip)
        if refusal is not None:
            self.custom(
                "sofia::register_failure",
                [
                    ("profile-name", profile),
                    ("to-user", user),
                    ("to-host", domain),
                    ("network-ip", ip),
                    ("user-agent", agent),
                    ("profile-name", profile),  # FreeSWITCH adds it twice (fact 34)
                    ("network-port", port),
                    ("registration-type", "REGISTER"),
                ],
                (SOFIA_REG, where, 1792),
            )
            return 403
        assert found is not None
        auth = [("username", user), ("realm", domain), ("user-agent", agent)]
        self.custom(
            "sofia::register_attempt",
            [*base, *auth, ("auth-result", "RENEWED")],
            (SOFIA_REG, where, 1606),
        )
        existing = self.registrations.get(uri)
        variables = found.registration_variables(domain)
        if expires == 0:
            if existing is not None:
                del self.registrations[uri]
                self._drop_core(existing)
            self.custom(
                "sofia::unregister",
                [
                    ("profile-name", profile),
                    ("username", user),
                    ("from-user", user),
                    ("from-host", domain),
                    ("contact", f'"" <{uri}>'),
                    ("call-id", call_id),
                    ("rpid", "unknown"),
                    ("realm", domain),
                    ("network-ip", ip),
                    ("network-port", port),
                    ("user-agent", agent),
                    ("expires", "0"),
                    *variables,
                ],
                (SOFIA_REG, where, 2213),
            )
            return 200
        update = existing is not None and existing.call_id == call_id
        row = existing or Registration(
            profile, user, domain, uri, call_id, agent, expires, 0, ip, port
        )
        row.call_id, row.agent, row.expires, row.ip, row.port = call_id, agent, expires, ip, port
        row.registered_at = self.now()
        self.registrations[uri] = row
        self.core_rows.pop((user, domain), None)
        self.core_rows[(user, domain)] = replace(row)  # the core keeps its own copy
        headers = [
            ("profile-name", profile),
            ("from-user", user),
            ("from-host", domain),
            ("presence-hosts", "n/a"),
            ("contact", f'"" <{uri}>'),
            ("call-id", call_id),
            ("rpid", "unknown"),
            ("status", "Registered(UDP)"),
            ("expires", str(expires)),
            ("to-user", user),
            ("to-host", domain),
            ("network-ip", ip),
            ("network-port", port),
            ("username", user),
            ("realm", domain),
            ("user-agent", agent),
        ]
        if update:
            headers.append(("update-reg", "true"))
        self.custom("sofia::register", headers + variables, (SOFIA_REG, where, 2059))
        return 200

    def _refusal(self, user: d.User | None, ip: str) -> str | None:
        if user is None:
            return "no such user"
        if d.is_true(user.param("sip-forbid-register")):
            return "sip-forbid-register"
        acl = user.param("auth-acl")
        if acl and not self.acl_allows(ip, acl):
            return f"auth-acl {acl}"
        no_secret = not user.param("password") and not user.param("a1-hash")
        if no_secret and not d.is_true(user.param("allow-empty-password") or "true"):
            return "empty password"
        return None

    def _drop_core(self, row: Registration) -> None:
        """The core deletes by user, realm and Call-ID (switch_core_del_registration)."""
        key = (row.user, row.realm)
        found = self.core_rows.get(key)
        if found is not None and found.call_id == row.call_id:
            del self.core_rows[key]

    def expire(self, call_id: str, *, function: str = "sofia_reg_del_callback") -> bool:
        """A row removed without an unregister: it aged out, or was flushed (fact 33)."""
        row = self.find_registration(call_id)
        if row is None:
            return False
        del self.registrations[row.uri]
        self._drop_core(row)
        self.custom(
            "sofia::expire",
            [
                ("profile-name", row.profile),
                ("call-id", row.call_id),
                ("user", row.user),
                ("username", row.user),
                ("host", row.realm),
                ("contact", row.contact),
                ("expires", str(row.expiry)),
                ("user-agent", row.agent),
                ("realm", row.realm),
                ("network-ip", row.ip),
                ("network-port", row.port),
            ],
            (SOFIA_REG, function, 726),
        )
        return True

    def flush(self, profile: str, target: str) -> None:
        """``flush_inbound_reg``: a Call-ID, or user@domain (every device of that user)."""
        user, at, domain = target.partition("@")
        for row in list(self.registrations.values()):
            if row.profile != profile:
                continue
            if row.call_id == target or (at and row.user == user and row.realm == domain):
                self.expire(row.call_id)

    def ping_status(
        self, call_id: str, reachable: bool, status: int = 503, phrase: str = ""
    ) -> None:
        """The outcome of an OPTIONS ping that changed a device's state (fact 27)."""
        row = self.find_registration(call_id)
        if row is None:
            return
        row.ping_status = "Reachable" if reachable else "Unreachable"
        self.custom(
            "sofia::sip_user_state",
            [
                ("sip_contact", row.contact),
                ("profile-name", row.profile),
                ("sip_user", f"{row.user}@{row.realm}"),
                ("from-user", row.user),
                ("from-host", row.realm),
                ("call-id", row.call_id),
                ("Ping-Status", "REACHABLE" if reachable else "UNREACHABLE"),
                ("Status", str(status)),
                ("Phrase", phrase),
            ],
            (SOFIA_REG, "sofia_reg_fire_custom_sip_user_state_event", 179),
        )

    def gateway_state(self, name: str, state: str, status: int = 0, phrase: str = "") -> None:
        """A gateway changed state; a failed REGISTER carries the SIP answer (or, with no
        answer at all, what FreeSWITCH made of it: 503 for an ICMP refusal)."""
        gateway = self.gateway(name)
        if gateway is None:
            raise KeyError(name)
        gateway.state = state
        if state in ("FAILED", "FAIL_WAIT", "TRYING"):
            gateway.retry_at = self.now() + float(gateway.param("retry-seconds", "30") or 30)
        headers = [("Gateway", name), ("State", state), ("Ping-Status", gateway.status)]
        if status:
            headers += [("Phrase", phrase), ("Status", str(status))]
        self.custom(
            "sofia::gateway_state",
            headers,
            (SOFIA_REG, "sofia_reg_fire_custom_gateway_state_event", 156),
        )

    # -- core ----------------------------------------------------------------------------

    def scheduler_tick(self, *, check_ip: bool = False) -> None:
        """The core's scheduler: HEARTBEAT every event-heartbeat-interval seconds (fact 35),
        each task run followed by its RE_SCHEDULE."""
        self.fire(
            SimEvent("HEARTBEAT", self.heartbeat_headers(), ("switch_core.c", "send_heartbeat", 95))
        )
        interval = self.heartbeat_interval()
        tasks = [("1", "heartbeat", interval)] + ([("2", "check_ip", 60)] if check_ip else [])
        for task_id, desc, every in tasks:
            self.fire(
                SimEvent(
                    "RE_SCHEDULE",
                    [
                        ("Task-ID", task_id),
                        ("Task-Desc", desc),
                        ("Task-Group", "core"),
                        ("Task-Runtime", str(int(self.now()) + every)),
                    ],
                    ("switch_scheduler.c", "switch_scheduler_execute", 73),
                )
            )

    def heartbeat_interval(self) -> int:
        value = self.core_setting("event-heartbeat-interval", "20")
        return int(value) if value.isdigit() else 20

    def core_setting(self, name: str, default: str) -> str:
        conf = self.configuration("switch.conf")
        return dict(d.pairs(conf, "settings", "param")).get(name, default) if conf else default

    def heartbeat_headers(self) -> list[tuple[str, str]]:
        up = self.uptime()
        recent = self.sessions_recent()
        return [
            ("Event-Info", "System Ready"),
            ("Up-Time", uptime_text(up)),
            ("FreeSWITCH-Version", f"{self.office.version}~64bit"),
            ("Uptime-msec", str(int(up * 1000))),
            ("Session-Count", str(len(self.channels))),
            ("Max-Sessions", self.core_setting("max-sessions", "1000")),
            ("Session-Per-Sec", self.core_setting("sessions-per-second", "30")),
            ("Session-Per-Sec-Last", "0"),
            ("Session-Per-Sec-Max", str(self.sessions_peak)),
            ("Session-Per-Sec-FiveMin", str(recent)),
            ("Session-Since-Startup", str(self.sessions_total)),
            ("Session-Peak-Max", str(self.sessions_peak)),
            ("Session-Peak-FiveMin", str(recent)),
            ("Idle-CPU", "95.000000"),
        ]

    def sessions_recent(self) -> int:
        horizon = self.now() - 300
        return sum(1 for t in self.session_times if t >= horizon)

    def api_event(self, command: str, argument: str) -> None:
        headers = [("API-Command", command)]
        if argument:
            headers.append(("API-Command-Argument", argument))
        self.fire(
            SimEvent("API", headers, ("switch_loadable_module.c", "switch_api_execute", 2954))
        )

    def stop(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _params(element: xmldoc.Element) -> list[tuple[str, str]]:
    return [(p.attr("name") or "", p.attr("value") or "") for p in element.all("param")]


def _host_port(uri: str) -> tuple[str, str]:
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
