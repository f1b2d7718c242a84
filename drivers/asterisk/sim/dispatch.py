"""Routing one request to its handler the way Asterisk's manager does: missing action,
unknown action, not logged in, permission classes, then the handler."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import structlog

from drivers.asterisk.sim import modules
from drivers.asterisk.sim.base import HANDLERS, Reply, Session, SimContext, error
from drivers.asterisk.wire import Message, get

log = structlog.get_logger(__name__)

# Answered before Login (everything else gets "Permission denied").
PRE_LOGIN = frozenset({"login", "challenge", "logoff"})


@dataclass(frozen=True, slots=True)
class ActionInfo:
    name: str
    privilege: frozenset[str]  # empty: open to every logged-in user
    synopsis: str
    module: str | None = None  # the loadable module providing it, when it may be missing


@cache
def known_actions() -> dict[str, ActionInfo]:
    """Every action the captured Asterisk offered (data/actions.tsv), by lower-case name."""
    text = resources.files("drivers.asterisk.sim").joinpath("data/actions.tsv").read_text()
    table: dict[str, ActionInfo] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, priv, rest = line.split("\t", 2)
        synopsis, module = rest.rsplit("\t", 1)  # a synopsis may hold a tab (SendText)
        classes = frozenset() if priv == "<none>" else frozenset(priv.split(","))
        table[name.lower()] = ActionInfo(name, classes, synopsis, None if module == "-" else module)
    return table


def allowed(session: Session, info: ActionInfo) -> bool:
    """Asterisk grants an action when the user's write classes share one with the action's."""
    required = info.privilege - {"all"}
    return not required or bool(required & session.write)


def dispatch(ctx: SimContext, session: Session, request: Message) -> Reply:
    name = get(request, "Action")
    if name is None or not name.strip():
        return Reply([error(request, "Missing action in request")])
    key = name.strip().lower()
    info = known_actions().get(key)
    if info is not None and info.module is not None and not modules.is_loaded(ctx, info.module):
        info = None  # its module is not loaded: the action does not exist
    handler = HANDLERS.get(key)
    if not session.logged_in and key not in PRE_LOGIN:
        return Reply([error(request, "Permission denied")])
    if info is not None and session.logged_in and not allowed(session, info):
        return Reply([error(request, "Permission denied")])
    if info is None or handler is None:
        if info is not None:
            log.warning("AMI action known to Asterisk but not simulated", action=info.name)
        return Reply(
            [
                error(
                    request,
                    f"Invalid/unknown command: {name.strip()}. "
                    "Use Action: ListCommands to show available commands.",
                )
            ]
        )
    return handler(ctx, session, request)
