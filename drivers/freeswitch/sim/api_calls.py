"""Calls, as far as an agent looks at them: ``originate`` of a loopback call into the
dialplan (a loopback pair is two channels, each counted as a call, fact 43), ``hupall``,
``conference list|xml_list|json_list``, and the channel and call tables ``show`` prints."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim import xmldoc
from drivers.freeswitch.sim.apis import ApiContext, api
from drivers.freeswitch.sim.state import Channel, SimState

CHANNEL_COLUMNS = (  # noqa: SIM905 - a list of names, kept readable as text
    "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,"
    "application,application_data,dialplan,context,read_codec,read_rate,read_bit_rate,"
    "write_codec,write_rate,write_bit_rate,secure,hostname,presence_id,presence_data,"
    "accountcode,callstate,callee_name,callee_num,callee_direction,call_uuid,"
    "sent_callee_name,sent_callee_num,initial_cid_name,initial_cid_num,initial_ip_addr,"
    "initial_dest,initial_dialplan,initial_context"
).split(",")
CALL_COLUMNS = (  # noqa: SIM905 - a list of names, kept readable as text
    "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,"
    "presence_id,presence_data,accountcode,callstate,callee_name,callee_num,callee_direction,"
    "call_uuid,hostname,sent_callee_name,sent_callee_num,b_uuid,b_direction,b_created,"
    "b_created_epoch,b_name,b_state,b_cid_name,b_cid_num,b_ip_addr,b_dest,b_presence_id,"
    "b_presence_data,b_accountcode,b_callstate,b_callee_name,b_callee_num,b_callee_direction,"
    "b_sent_callee_name,b_sent_callee_num,call_created_epoch"
).split(",")
MEMBER_FLAGS = (  # noqa: SIM905 - a list of names, kept readable as text
    "can_hear can_see can_speak mute_detect talking hold has_video video_bridge has_floor "
    "is_moderator end_conference mandatory_member_end_conference is_ghost"
).split()
_ORIGINATE = re.compile(r"^(?:\{(?P<vars>[^}]*)\})?loopback/(?P<dest>[^/\s]+)(?:/(?P<ctx>\S+))?")


def _created(channel: Channel) -> tuple[str, str]:
    when = datetime.fromtimestamp(channel.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return when, str(int(channel.created))


def _values(state: SimState, c: Channel) -> dict[str, str]:
    """A channel's columns as the core's channels table holds them (unlisted ones empty)."""
    when, epoch = _created(c)
    codec = {"codec": "L16", "rate": "8000", "bit_rate": "128000"}
    return {
        "uuid": c.uuid,
        "direction": c.direction,
        "created": when,
        "created_epoch": epoch,
        "name": c.name,
        "state": "CS_EXECUTE",
        "cid_name": c.cid_name,
        "cid_num": c.cid_num,
        "dest": c.dest,
        "application": c.application,
        "application_data": c.application_data,
        "dialplan": "xml",
        "context": c.context,
        **{f"{way}_{key}": value for way in ("read", "write") for key, value in codec.items()},
        "hostname": state.hostname,
        "callstate": "ACTIVE",
        "callee_name": c.callee_name,
        "callee_num": c.callee_num,
        "callee_direction": c.callee_direction,
        "call_uuid": c.call_uuid,
        "initial_cid_name": c.initial_cid_name,
        "initial_cid_num": c.initial_cid_num,
        "initial_dest": c.dest,
        "initial_dialplan": "xml",
        "initial_context": c.context,
    }


def channel_rows(state: SimState) -> list[list[str]]:
    rows = [_values(state, c) for c in state.channels]
    return [[row.get(column, "") for column in CHANNEL_COLUMNS] for row in rows]


def call_rows(state: SimState) -> list[list[str]]:
    """Calls as the basic_calls view shows them: a loopback leg is a call of its own
    (fact 43); no leg here is bridged, so every b_ column is empty."""
    rows = [_values(state, c) for c in state.channels]
    return [[row.get(column, "") for column in CALL_COLUMNS] for row in rows]


def _dialplan_app(state: SimState, context: str, dest: str) -> tuple[str, str]:
    """The application the dialplan runs for `dest` in `context` (first matching extension,
    its last action), as FreeSWITCH's XML dialplan would reach it."""
    section = d.section(state.tree, "dialplan")
    ctx = section.find("context", "name", context) if section is not None else None
    for extension in ctx.all("extension") if ctx is not None else ():
        for condition in extension.all("condition"):
            if condition.attr("field") != "destination_number":
                continue
            if re.search(condition.attr("expression") or "$^", dest):
                actions = list(condition.all("action"))
                if actions:
                    last = actions[-1]
                    return last.attr("application") or "park", last.attr("data") or ""
    return "park", ""


@api("originate")
def originate(state: SimState, arg: str, ctx: ApiContext) -> str:
    target, _, app = arg.partition(" ")
    found = _ORIGINATE.match(target)
    if found is None:
        return "-ERR DESTINATION_OUT_OF_ORDER\n"
    variables = dict(v.split("=", 1) for v in (found.group("vars") or "").split(",") if "=" in v)
    dest, context = found.group("dest"), found.group("ctx") or "default"
    cid_name = variables.get("origination_caller_id_name", "Outbound Call")
    cid_num = variables.get("origination_caller_id_number", "0000000000")
    now = state.now()
    a_uuid, b_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    app_name = app.strip().lstrip("&").split("(", 1)[0] or "park"
    b_app, b_data = _dialplan_app(state, context, dest)
    state.channels += [
        Channel(
            a_uuid,
            "outbound",
            now,
            f"loopback/{dest}-a",
            "Outbound Call",
            context,
            dest,
            context,
            app_name,
            "",
            cid_name,
            cid_num,
            "RECV",
            a_uuid,
            cid_name,
            cid_num,
        ),
        Channel(
            b_uuid,
            "inbound",
            now,
            f"loopback/{dest}-b",
            cid_name,
            cid_num,
            dest,
            context,
            b_app,
            b_data,
            "Outbound Call",
            context,
            "",
            "",
            cid_name,
            cid_num,
        ),
    ]
    state.sessions_total += 2
    state.session_times += [now, now]
    state.sessions_peak = max(state.sessions_peak, len(state.channels))
    if b_app == "conference":
        state.conference_uuid = state.conference_uuid or str(uuid.uuid4())
        state.conference_started = now
    return f"+OK {a_uuid}\n"


@api("hupall")
def hupall(state: SimState, arg: str, ctx: ApiContext) -> str:
    cause = arg.split()[0] if arg.split() else "NORMAL_CLEARING"
    state.channels.clear()
    state.conference_uuid = ""
    return f"+OK hangup all channels with cause {cause}\n"


def _members(state: SimState) -> list[tuple[int, Channel]]:
    members = [c for c in state.channels if c.application == "conference"]
    return list(enumerate(members, start=1))


def _conference_name(state: SimState) -> tuple[str, str]:
    data = next(c.application_data for c in state.channels if c.application == "conference")
    name, _, profile = data.partition("@")
    return name, profile or "default"


FLAGS = "running|answered|enforce_min|dynamic|exit_sound|enter_sound|json_status"


@api("conference")
def conference(state: SimState, arg: str, ctx: ApiContext) -> str:
    members = _members(state)
    command = arg.split()[0] if arg.split() else ""
    if not members:
        if command in ("xml_list",):
            return '<?xml version="1.0"?>\n<conferences>\n</conferences>\n'
        if command == "json_list":
            return "[]"
        return "+OK No active conferences.\n"
    name, _profile = _conference_name(state)
    run_time = int(state.now() - state.conference_started)
    if command == "list":
        lines = [f"+OK Conference {name} ({len(members)} member rate: 8000 flags: {FLAGS})\n"]
        for member_id, c in members:
            lines.append(
                f"{member_id};{c.name};{c.uuid};{c.cid_name};{c.cid_num};hear|speak|floor;0;0;100\n"
            )
        return "".join(lines)
    if command == "xml_list":
        return _xml_list(state, name, members, run_time)
    if command == "json_list":
        return _json_list(state, name, members, run_time)
    return "-ERR Conference command not found\n"


def _xml_list(state: SimState, name: str, members: list[tuple[int, Channel]], run_time: int) -> str:
    root = xmldoc.Element("conferences")
    attrs = [
        ("name", name),
        ("member-count", str(len(members))),
        ("ghost-count", "0"),
        ("rate", "8000"),
        ("uuid", state.conference_uuid),
        ("running", "true"),
        ("answered", "true"),
        ("enforce_min", "true"),
        ("dynamic", "true"),
        ("exit_sound", "true"),
        ("enter_sound", "true"),
        ("run_time", str(run_time)),
    ]
    conf = _add(root, "conference", attrs=attrs)
    _add(conf, "variables")
    box = _add(conf, "members")
    for member_id, c in members:
        member = _add(box, "member", attrs=[("type", "caller")])
        _add(member, "id", str(member_id))
        flags = _add(member, "flags")
        on = {"can_hear", "can_see", "can_speak", "has_floor"}
        for flag in MEMBER_FLAGS:
            _add(flags, flag, "true" if flag in on else "false")
        for tag, value in (
            ("uuid", c.uuid),
            ("caller_id_name", c.cid_name),
            ("caller_id_number", c.cid_num),
            ("join_time", str(run_time)),
            ("last_talking", "N/A"),
            ("energy", "100"),
            ("volume_in", "0"),
            ("volume_out", "0"),
            ("output-volume", "0"),
        ):
            _add(member, tag, value)
    return '<?xml version="1.0"?>\n' + xmldoc.toxml(root)


def _add(
    parent: xmldoc.Element, name: str, txt: str = "", attrs: list[tuple[str, str]] | None = None
) -> xmldoc.Element:
    child = xmldoc.Element(name, attrs or [], txt=txt, parent=parent)
    parent.children.append(child)
    return child


def _json_list(
    state: SimState, name: str, members: list[tuple[int, Channel]], run_time: int
) -> str:
    def flags() -> dict[str, object]:
        return {
            "can_hear": True,
            "can_see": True,
            "can_speak": True,
            "hold": False,
            "mute_detect": False,
            "talking": False,
            "has_video": False,
            "video_bridge": False,
            "has_floor": True,
            "is_moderator": False,
            "end_conference": False,
            "mandatory_member_end_conference": False,
            "pass_digits": False,
        }

    conference_data: dict[str, object] = {
        "conference_name": name,
        "member_count": len(members),
        "ghost_count": 0,
        "rate": 8000,
        "run_time": run_time,
        "conference_uuid": state.conference_uuid,
        "canvas_count": 0,
        "max_bw_in": 0,
        "force_bw_in": 0,
        "video_floor_packets": 0,
        "locked": False,
        "destruct": False,
        "wait_mod": False,
        "audio_always": False,
        "running": True,
        "answered": True,
        "enforce_min": True,
        "bridge_to": False,
        "dynamic": True,
        "exit_sound": True,
        "enter_sound": True,
        "recording": False,
        "video_bridge": False,
        "video_floor_only": False,
        "video_rfc4579": False,
        "variables": {},
        "members": [
            {
                "type": "caller",
                "id": member_id,
                "flags": flags(),
                "uuid": c.uuid,
                "caller_id_name": c.cid_name,
                "caller_id_number": c.cid_num,
                "join_time": run_time,
                "last_talking": 0,
                "energy": 100,
                "volume_in": 0,
                "volume_out": 0,
                "output-volume": 0,
                "input-volume": 0,
            }
            for member_id, c in members
        ],
    }
    return cjson([conference_data])


def cjson(value: object, depth: int = 0) -> str:
    """cJSON_Print's formatted output: tabs, ``"key":\\tvalue``, no trailing newline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(cjson(v, depth + 1) for v in value) + "]"
    assert isinstance(value, dict)
    inner = "\t" * (depth + 1)
    items = [f'{inner}"{k}":\t{cjson(v, depth + 1)}' for k, v in value.items()]
    return "{\n" + ",\n".join(items) + ("\n" if items else "") + "\t" * depth + "}"
