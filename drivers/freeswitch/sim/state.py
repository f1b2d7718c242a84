"""The simulated FreeSWITCH: its loaded configuration and global variables, the profiles,
gateways and ACL lists read from it, the clock, the core's scheduler and the events all of it
fires. Devices are played by callers through the registrar (`register`, `expire`,
`ping_status`...; see `registrar.py`)."""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import xmldoc
from drivers.freeswitch.sim.events import Identity, SimEvent, stamp
from drivers.freeswitch.sim.model import (
    AclList,
    Channel,
    Gateway,
    Profile,
    Registration,
    host_port,
    params_of,
    uptime_text,
)
from drivers.freeswitch.sim.office import Device, Office
from drivers.freeswitch.sim.registrar import Registrar

__all__ = ["Channel", "Gateway", "Profile", "Registration", "SimState", "uptime_text"]


class SimState(Registrar):
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
        self.database: xmldoc.Element | None = None  # FusionPBX's, for database_domains
        self.added_devices: list[Device] = []  # devices a caller added (see `add_device`)
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
        if self.database is None:
            self.database = self.tree  # the database holds what the office started with
        self._users: dict[tuple[str, str], d.User] | None = None
        self.loaded_modules = self._modules()
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
                host, port = host_port(device.contact)
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

    def _modules(self) -> set[str]:
        """Modules modules.conf loads (with the build's own interfaces: module_exists)."""
        conf = self.configuration("modules.conf")
        box = conf.child("modules") if conf is not None else None
        return {m.attr("module") or "" for m in (box.all("load") if box is not None else ())}

    def user(self, user_id: str, domain: str) -> d.User | None:
        """A directory user by id or number-alias (switch_xml_locate_user), indexed once per
        loaded tree; a domain FusionPBX serves from its database is looked up there (its
        binding answers before the files: switch_xml_locate)."""
        if self._users is None:
            index: dict[tuple[str, str], d.User] = {}
            for domain_element in self.directory_domains():
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

    def directory_domains(self) -> list[xmldoc.Element]:
        """The domains FreeSWITCH finds: those FusionPBX serves from its database (the office's
        `database_domains`, as they were at start-up), then those of the loaded files."""
        wanted = self.office.database_domains

        def name(element: xmldoc.Element) -> str:
            return (element.attr("name") or "").lower()

        served = []
        if wanted and self.database is not None:
            served = [x for x in d.domains(self.database) if name(x) in wanted]
        return served + [x for x in d.domains(self.tree) if name(x) not in wanted]

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
                gateway = Gateway(name, gw_name, dict((k, v) for k, v in params_of(gw)))
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

    def add_device(self, device: Device) -> int:
        """A new device (not in the office file) registers for the first time."""
        self.added_devices.append(device)
        return self._register_device(device)

    def refresh(self, address: str) -> dict[str, int]:
        """The devices of user@domain register again (same Contact, Call-ID and address, as
        a phone refreshing, or retrying after a flush): the SIP answer by source address
        (200, or 403 when the directory refuses it; the 401 challenge comes first)."""
        user, _, domain = address.partition("@")
        return {
            host_port(device.contact)[0]: self._register_device(device)
            for device in (*self.office.devices, *self.added_devices)
            if device.user_id == user and device.domain.lower() == domain.lower()
        }

    def _register_device(self, device: Device) -> int:
        host, port = host_port(device.contact)
        return self.register(
            user=device.user_id,
            domain=device.domain,
            uri=device.contact,
            call_id=device.call_id,
            agent=device.agent,
            expires=device.expires,
            ip=host,
            port=port,
            profile=device.profile,
        )

    def registered(self, address: str) -> list[Registration]:
        user, _, domain = address.partition("@")
        return [
            r
            for r in self.registrations.values()
            if r.user == user and r.realm.lower() == domain.lower()
        ]

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


