"""res_pjsip_maintenance (Asterisk 20.20 / 22.10 / 23.4 and later): PJSIPSetMaintenance,
PJSIPShowMaintenance, `pjsip show maintenance`, and the PJSIPMaintenanceStatus event
(fixture facts 32-38).

The set of endpoints in maintenance is runtime state only (lost on restart, fact 38). It is
an ao2 string container of 53 buckets: listings come in bucket order (djb2 hash), sorted by
name within a bucket, which is the order the capture shows.
"""

from __future__ import annotations

from drivers.asterisk.sim import ao2, modules
from drivers.asterisk.sim.base import (
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
from drivers.asterisk.wire import Message, get

BUCKETS = 53  # MAINT_HASH_BUCKETS; a string container, sorted within a bucket


def in_container_order(names: set[str]) -> list[str]:
    return ao2.hash_order(names, BUCKETS, sort_in_bucket=True)


def endpoint_names(ctx: SimContext) -> list[str]:
    return [c.name for c in ctx.loaded("pjsip.conf").objects("endpoint")]


def _changed(ctx: SimContext, name: str, enable: bool) -> bool:
    """Add or remove one endpoint; True when that changed anything."""
    maintenance: set[str] = ctx.live.maintenance
    if enable == (name in maintenance):
        return False
    if enable:
        maintenance.add(name)
    else:
        maintenance.discard(name)
    return True


def _status_event(ctx: SimContext, name: str, enable: bool) -> Message:
    return ctx.unsolicited(
        "PJSIPMaintenanceStatus",
        [("Endpoint", name), ("Status", "enabled" if enable else "disabled")],
    )


@action("PJSIPSetMaintenance")
def set_maintenance(ctx: SimContext, session: Session, request: Message) -> Reply:
    name = get(request, "Endpoint") or ""
    state = get(request, "State") or ""
    if not name:
        return Reply([error(request, "Endpoint parameter missing")])
    if not state:
        return Reply([error(request, "State parameter missing")])
    if state.lower() not in ("on", "off"):
        return Reply([error(request, "State must be 'on' or 'off'")])
    enable = state.lower() == "on"
    word = "enabled" if enable else "disabled"
    if name.lower() == "all":
        count = sum(_changed(ctx, endpoint, enable) for endpoint in endpoint_names(ctx))
        broadcast = [_status_event(ctx, "all", enable)] if count else []
        return Reply(
            [
                response(
                    request, "Success", [("Message", f"Maintenance mode {word} for all endpoints")]
                )
            ],
            broadcast=broadcast,
        )
    if name not in endpoint_names(ctx):
        return Reply([error(request, f"Endpoint '{name}' not found")])
    broadcast = [_status_event(ctx, name, enable)] if _changed(ctx, name, enable) else []
    return Reply(
        [response(request, "Success", [("Message", f"Maintenance mode {word}")])],
        broadcast=broadcast,
    )


@action("PJSIPShowMaintenance")
def show_maintenance(ctx: SimContext, session: Session, request: Message) -> Reply:
    """Without Endpoint: those in maintenance; with it: exactly that one, enabled or disabled,
    whether or not such an endpoint exists (fact 35)."""
    name = get(request, "Endpoint")
    if name:
        status = "enabled" if name in ctx.live.maintenance else "disabled"
        items = [event(request, "PJSIPMaintenanceStatus", [("Endpoint", name), ("Status", status)])]
    else:
        items = [
            event(request, "PJSIPMaintenanceStatus", [("Endpoint", n), ("Status", "enabled")])
            for n in in_container_order(ctx.live.maintenance)
        ]
    return list_reply(
        request, "Maintenance status events follow", items, "PJSIPMaintenanceStatusComplete"
    )


@cli("pjsip show maintenance")
def cli_show_maintenance(ctx: SimContext, words: list[str]) -> list[str] | None:
    if not modules.is_loaded(ctx, "res_pjsip_maintenance.so"):
        return None
    if len(words) == 4:
        state = "is" if words[3] in ctx.live.maintenance else "is NOT"
        return [f"Endpoint '{words[3]}' {state} in maintenance mode"]
    if len(words) != 3:
        return None
    names = in_container_order(ctx.live.maintenance)
    lines = ["", f"  {'Endpoint':<40}  State", f"  {'-' * 40}  -----"]
    lines += [f"  {name:<40}  ON" for name in names]
    plural = "" if len(names) == 1 else "s"
    return [*lines, "", f"  {len(names)} endpoint{plural} in maintenance mode", ""]
