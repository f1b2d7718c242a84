"""Reading and changing the live Asterisk objects that feature switching acts on, over AMI:
maintenance mode, registrar contacts in AstDB, endpoint ACLs, manager users and sessions, the
effective configuration (GetConfig). The pure parsers are at the bottom; tests feed them the
capture-2 transcripts."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.errors import CommandError

SECRET_OPTIONS = ("password", "secret", "md5_cred")
CONTACT_FAMILY = "registrar"

Effective = list[tuple[str, str, tuple[tuple[str, str], ...]]]  # (name, type, options)


@dataclass(frozen=True, slots=True)
class RegisteredContact:
    """A registrar binding as AstDB holds it (fact 39)."""

    key: str  # AstDB key within the `registrar` family: `contact/<aor>;@<hash>`
    aor: str
    endpoint: str
    via_addr: str
    uri: str
    user_agent: str
    value: str  # the raw JSON value: the exact prior value of a cut

    @property
    def name(self) -> str:
        return self.key.removeprefix("contact/")


# -- capabilities ----------------------------------------------------------------------------


async def actions(ami: AmiClient) -> set[str]:
    """The AMI actions this PBX offers our user (ListCommands: a module's actions exist only
    while it is loaded, fact 32)."""
    answer = await ami.action("ListCommands")
    return {key for key, _ in answer if key not in ("Response", "ActionID", "Message")}


# -- maintenance mode (res_pjsip_maintenance, facts 32-38) -----------------------------------


async def maintenance(ami: AmiClient) -> set[str]:
    answer = await ami.list_action("PJSIPShowMaintenance")
    return parse_maintenance(answer)


async def set_maintenance(ami: AmiClient, endpoint: str, on: bool) -> None:
    await ami.action("PJSIPSetMaintenance", Endpoint=endpoint, State="on" if on else "off")


# -- registrar contacts (facts 39-41) --------------------------------------------------------


async def contacts(ami: AmiClient) -> list[RegisteredContact]:
    answer = await ami.list_action("DBGetTree", Family=CONTACT_FAMILY, Key="contact")
    return parse_contacts(answer)


async def delete_contact(ami: AmiClient, key: str) -> None:
    await ami.action("DBDel", Family=CONTACT_FAMILY, Key=key)


async def contact_exists(ami: AmiClient, key: str) -> bool:
    try:
        await ami.list_action("DBGet", Family=CONTACT_FAMILY, Key=key)
    except CommandError:
        return False
    return True


# -- endpoints and manager users -------------------------------------------------------------


async def endpoint_acl(ami: AmiClient, endpoint: str) -> str | None:
    """PJSIPShowEndpoint's `Acl` field (`deny/permit` when an ACL is set, fact 45); None when
    the endpoint does not exist."""
    try:
        answer = await ami.list_action("PJSIPShowEndpoint", Endpoint=endpoint)
    except CommandError:
        return None
    for message in answer:
        if wire.get(message, "Event") == "EndpointDetail":
            return wire.get(message, "Acl") or ""
    return None


async def manager_user_rules(ami: AmiClient, user: str) -> list[tuple[str, str]] | None:
    """The live ACL of a manager user, as `manager show user` prints it: (allow|deny,
    address/mask) in order; None when there is no such user."""
    return parse_manager_user(await ami.command(f"manager show user {user}"))


async def manager_sessions(ami: AmiClient) -> list[tuple[str, str]]:
    """(username, address) of every AMI session logged in now."""
    return parse_manager_connected(await ami.command("manager show connected"))


async def effective(ami: AmiClient, filename: str) -> Effective:
    """Every category of `filename` as Asterisk reads it now (includes followed, `(+)` merged):
    name, type, options (inherited first); secret values replaced by their hash."""
    answer = await ami.action("GetConfig", Filename=filename)
    return [
        (s.name, s.get("type") or "", tuple(_hide_secret(k, v) for k, v in s.options))
        for s in parse.parse_get_config(answer)
    ]


async def reload(ami: AmiClient, module: str) -> None:
    await ami.action("Reload", Module=module)


def _hide_secret(key: str, value: str) -> tuple[str, str]:
    if any(word in key.lower() for word in SECRET_OPTIONS):
        return key, "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return key, value


# -- parsers ---------------------------------------------------------------------------------


def parse_maintenance(answer: list[wire.Message]) -> set[str]:
    return {
        wire.get(m, "Endpoint") or ""
        for m in answer
        if wire.get(m, "Event") == "PJSIPMaintenanceStatus" and wire.get(m, "Status") == "enabled"
    }


def parse_contacts(answer: list[wire.Message]) -> list[RegisteredContact]:
    found = []
    for message in answer:
        if wire.get(message, "Event") != "DBGetTreeResponse":
            continue
        key = (wire.get(message, "Key") or "").removeprefix(f"/{CONTACT_FAMILY}/")
        value = wire.get(message, "Val") or ""
        try:
            data = json.loads(value)
        except ValueError:
            continue
        if not key.startswith("contact/") or not isinstance(data, dict):
            continue
        aor = key.removeprefix("contact/").split(";@", 1)[0]
        found.append(
            RegisteredContact(
                key=key,
                aor=aor,
                endpoint=str(data.get("endpoint", "")),
                via_addr=str(data.get("via_addr", "")),
                uri=str(data.get("uri", "")),
                user_agent=str(data.get("user_agent", "")),
                value=value,
            )
        )
    return found


_HA = re.compile(r"^\s*\d+:\s*(?P<sense>allow|deny) - (?P<rule>\S+)\s*$")


def parse_manager_user(lines: list[str]) -> list[tuple[str, str]] | None:
    if any(line.startswith("There is no manager called") for line in lines):
        return None
    rules = []
    for line in lines:
        match = _HA.match(line)
        if match:
            rules.append((match["sense"], match["rule"]))
    return rules


def parse_manager_connected(lines: list[str]) -> list[tuple[str, str]]:
    sessions = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 2 and not line.rstrip().endswith("users connected."):
            sessions.append((parts[0], parts[1]))
    return sessions


def ha_rule(network: str) -> str:
    """A network as `manager show user` prints a rule of it: `address/dotted-mask`."""
    net = ipaddress.ip_network(network, strict=False)
    return f"{net.network_address}/{net.netmask}"
