"""The api commands the simulator answers, by name, and the core and directory ones.

An api that FreeSWITCH would offer but that is not simulated answers as an unknown one and
is logged, so a gap shows in the simulator's log instead of as a made-up answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import tables, xmldoc
from drivers.freeswitch.sim.state import SimState, uptime_text

log = structlog.get_logger(__name__)


@dataclass
class ApiContext:
    """What an api may ask of the server around it (a shutdown closes every session)."""

    shutdown: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)


Handler = Callable[[SimState, str, ApiContext], str]
APIS: dict[str, Handler] = {}


def api(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            APIS[name] = handler
        return handler

    return register


def execute(state: SimState, command: str, arg: str, ctx: ApiContext) -> tuple[bool, str]:
    """(found, output) of one api; fires the API event every api execution fires."""
    command, arg = command.strip(), arg.strip()
    handler = APIS.get(command)
    if handler is None:
        if command in tables.api_names():
            log.warning("FreeSWITCH api known but not simulated", api=command)
        state.api_event(command, arg)
        return False, f"-ERR {command} Command not found!\n"
    output = handler(state, arg, ctx)
    state.api_event(command, arg)
    return True, output


def _usage(name: str) -> str:
    return f"-USAGE: {tables.syntax(name)}\n"


# -- core ----------------------------------------------------------------------------------


@api("status")
def status(state: SimState, arg: str, ctx: ApiContext) -> str:
    recent = state.sessions_recent()
    sps = state.core_setting("sessions-per-second", "30")
    return (
        f"UP {uptime_text(state.uptime())}\n"
        f"FreeSWITCH (Version {state.office.version}  64bit) is "
        f"{'not ready' if state.shutting_down else 'ready'}\n"
        f"{state.sessions_total} session(s) since startup\n"
        f"{len(state.channels)} session(s) - peak {state.sessions_peak}, last 5min {recent} \n"
        f"0 session(s) per Sec out of max {sps}, peak {state.sessions_peak}, "
        f"last 5min {recent} \n"
        f"{state.core_setting('max-sessions', '1000')} session(s) max\n"
        "min idle cpu 0.00/95.00\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


@api("version")
def version(state: SimState, arg: str, ctx: ApiContext) -> str:
    if arg.split()[:1] and "short" in arg.split()[0].lower():
        return f"{state.office.version}\n"
    return f"FreeSWITCH Version {state.office.version}~64bit ( 64bit)\n"


@api("hostname")
def hostname(state: SimState, arg: str, ctx: ApiContext) -> str:
    return state.hostname


@api("uptime")
def uptime(state: SimState, arg: str, ctx: ApiContext) -> str:
    scales = {"": 1, "s": 1, "seconds": 1, "ms": 1e-3, "milliseconds": 1e-3, "m": 60, "h": 3600}
    scale = scales.get(arg.lower())
    if scale is None:
        return _usage("uptime")
    return f"{int(state.uptime() / scale)}\n"


@api("global_getvar")
def global_getvar(state: SimState, arg: str, ctx: ApiContext) -> str:
    if not arg:
        return "".join(f"{k}={v}\n" for k, v in state.variables.items())
    return state.variables.get(arg, "")


@api("module_exists")
def module_exists(state: SimState, arg: str, ctx: ApiContext) -> str:
    if not arg:
        return ""
    loaded = {i.ikey for i in tables.interfaces()} | state.loaded_modules
    return "true" if arg in loaded else "false"


@api("acl")
def acl(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split(" ")
    if len(words) < 2:
        return "false"
    return "true" if state.acl_allows(words[0], words[1]) else "false"


@api("reloadxml")
def reloadxml(state: SimState, arg: str, ctx: ApiContext) -> str:
    return state.reloadxml()


@api("reloadacl")
def reloadacl(state: SimState, arg: str, ctx: ApiContext) -> str:
    state.reloadacl()
    return "+OK acl reloaded\n"


@api("fsctl")
def fsctl(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split()
    if words[:1] == ["shutdown"]:
        ctx.shutdown()
        return "+OK\n"
    return _usage("fsctl")


# -- directory -------------------------------------------------------------------------------


@api("domain_exists")
def domain_exists(state: SimState, arg: str, ctx: ApiContext) -> str:
    if not arg:
        return ""
    names = {(x.attr("name") or "").lower() for x in state.directory_domains()}
    return "true" if arg.lower() in names else "false"


@api("user_exists")
def user_exists(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split()
    if len(words) < 3:
        return "false"
    _key, user, domain = words[:3]
    return "true" if state.user(user, domain) is not None else "false"


@api("user_data")
def user_data(state: SimState, arg: str, ctx: ApiContext) -> str:
    """``user_data U@D param|var|attr NAME`` (mod_commands user_data_function)."""
    words = arg.split(" ", 2)
    if len(words) < 3:
        return ""
    who, kind, key = words
    user_id, _, domain = who.partition("@")
    found = state.user(user_id, domain)
    if found is None:
        return ""
    if kind == "attr":
        return found.element.attr(key) or ""
    values = found.variables() if kind == "var" else found.params()
    result = ""
    for name, value in values:
        if name.lower() == key.lower():
            result = value
    return result


@api("xml_locate")
def xml_locate(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split(" ") if arg else []
    if words == ["root"]:
        return xmldoc.toxml(state.tree)
    if len(words) not in (1, 4):
        return "-ERR bad args\n"
    found = d.section(state.tree, words[0])
    if found is not None and len(words) == 4:
        _, tag, attr, value = words
        found = found.find(tag, attr, value)
    if found is None:
        return "can't find anything\n"
    return xmldoc.toxml(found)


@api("list_users")
def list_users(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split(" ") if arg else []
    if len(words) >= 9:
        return _usage("list_users")
    wanted: dict[str, str] = {}
    for index, word in enumerate(words[:-1]):
        if word.lower() in ("user", "context", "domain", "group"):
            wanted[word.lower()] = words[index + 1]
    lines = [
        "userid|context|domain|group|contact|callgroup|effective_caller_id_name|"
        "effective_caller_id_number\n"
    ]
    contacts = contact_index(state)
    for domain_element in state.directory_domains():
        name = domain_element.attr("name") or ""
        if "domain" in wanted and wanted["domain"].lower() != name.lower():
            continue
        for user in d.users(domain_element):
            group = user.group.attr("name") if user.group is not None else ""
            if "group" in wanted and (group or "").lower() != wanted["group"].lower():
                continue
            if "user" in wanted and wanted["user"].lower() != user.id.lower():
                continue
            values = dict(
                (k.lower(), v)
                for k, v in (
                    d.pairs(user.domain, "variables", "variable")
                    + d.pairs(user.group, "variables", "variable")
                    + user.own_variables()
                )
            )
            context = values.get("user_context", "")
            if "context" in wanted and wanted["context"].lower() != context.lower():
                continue
            contact = ",".join(contacts.get((user.id, name.lower()), [])) or NOT_REGISTERED
            lines.append(
                f"{user.id}|{context}|{name}|{group}|{contact}|{values.get('callgroup', '')}|"
                f"{values.get('effective_caller_id_name', '')}|"
                f"{values.get('effective_caller_id_number', '')}\n"
            )
    lines.append("\n+OK\n")
    return "".join(lines)


NOT_REGISTERED = "error/user_not_registered"


def contact_index(state: SimState, profile: str = "*") -> dict[tuple[str, str], list[str]]:
    """Every registered contact as a dial string, by (user, domain), in sofia's row order."""
    index: dict[tuple[str, str], list[str]] = {}
    for row in state.registrations.values():
        if profile in ("*", row.profile):
            key = (row.user, row.realm.lower())
            index.setdefault(key, []).append(f"sofia/{row.profile}/{row.uri}")
    return index


def sofia_contact_of(state: SimState, profile: str, user: str, domain: str) -> str:
    """Every registered contact of user@domain, comma-joined (fact 21)."""
    contacts = contact_index(state, profile).get((user, domain.lower()), [])
    return ",".join(contacts) if contacts else NOT_REGISTERED


@api("vm_boxcount")
def vm_boxcount(state: SimState, arg: str, ctx: ApiContext) -> str:
    """The simulated mailboxes are empty: new messages, or new:saved:new-urgent:saved-urgent
    with ``|all`` (fact 21)."""
    return "0:0:0:0" if arg.endswith("|all") else "0"
