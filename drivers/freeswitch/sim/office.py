"""An office to simulate on FreeSWITCH: its configuration tree (``freeswitch.xml`` and what it
includes: directory, dialplan, profiles, gateways) plus what a configuration does not hold:
the core's own variables, the devices registered and the gateways' states, from TOML.

name = "Bayside Physio and Coastal Accounting"
config_dir = "fs-config/etc/freeswitch"   # relative to the TOML file
[pbx]
version = "1.10.12-release"
[globals]          # the core's variables, set before the configuration is read, in order
hostname = "vm"
[sofia]
order = ["coastal.example", "bayside.example", "external", "internal"]   # `sofia status`
[[registrations]]  # devices registered when the simulation starts, in sofia's row order
user = "1001@bayside.example"
contact = "sip:1001@127.0.8.11:5062;transport=udp"
agent = "Yealink SIP-T54W 96.86.0.100"
call_id = "1-8172@127.0.8.11"
expires = 120      # what the phone asked for
ping = "Reachable"  # Reachable | Unreachable (does it answer OPTIONS?)
ping_time = 0.69   # milliseconds
[gateways]
"bayside-trunk" = "FAIL_WAIT"
[directory]        # FusionPBX: domains its Lua xml_handler serves from its database (the users
database = []      # as configured at start-up; edits of the files do not reach them)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.sim_server import OfficeError, read_office

DEFAULT_GLOBALS = (
    ("hostname", "freeswitch"),
    ("local_ip_v4", "127.0.0.1"),
    ("local_mask_v4", "255.0.0.0"),
    ("local_ip_v6", "::1"),
    ("base_dir", "/usr"),
    ("conf_dir", "/etc/freeswitch"),
    ("log_dir", "/var/log/freeswitch"),
)


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device (one Contact) as the office starts with it."""

    user: str  # id@domain
    contact: str  # sip URI
    agent: str
    call_id: str
    expires: int = 120
    ping: str = "Reachable"
    ping_time: float = 0.0
    profile: str = "internal"
    age: float = 0.0  # seconds since its last REGISTER

    @property
    def user_id(self) -> str:
        return self.user.partition("@")[0]

    @property
    def domain(self) -> str:
        return self.user.partition("@")[2]


@dataclass(frozen=True)
class Office:
    path: Path
    name: str
    config_dir: Path
    version: str
    globals: tuple[tuple[str, str], ...]
    core_uuid: str | None
    uptime: float
    sofia_order: tuple[str, ...]
    devices: tuple[Device, ...]
    gateways: dict[str, str] = field(default_factory=dict)
    database_domains: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def hostname(self) -> str:
        return dict(self.globals).get("hostname", "freeswitch")


def _device(path: Path, index: int, entry: Any) -> Device:
    where = f"{path}: registrations[{index}]"
    if not isinstance(entry, dict):
        raise OfficeError(f"{where}: expected a table")
    for key in ("user", "contact", "call_id"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise OfficeError(f"{where}.{key}: required string is missing")
    if "@" not in entry["user"]:
        raise OfficeError(f"{where}.user: expected id@domain, got {entry['user']!r}")
    ping = entry.get("ping", "Reachable")
    if ping not in ("Reachable", "Unreachable"):
        raise OfficeError(f"{where}.ping: expected Reachable or Unreachable")
    try:
        return Device(
            user=entry["user"],
            contact=entry["contact"],
            agent=str(entry.get("agent", "")),
            call_id=entry["call_id"],
            expires=int(entry.get("expires", 120)),
            ping=ping,
            ping_time=float(entry.get("ping_time", 0.0)),
            profile=str(entry.get("profile", "internal")),
            age=float(entry.get("age", 0.0)),
        )
    except (TypeError, ValueError) as exc:
        raise OfficeError(f"{where}: {exc}") from exc


def load_office(path: Path) -> Office:
    raw, config_dir = read_office(path)
    pbx = raw.get("pbx", {})
    if not (config_dir / "freeswitch.xml").is_file():
        raise OfficeError(f"{path}: config_dir: {config_dir} has no freeswitch.xml")
    variables = raw.get("globals", {})
    if not isinstance(variables, dict):
        raise OfficeError(f"{path}: globals: expected a table")
    globals_ = tuple((str(k), str(v)) for k, v in variables.items()) or DEFAULT_GLOBALS
    gateways = raw.get("gateways", {})
    if not isinstance(gateways, dict):
        raise OfficeError(f"{path}: gateways: expected a table of name = state")
    devices = tuple(_device(path, i, e) for i, e in enumerate(raw.get("registrations", [])))
    order = raw.get("sofia", {}).get("order", [])
    database = raw.get("directory", {}).get("database", [])
    if not isinstance(database, list) or not all(isinstance(x, str) for x in database):
        raise OfficeError(f"{path}: directory.database: expected a list of domain names")
    return Office(
        path=path,
        name=raw["name"],
        config_dir=config_dir,
        version=pbx["version"],
        globals=globals_,
        core_uuid=pbx.get("core_uuid"),
        uptime=float(pbx.get("uptime", 0.0)),
        sofia_order=tuple(str(o) for o in order),
        devices=devices,
        gateways={str(k): str(v) for k, v in gateways.items()},
        database_domains=tuple(d.lower() for d in database),
        raw=raw,
    )
