"""Core AMI actions: login (plain and MD5), logoff, ping, events, ListCommands, core
settings/status, module checks, reloads and the `Command` action with its CLI commands."""

from __future__ import annotations

import hashlib
import random
import time

from drivers.asterisk.sim import modules
from drivers.asterisk.sim.base import (
    CLI_COMMANDS,
    Reply,
    Session,
    SimContext,
    action,
    cli,
    error,
    event,
    list_reply,
    response,
)
from drivers.asterisk.sim.dispatch import allowed, known_actions
from drivers.asterisk.sim.registrar import acl_allows
from drivers.asterisk.wire import Message, get

LOGIN_FAILURE_DELAY = 1.0  # Asterisk answers a failed login after about a second, then closes


def _classes(value: str | None) -> frozenset[str]:
    return frozenset(c.strip().lower() for c in (value or "").split(",") if c.strip())


@action("Challenge")
def challenge(ctx: SimContext, session: Session, request: Message) -> Reply:
    if (get(request, "AuthType") or "").lower() != "md5":
        return Reply([error(request, "Must specify AuthType")])
    session.challenge = str(random.randint(100_000_000, 999_999_999))
    return Reply([response(request, "Success", [("Challenge", session.challenge)])])


@action("Login")
def login(ctx: SimContext, session: Session, request: Message) -> Reply:
    username = get(request, "Username") or ""
    manager = ctx.loaded("manager.conf")
    user = next((c for c in manager.sections(username) if c.name != "general"), None)
    secret = user.get("secret") if user is not None else None
    if (get(request, "AuthType") or "").lower() == "md5":
        given = get(request, "Key") or ""
        expected = (
            hashlib.md5(f"{session.challenge}{secret}".encode()).hexdigest()
            if secret is not None and session.challenge
            else None
        )
        ok = expected is not None and given == expected
    else:
        ok = secret is not None and get(request, "Secret") == secret
    if ok and user is not None:
        rules = [(k, v) for k, v in manager.expanded(user) if k in ("deny", "permit")]
        ok = acl_allows(rules, session.address or "127.0.0.1")  # the user's ACL (fact 49)
    if not ok or user is None:
        return Reply(
            [error(request, "Authentication failed")], delay=LOGIN_FAILURE_DELAY, close=True
        )
    session.username = username
    session.read = _classes(user.get("read"))
    session.write = _classes(user.get("write"))
    session.events_on = (get(request, "Events") or "on").lower() not in ("off", "no", "0")
    messages = [response(request, "Success", [("Message", "Authentication accepted")])]
    if session.events_on and "system" in session.read:
        uptime, last_reload = str(ctx.live.uptime), str(ctx.live.since_reload)
        if ctx.live.booting:  # the start-up broadcast itself: other order, SystemName (fact 8)
            fully_booted = ctx.unsolicited(
                "FullyBooted",
                [("Status", "Fully Booted"), ("Uptime", uptime), ("LastReload", last_reload)],
            )
        else:
            fully_booted = [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", last_reload),
                ("Status", "Fully Booted"),
            ]
        messages.append(fully_booted)
    return Reply(messages)


@action("Logoff")
def logoff(ctx: SimContext, session: Session, request: Message) -> Reply:
    return Reply(
        [response(request, "Goodbye", [("Message", "Thanks for all the fish.")])], close=True
    )


@action("Ping")
def ping(ctx: SimContext, session: Session, request: Message) -> Reply:
    return Reply(
        [response(request, "Success", [("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])]
    )


@action("Events")
def events(ctx: SimContext, session: Session, request: Message) -> Reply:
    mask = (get(request, "EventMask") or "on").lower()
    session.events_on = mask not in ("off", "no", "0", "none")
    return Reply([response(request, "Success", [("Events", "On" if session.events_on else "Off")])])


@action("ListCommands")
def list_commands(ctx: SimContext, session: Session, request: Message) -> Reply:
    fields = []
    for info in known_actions().values():
        if info.module is not None and not modules.is_loaded(ctx, info.module):
            continue
        if allowed(session, info):
            priv = ",".join(_ordered(info.privilege)) if info.privilege else "<none>"
            fields.append((info.name, f"{info.synopsis}  (Priv: {priv})"))
    return Reply([response(request, "Success", fields)])


PRIVILEGE_ORDER = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
    "all",
)


def _ordered(classes: frozenset[str]) -> list[str]:
    return sorted(classes, key=lambda c: PRIVILEGE_ORDER.index(c) if c in PRIVILEGE_ORDER else 99)


def _options(ctx: SimContext) -> dict[str, str]:
    try:
        sections = ctx.loaded("asterisk.conf").sections("options")
    except FileNotFoundError:
        return {}
    return dict(sections[0].options) if sections else {}


@action("CoreSettings")
def core_settings(ctx: SimContext, session: Session, request: Message) -> Reply:
    options = _options(ctx)
    return Reply(
        [
            response(
                request,
                "Success",
                [
                    ("AMIversion", ctx.ami_version),
                    ("AsteriskVersion", ctx.version),
                    ("SystemName", ctx.system_name or ""),
                    ("CoreMaxCalls", options.get("maxcalls", "0")),
                    ("CoreMaxLoadAvg", f"{float(options.get('maxload', '0')):.6f}"),
                    ("CoreRunUser", options.get("runuser", "")),
                    ("CoreRunGroup", options.get("rungroup", "")),
                    ("CoreMaxFilehandles", "0"),
                    ("CoreRealTimeEnabled", "No"),
                    ("CoreCDRenabled", "Yes"),
                    ("CoreHTTPenabled", "No"),
                    ("SoundsSearchCustomDir", "No"),
                ],
            )
        ]
    )


def _date_time(stamp: float) -> tuple[str, str]:
    local = time.localtime(stamp)
    return time.strftime("%Y-%m-%d", local), time.strftime("%H:%M:%S", local)


@action("CoreStatus")
def core_status(ctx: SimContext, session: Session, request: Message) -> Reply:
    start_date, start_time = _date_time(ctx.live.started_at)
    reload_date, reload_time = _date_time(ctx.live.reloaded_at)
    return Reply(
        [
            response(
                request,
                "Success",
                [
                    ("CoreStartupDate", start_date),
                    ("CoreStartupTime", start_time),
                    ("CoreReloadDate", reload_date),
                    ("CoreReloadTime", reload_time),
                    ("CoreCurrentCalls", "0"),
                    ("CoreProcessedCalls", "0"),
                ],
            )
        ]
    )


@action("CoreShowChannels")
def core_show_channels(ctx: SimContext, session: Session, request: Message) -> Reply:
    return list_reply(request, "Channels will follow", [], "CoreShowChannelsComplete")


def _module(ctx: SimContext, name: str) -> str | None:
    """The canonical name of a module the PBX has loaded, else None."""
    module = modules.canonical(name)
    return module if module is not None and modules.is_loaded(ctx, module) else None


@action("ModuleCheck")
def module_check(ctx: SimContext, session: Session, request: Message) -> Reply:
    if _module(ctx, get(request, "Module") or "") is None:
        return Reply([error(request, "Module not loaded")])
    return Reply([response(request, "Success", [("Version", "")])])


def reload_module(ctx: SimContext, module: str) -> list[Message]:
    """What Asterisk does on a reload: new reload time, a `Reload` event, and, for the
    manager with a `setvar` user on a changed manager.conf, the crash of fact 19."""
    ctx.live.reloaded_at = time.time()
    if module in ("All", "manager"):
        before = ctx.loaded("manager.conf")
        ctx.reloaded(module)
        manager = ctx.loaded("manager.conf")
        if manager != before:  # a reload of an unchanged file is skipped (fact 19)
            ctx.manager_reloads += 1
        has_setvar = any(k == "setvar" for c in manager.categories for k, _ in c.options)
        if has_setvar and ctx.manager_reloads >= 2:
            ctx.crashed = True
    else:
        ctx.reloaded(module)
    return [ctx.unsolicited("Reload", [("Module", module), ("Status", "0")])]


@action("Reload")
def reload(ctx: SimContext, session: Session, request: Message) -> Reply:
    requested = get(request, "Module")
    module = "All" if not requested else (_module(ctx, requested) or requested)
    if requested and _module(ctx, requested) is None:
        return Reply([error(request, "No such module")])
    return Reply(
        [response(request, "Success", [("Message", "Module Reloaded")])],
        broadcast=reload_module(ctx, module),
    )


@action("Command")
def command(ctx: SimContext, session: Session, request: Message) -> Reply:
    text = " ".join((get(request, "Command") or "").split())
    words = text.split(" ")
    lowered = text.lower()
    best = max(
        (p for p in CLI_COMMANDS if lowered == p or lowered.startswith(p + " ")),
        key=len,
        default=None,
    )
    output = CLI_COMMANDS[best](ctx, words) if best is not None else None
    if output is None:
        return Reply(
            [
                response(
                    request,
                    "Error",
                    [
                        ("Message", "Command output follows"),
                        (
                            "Output",
                            f"No such command '{text}' (type 'core show help {text}' "
                            "for other possible commands)",
                        ),
                    ],
                )
            ]
        )
    broadcast: list[Message] = []
    if best == "module reload" and len(words) == 3 and _module(ctx, words[2]):
        broadcast = reload_module(ctx, _module(ctx, words[2]) or words[2])
    fields = [("Message", "Command output follows"), *(("Output", line) for line in output)]
    return Reply([response(request, "Success", fields)], broadcast=broadcast)


@cli("core show version")
def cli_version(ctx: SimContext, words: list[str]) -> list[str]:
    built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ctx.live.started_at - 900))
    return [f"Asterisk {ctx.version} built by root @ vm on a x86_64 running Linux on {built}"]


@cli("core show uptime")
def cli_uptime(ctx: SimContext, words: list[str]) -> list[str] | None:
    if words[3:] not in ([], ["seconds"]):
        return None
    return [f"System uptime: {ctx.live.uptime}", f"Last reload: {ctx.live.since_reload}"]


@cli("module show like")
def cli_module_show_like(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 4:
        return None
    loaded = modules.loaded(ctx)
    rows = [
        (m, d, level)
        for m, (d, level) in modules.MODULES.items()
        if words[3] in m and m.endswith(".so") and m in loaded
    ]
    lines = [f"{'Module':<30} {'Description':<40} {'Use Count':<10} {'Status':<11} Support Level"]
    lines += [f"{m:<30} {d:<40} {'0':<10} {'Running':<11} {lv:>13}" for m, d, lv in rows]
    lines.append(f"{len(rows)} modules loaded")
    return lines


@cli("module reload")
def cli_module_reload(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 3:
        return None
    module = _module(ctx, words[2])
    if module is None:
        return [f"The module '{words[2]}' could not be reloaded."]
    return [f"Module '{words[2]}' reloaded successfully."]


__all__ = ["event", "reload_module"]
