"""Voicemail, queue, hint and device-state actions, from the office's config files and
the endpoints' live state."""

from __future__ import annotations

from drivers.asterisk.sim.base import (
    Reply,
    Session,
    SimContext,
    action,
    error,
    event,
    list_reply,
    response,
)
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.pjsip_actions import device_state
from drivers.asterisk.wire import Message, get

YES = {"yes", "true", "1", "on"}


def _endpoint_online(ctx: SimContext, name: str) -> bool:
    conf = ctx.loaded("pjsip.conf")
    endpoint = conf.find(name, "endpoint")
    return endpoint is not None and device_state(ctx, conf, endpoint) == "Not in use"


# -- voicemail ------------------------------------------------------------------------------


def mailboxes(ctx: SimContext) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(context, mailbox, [pin, name, email, pager], options) for every box in voicemail.conf."""
    conf = ctx.loaded("voicemail.conf")
    boxes = []
    for category in conf.categories:
        if category.name in ("general", "zonemessages") or category.is_template:
            continue
        for mailbox, value in category.options:
            parts = [*value.split(","), "", "", "", "", ""][:5]
            options = dict(o.split("=", 1) for o in parts[4].split("|") if "=" in o)
            boxes.append((category.name, mailbox, parts[:4], options))
    return boxes


def _yes(value: str | None) -> str:
    return "Yes" if (value or "").lower() in YES else "No"


def _mailbox_fields(
    ctx: SimContext, context: str, mailbox: str, parts: list[str], options: dict[str, str]
) -> list[tuple[str, str]]:
    general = {k: v for k, v in ctx.loaded("voicemail.conf").sections("general")[0].options}

    def opt(name: str, default: str = "") -> str:
        return options.get(name, general.get(name, default))

    return [
        ("VMContext", context),
        ("VoiceMailbox", mailbox),
        ("Fullname", parts[1]),
        ("Email", parts[2]),
        ("Pager", parts[3]),
        ("ServerEmail", general.get("serveremail", "")),
        ("FromString", general.get("fromstring", "")),
        ("MailCommand", general.get("mailcmd", "/usr/sbin/sendmail -t")),
        ("Language", opt("language")),
        ("TimeZone", opt("tz")),
        ("Callback", opt("callback")),
        ("Dialout", opt("dialout")),
        ("UniqueID", ""),
        ("ExitContext", opt("exitcontext")),
        ("SayDurationMinimum", opt("saydurationm", "2")),
        ("SayEnvelope", _yes(opt("envelope", "yes"))),
        ("SayCID", _yes(opt("saycid", "no"))),
        ("AttachMessage", _yes(opt("attach", "no"))),
        ("AttachmentFormat", opt("attachfmt")),
        ("DeleteMessage", _yes(opt("delete", "no"))),
        ("VolumeGain", f"{float(opt('volgain', '0') or 0):.2f}"),
        ("CanReview", _yes(opt("review", "no"))),
        ("CanMarkUrgent", "Yes"),
        ("CallOperator", _yes(opt("operator", "no"))),
        ("MaxMessageCount", opt("maxmsg", "100")),
        ("MaxMessageLength", opt("maxsecs", "0")),
        ("NewMessageCount", "0"),
        ("OldMessageCount", "0"),
    ]


@action("VoicemailUsersList")
def voicemail_users_list(ctx: SimContext, session: Session, request: Message) -> Reply:
    boxes = ctx.memo(
        ("VoicemailUsersList",),
        (ctx.loaded("voicemail.conf"),),
        lambda: [_mailbox_fields(ctx, *box) for box in mailboxes(ctx)],
    )
    items = [event(request, "VoicemailUserEntry", fields) for fields in boxes]
    return list_reply(
        request, "Voicemail user list will follow", items, "VoicemailUserEntryComplete"
    )


@action("VoicemailUserStatus")
def voicemail_user_status(ctx: SimContext, session: Session, request: Message) -> Reply:
    context, mailbox = get(request, "Context") or "default", get(request, "Mailbox") or ""
    for box in mailboxes(ctx):
        if box[0] == context and box[1] == mailbox:
            item = event(request, "VoicemailUserDetail", _mailbox_fields(ctx, *box))
            return list_reply(
                request, "Voicemail user detail will follow", [item], "VoicemailUserDetailComplete"
            )
    return Reply([error(request, "Unable to get mailbox info for the given mailbox.")])


# -- queues ---------------------------------------------------------------------------------


def queues(ctx: SimContext) -> list[Category]:
    conf = ctx.loaded("queues.conf")
    return [c for c in conf.categories if c.name != "general" and not c.is_template]


def queue_members(conf: ConfFile, queue: Category) -> list[list[str]]:
    """Static members, in the order app_queue reports them (the reverse of the file's)."""
    members = []
    for key, value in conf.expanded(queue):
        if key == "member":
            parts = [p.strip() for p in value.split(",")]
            interface = parts[0]
            members.append(
                [
                    interface,
                    parts[1] if len(parts) > 1 and parts[1] else "0",
                    parts[2] if len(parts) > 2 and parts[2] else interface,
                    parts[3] if len(parts) > 3 and parts[3] else interface,
                ]
            )
    return list(reversed(members))


def member_available(ctx: SimContext, state_interface: str) -> bool:
    tech, _, name = state_interface.partition("/")
    return tech.upper() == "PJSIP" and _endpoint_online(ctx, name)


def _wanted(request: Message, queue: Category) -> bool:
    name = get(request, "Queue")
    return not name or name == queue.name


@action("QueueSummary")
def queue_summary(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("queues.conf")
    items = []
    for queue in queues(ctx):
        if not _wanted(request, queue):
            continue
        up = sum(member_available(ctx, m[3]) for m in queue_members(conf, queue))
        fields = [
            ("Queue", queue.name),
            ("LoggedIn", str(up)),
            ("Available", str(up)),
            ("Callers", "0"),
            ("HoldTime", "0"),
            ("TalkTime", "0"),
            ("LongestHoldTime", "0"),
        ]
        items.append(event(request, "QueueSummary", fields, action_id_last=True))
    return list_reply(request, "Queue summary will follow", items, "QueueSummaryComplete")


@action("QueueStatus")
def queue_status(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("queues.conf")
    login_time = str(int(ctx.live.started_at))
    items = []
    for queue in queues(ctx):
        if not _wanted(request, queue):
            continue
        params = [
            ("Queue", queue.name),
            ("Max", conf.value(queue, "maxlen", "0") or "0"),
            ("Strategy", conf.value(queue, "strategy", "ringall") or "ringall"),
            ("Calls", "0"),
            ("Holdtime", "0"),
            ("TalkTime", "0"),
            ("Completed", "0"),
            ("Abandoned", "0"),
            ("ServiceLevel", conf.value(queue, "servicelevel", "0") or "0"),
            ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"),
            ("Weight", conf.value(queue, "weight", "0") or "0"),
        ]
        items.append(event(request, "QueueParams", params, action_id_last=True))
        for interface, penalty, name, state_interface in queue_members(conf, queue):
            member = [
                ("Queue", queue.name),
                ("Name", name),
                ("Location", interface),
                ("StateInterface", state_interface),
                ("Membership", "static"),
                ("Penalty", penalty),
                ("CallsTaken", "0"),
                ("LastCall", "0"),
                ("LastPause", "0"),
                ("LoginTime", login_time),
                ("InCall", "0"),
                ("Status", "1" if member_available(ctx, state_interface) else "5"),
                ("Paused", "0"),
                ("PausedReason", ""),
                ("Wrapuptime", "0"),
            ]
            items.append(event(request, "QueueMember", member, action_id_last=True))
    return list_reply(request, "Queue status will follow", items, "QueueStatusComplete")


# -- hints and device states ----------------------------------------------------------------


def _hints(ctx: SimContext) -> list[tuple[str, str, str]]:
    """(extension, context, hint) from extensions.conf and res_parking's parking hints."""
    hints = []
    for category in ctx.loaded("extensions.conf").categories:
        for key, value in category.options:
            parts = [p.strip() for p in value.split(",", 2)]
            if key == "exten" and len(parts) == 3 and parts[1] == "hint":
                hints.append((parts[0], category.name, parts[2]))
    try:
        parking = ctx.loaded("res_parking.conf")
    except FileNotFoundError:
        return hints
    for lot in parking.categories:
        if lot.name == "general" or (lot.get("parkinghints") or "").lower() not in YES:
            continue
        first, _, last = (lot.get("parkpos") or "").partition("-")
        context = lot.get("context") or "parkedcalls"
        if first.isdigit() and last.isdigit():
            for slot in range(int(first), int(last) + 1):
                hints.append((str(slot), context, f"park:{slot}@{context}"))
    return hints


def _device_available(ctx: SimContext, device: str) -> bool | None:
    """True/False for devices with a state; None when unknown (treated as idle)."""
    tech, _, name = device.partition(":") if ":" in device.split("/")[0] else device.partition("/")
    if tech.upper() == "PJSIP":
        return _endpoint_online(ctx, name)
    if tech.lower() == "confbridge":
        return False
    return None


def _hint_status(ctx: SimContext, hint: str) -> tuple[str, str]:
    states = [_device_available(ctx, d) for d in hint.split("&")]
    if any(s is not False for s in states):
        return "0", "Idle"
    return "4", "Unavailable"


def _hint_fields(ctx: SimContext, exten: str, context: str, hint: str) -> list[tuple[str, str]]:
    status, text = _hint_status(ctx, hint)
    return [
        ("Exten", exten),
        ("Context", context),
        ("Hint", hint),
        ("Status", status),
        ("StatusText", text),
    ]


@action("ExtensionStateList")
def extension_state_list(ctx: SimContext, session: Session, request: Message) -> Reply:
    items = [event(request, "ExtensionStatus", _hint_fields(ctx, *h)) for h in _hints(ctx)]
    return list_reply(
        request, "Extension Statuses will follow", items, "ExtensionStateListComplete"
    )


@action("ExtensionState")
def extension_state(ctx: SimContext, session: Session, request: Message) -> Reply:
    exten, context = get(request, "Exten") or "", get(request, "Context") or ""
    for hint in _hints(ctx):
        if hint[:2] == (exten, context):
            fields = [("Message", "Extension Status"), *_hint_fields(ctx, *hint)]
            return Reply([response(request, "Success", fields)])
    fields = [
        ("Message", "Extension Status"),
        ("Exten", exten),
        ("Context", context),
        ("Hint", ""),
        ("Status", "-1"),
        ("StatusText", "Unknown"),
    ]
    return Reply([response(request, "Success", fields)])


@action("DeviceStateList")
def device_state_list(ctx: SimContext, session: Session, request: Message) -> Reply:
    conf = ctx.loaded("pjsip.conf")
    states: list[tuple[str, str]] = []
    for endpoint in conf.objects("endpoint"):
        online = device_state(ctx, conf, endpoint) == "Not in use"
        states.append((f"PJSIP/{endpoint.name}", "NOT_INUSE" if online else "UNAVAILABLE"))
    for context, mailbox, _, _ in mailboxes(ctx):
        states.append((f"MWI:{mailbox}@{context}", "NOT_INUSE"))
    queue_conf = ctx.loaded("queues.conf")
    for queue in queues(ctx):
        states.append((f"Queue:{queue.name}_avail", "NOT_INUSE"))
        for interface, *_ in queue_members(queue_conf, queue):
            states.append((f"Queue:{queue.name}_pause_{interface}", "NOT_INUSE"))
    items = [event(request, "DeviceStateChange", [("Device", d), ("State", s)]) for d, s in states]
    return list_reply(request, "Device State Changes will follow", items, "DeviceStateListComplete")
