"""Originate, as far as the captures show calls (facts 37, 41, 47): the simulated phones
answer at once, the originated application runs, the call ends, and the channel events
(Newchannel, DialBegin, Newstate, DialEnd, Cdr, Hangup) go to the sessions allowed to read
them, right after the `Originate successfully queued` response.

A call to a PJSIP endpoint is refused (`Originate failed`, no channel created) when the
endpoint is in maintenance, has no contact bound (e.g. after DBDel) or its device does not
answer. ACLs do not stop calls to a registered contact (fact 47). `Local/EXTEN@CONTEXT` rings
the PJSIP endpoints the extension dials (the `PJSIP/...` in its first priority, else its hint)
and leaves out those that are refused (fact 37, ring group); events of the Local channels
themselves are not simulated (no capture shows them: the captured client filters them out).

Channel and Uniqueid sequences restart with the PBX (`LiveState.forget_runtime`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from drivers.asterisk.sim.base import Reply, Session, SimContext, action, error, response
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.wire import Message, get

_PJSIP = re.compile(r"PJSIP/([^,&)\s/]+)")
_CALLERID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<number>[^>]*)>\s*$')


def callerid_parts(value: str | None) -> tuple[str | None, str | None]:
    """`"Bob Martinez" <102>` -> ("Bob Martinez", "102")."""
    match = _CALLERID.match(value or "")
    if match is None:
        return None, (value or "").strip() or None
    return match["name"].strip() or None, match["number"].strip() or None


@dataclass
class _Channel:
    name: str
    uniqueid: str
    linkedid: str
    number: str
    cid_name: str
    language: str
    accountcode: str
    context: str


def _uniqueid(ctx: SimContext) -> str:
    value = (
        f"{ctx.system_name + '-' if ctx.system_name else ''}{int(time.time())}.{ctx.live.channels}"
    )
    ctx.live.channels += 1
    return value


def _reachable(ctx: SimContext, conf: ConfFile, name: str) -> Category | None:
    """The endpoint, when a call to it would reach a device."""
    endpoint = conf.find(name, "endpoint")
    if endpoint is None or name in ctx.live.maintenance:
        return None
    aors = [a.strip() for a in (conf.value(endpoint, "aors") or "").split(",") if a.strip()]
    bound = [c for aor in aors for c in ctx.live.contacts_of(aor)]
    return endpoint if any(c.answers for c in bound) else None


def _pjsip_channel(
    ctx: SimContext, conf: ConfFile, endpoint: Category, linkedid: str | None
) -> _Channel:
    name, number = callerid_parts(conf.value(endpoint, "callerid"))
    channel_name = f"PJSIP/{endpoint.name}-{ctx.live.pjsip_channels:08x}"
    ctx.live.pjsip_channels += 1
    uniqueid = _uniqueid(ctx)
    return _Channel(
        name=channel_name,
        uniqueid=uniqueid,
        linkedid=linkedid or uniqueid,
        number=number or "<unknown>",
        cid_name=name or "<unknown>",
        language=conf.value(endpoint, "language") or "en",
        accountcode=conf.value(endpoint, "accountcode") or "",
        context=conf.value(endpoint, "context") or "default",
    )


def _state(
    channel: _Channel, state: int, *, prefix: str = "", exten: str = "s"
) -> list[tuple[str, str]]:
    words = {0: "Down", 5: "Ringing", 6: "Up"}
    return [
        (f"{prefix}Channel", channel.name),
        (f"{prefix}ChannelState", str(state)),
        (f"{prefix}ChannelStateDesc", words[state]),
        (f"{prefix}CallerIDNum", channel.number),
        (f"{prefix}CallerIDName", channel.cid_name),
        (f"{prefix}ConnectedLineNum", "<unknown>"),
        (f"{prefix}ConnectedLineName", "<unknown>"),
        (f"{prefix}Language", channel.language),
        (f"{prefix}AccountCode", channel.accountcode),
        (f"{prefix}Context", channel.context),
        (f"{prefix}Exten", exten),
        (f"{prefix}Priority", "1"),
        (f"{prefix}Uniqueid", channel.uniqueid),
        (f"{prefix}Linkedid", channel.linkedid),
    ]


def _cdr(channel: _Channel, app: str, data: str, started: float) -> list[tuple[str, str]]:
    seconds = int(data) if app.lower() == "wait" and data.isdigit() else 0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    end = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started + seconds))
    return [
        ("AccountCode", channel.accountcode),
        ("Source", channel.number),
        ("Destination", "s"),
        ("DestinationContext", channel.context),
        ("CallerID", f'"{channel.cid_name}" <{channel.number}>'),
        ("Channel", channel.name),
        ("DestinationChannel", ""),
        ("LastApplication", app),
        ("LastData", data),
        ("StartTime", stamp),
        ("AnswerTime", stamp),
        ("EndTime", end),
        ("Duration", str(seconds)),
        ("BillableSeconds", str(seconds)),
        ("Disposition", "ANSWERED"),
        ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", channel.uniqueid),
        ("UserField", ""),
    ]


def _call_event(
    ctx: SimContext, name: str, fields: list[tuple[str, str]], kind: str = "call"
) -> Message:
    head: Message = [("Event", name), ("Privilege", f"{kind},all")]
    if ctx.system_name:
        head.append(("SystemName", ctx.system_name))
    return head + fields


def _originate_pjsip(
    ctx: SimContext, conf: ConfFile, target: str, app: str, data: str
) -> list[Message] | None:
    endpoint = _reachable(ctx, conf, target)
    if endpoint is None:
        return None
    channel = _pjsip_channel(ctx, conf, endpoint, None)
    dest = _state(channel, 0, prefix="Dest")
    answered = _state(channel, 6, prefix="Dest")
    return [
        _call_event(ctx, "Newchannel", _state(channel, 0)),
        _call_event(ctx, "DialBegin", [*dest, ("DialString", target)]),
        _call_event(ctx, "Newstate", _state(channel, 5)),
        _call_event(ctx, "Newstate", _state(channel, 6)),
        _call_event(ctx, "DialEnd", [*answered, ("DialStatus", "ANSWER")]),
        _call_event(ctx, "Cdr", _cdr(channel, app, data, time.time()), "cdr"),
        _call_event(ctx, "Hangup", [*_state(channel, 6), ("Cause", "0"), ("Cause-txt", "Unknown")]),
    ]


def _dialled(ctx: SimContext, exten: str, context: str) -> list[str]:
    """The PJSIP endpoints `exten@context` rings: named in its first priority, else its hint."""
    plan = ctx.loaded("extensions.conf")
    first: list[str] = []
    hint: list[str] = []
    for category in plan.categories:
        if category.name != context:
            continue
        for key, value in category.options:
            parts = [p.strip() for p in value.split(",", 2)]
            if key != "exten" or len(parts) < 3 or parts[0] != exten:
                continue
            if parts[1] == "hint":
                hint = _PJSIP.findall(parts[2])
            elif parts[1] == "1" and not first:
                first = _PJSIP.findall(parts[2])
    return first or hint


def _originate_local(
    ctx: SimContext, conf: ConfFile, exten: str, context: str
) -> list[Message] | None:
    targets = [t for t in _dialled(ctx, exten, context) if _reachable(ctx, conf, t)]
    if not targets:
        return None
    local_name = f"Local/{exten}@{context}-{ctx.live.local_channels:08x};1"
    ctx.live.local_channels += 1
    local_id = _uniqueid(ctx)
    _uniqueid(ctx)  # the ;2 half
    local = _Channel(local_name, local_id, local_id, "<unknown>", "<unknown>", "en", "", context)
    legs = [
        _pjsip_channel(ctx, conf, endpoint, local_id)
        for endpoint in (conf.find(t, "endpoint") for t in targets[:1])
        if endpoint is not None
    ]
    leg = legs[0]
    dest = _state(local, 0, prefix="Dest", exten=exten)
    answered = [
        (
            k,
            leg.number
            if k == "DestCallerIDNum"
            else leg.cid_name
            if k == "DestCallerIDName"
            else v,
        )
        for k, v in _state(local, 6, prefix="Dest", exten=exten)
    ]
    return [
        _call_event(ctx, "DialBegin", [*dest, ("DialString", f"{exten}@{context}")]),
        _call_event(ctx, "Newchannel", _state(leg, 0)),
        _call_event(ctx, "Newstate", _state(leg, 5)),
        _call_event(ctx, "Newstate", _state(leg, 6)),
        _call_event(ctx, "DialEnd", [*answered, ("DialStatus", "ANSWER")]),
        _call_event(
            ctx,
            "Hangup",
            [*_state(leg, 6, exten=""), ("Cause", "16"), ("Cause-txt", "Normal Clearing")],
        ),
    ]


@action("Originate")
def originate(ctx: SimContext, session: Session, request: Message) -> Reply:
    channel = get(request, "Channel") or ""
    if not channel:
        return Reply([error(request, "Channel not specified")])
    tech, _, rest = channel.partition("/")
    conf = ctx.loaded("pjsip.conf")
    app, data = get(request, "Application") or "", get(request, "Data") or ""
    events: list[Message] | None = None
    if tech.upper() == "PJSIP":
        events = _originate_pjsip(ctx, conf, rest, app, data)
    elif tech.lower() == "local" and "@" in rest:
        exten, _, context = rest.partition("@")
        events = _originate_local(ctx, conf, exten, context.split("/")[0])
    if events is None:
        return Reply([error(request, "Originate failed")])
    return Reply(
        [response(request, "Success", [("Message", "Originate successfully queued")])],
        broadcast=events,
    )
