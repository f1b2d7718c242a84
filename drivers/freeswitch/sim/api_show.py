"""``show``: the core's tables (registrations, channels, calls, modules, apis, completions),
delimited, as json or as xml (mod_commands show_function; fact 17, fact 24)."""

from __future__ import annotations

from drivers.freeswitch.sim import tables
from drivers.freeswitch.sim.api_calls import CALL_COLUMNS, CHANNEL_COLUMNS, call_rows, channel_rows
from drivers.freeswitch.sim.apis import ApiContext, api
from drivers.freeswitch.sim.state import SimState

REGISTRATION_COLUMNS = (  # noqa: SIM905 - a list of names, kept readable as text
    "reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata"
).split(",")


def _registrations(state: SimState) -> list[list[str]]:
    return [
        [
            row.user,
            row.realm,
            row.call_id,
            f"sofia/{row.profile}/{row.uri}",
            str(row.expiry),
            row.ip,
            row.port,
            row.transport,
            state.hostname,
            "",
        ]
        for row in state.core_rows.values()
    ]


@api("show")
def show(state: SimState, arg: str, ctx: ApiContext) -> str:
    words = arg.split()
    usage = f"-USAGE: {tables.syntax('show')}\n"
    if not words:
        return usage
    what = words[0].lower()
    fmt = "delim"
    if len(words) >= 3 and words[-2].lower() == "as":
        fmt = words[-1].lower()
    counting = len(words) > 1 and words[1].lower() == "count"
    if what == "registrations":
        columns, rows = REGISTRATION_COLUMNS, _registrations(state)
    elif what == "channels":
        columns, rows = CHANNEL_COLUMNS, channel_rows(state)
    elif what == "calls":
        columns, rows = CALL_COLUMNS, call_rows(state)
    elif what == "modules":
        columns = ["type", "name", "ikey", "filename"]
        rows = [[i.kind, i.name, i.ikey, i.filename] for i in tables.interfaces()]
    elif what == "api":
        columns = ["name", "description", "syntax", "ikey"]
        rows = [
            [i.name, i.description, i.syntax, i.ikey]
            for i in tables.interfaces()
            if i.kind == "api" and i.description
        ]
    elif what == "complete":
        columns = ["sticky", *(f"a{n}" for n in range(1, 11)), "hostname"]
        rows = [[*row, state.hostname] for row in tables.completions()]
    else:
        return usage
    if counting and what in ("registrations", "channels", "calls"):
        return tables.count(len(rows))
    if fmt not in ("delim", "csv", "json", "xml"):
        return f"-ERR Cannot find format {fmt}\n"
    return tables.render(columns, rows, "delim" if fmt == "csv" else fmt)
