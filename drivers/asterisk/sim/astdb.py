"""Asterisk's internal database (AstDB) over AMI: DBGet, DBGetTree, DBPut, DBDel, DBDelTree
(`main/db.c`). The registrar's contacts live there as `/registrar/contact/<aor>;@<hash>` with a
JSON value (fact 39); other keys are what DBPut stored.

Deleting a contact's key removes the binding at once (PJSIPShowContacts, PJSIPShowEndpoint),
silently: no event, and the endpoint's device state is not recomputed (fact 40). The phone
does not know and re-registers at its next refresh (fact 41, `registrar.refresh`).
"""

from __future__ import annotations

import json

from drivers.asterisk.sim.base import (
    Reply,
    Session,
    SimContext,
    action,
    error,
    list_reply,
    response,
)
from drivers.asterisk.sim.live import Contact
from drivers.asterisk.sim.pjsip_actions import aor_owners
from drivers.asterisk.wire import Message, get

CONTACT_PREFIX = "/registrar/contact/"


def _contact_value(ctx: SimContext, contact: Contact, endpoint: str) -> str:
    conf = ctx.loaded("pjsip.conf")
    aor = conf.find(contact.aor, "aor")
    address, port = contact.via
    value = {
        "via_addr": address,
        "qualify_timeout": f"{float((conf.value(aor, 'qualify_timeout') if aor else None) or 3):f}",
        "qualify_2xx_only": "false",
        "call_id": contact.call_id,
        "reg_server": ctx.system_name or "",
        "prune_on_boot": "no",
        "path": "",
        "endpoint": endpoint,
        "via_port": str(port),
        "authenticate_qualify": "no",
        "uri": contact.uri,
        "qualify_frequency": (conf.value(aor, "qualify_frequency") if aor else None) or "0",
        "user_agent": contact.user_agent,
        "expiration_time": str(contact.expires_at),
        "outbound_proxy": "",
    }
    return json.dumps(value, separators=(",", ":"))


def entries(ctx: SimContext) -> dict[str, str]:
    """Every AstDB key (with its leading slash) and value."""
    owners = aor_owners(ctx.loaded("pjsip.conf"))
    found = dict(ctx.live.astdb)
    for contact in ctx.live.contacts:
        key = CONTACT_PREFIX + contact.object_name
        found[key] = _contact_value(ctx, contact, owners.get(contact.aor, ""))
    return dict(sorted(found.items()))


def _key(family: str, key: str) -> str:
    return f"/{family}/{key}"


def _missing(request: Message, *, key: bool = True, dot: str = ".") -> Message | None:
    """main/db.c's answer to a request without Family (or Key); its messages differ in a dot."""
    if not get(request, "Family"):
        return error(request, f"No family specified{dot}")
    if key and not get(request, "Key"):
        return error(request, f"No key specified{dot}")
    return None


def _delete(ctx: SimContext, full_key: str) -> bool:
    if full_key.startswith(CONTACT_PREFIX):
        name = full_key[len(CONTACT_PREFIX) :]
        for contact in ctx.live.contacts:
            if contact.object_name == name:
                ctx.live.forget_binding(contact)
                return True
        return False
    return ctx.live.astdb.pop(full_key, None) is not None


@action("DBGet")
def db_get(ctx: SimContext, session: Session, request: Message) -> Reply:
    family, key = get(request, "Family") or "", get(request, "Key") or ""
    if (refused := _missing(request)) is not None:
        return Reply([refused])
    value = entries(ctx).get(_key(family, key))
    if value is None:
        return Reply([error(request, "Database entry not found")])
    item: Message = [("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value)]
    if get(request, "ActionID") is not None:
        item.append(("ActionID", get(request, "ActionID") or ""))
    return list_reply(request, "Result will follow", [item], "DBGetComplete")


@action("DBGetTree")
def db_get_tree(ctx: SimContext, session: Session, request: Message) -> Reply:
    family, key = get(request, "Family") or "", get(request, "Key") or ""
    prefix = f"/{family}" + (f"/{key}" if family and key else "") if family else ""
    items = []
    for full_key, value in entries(ctx).items():
        if prefix and not (full_key + "/").startswith(prefix + "/"):
            continue
        item: Message = [("Event", "DBGetTreeResponse"), ("Key", full_key), ("Val", value)]
        if get(request, "ActionID") is not None:
            item.append(("ActionID", get(request, "ActionID") or ""))  # last (fact 39)
        items.append(item)
    return list_reply(request, "Result will follow", items, "DBGetTreeComplete")


@action("DBPut")
def db_put(ctx: SimContext, session: Session, request: Message) -> Reply:
    family, key = get(request, "Family") or "", get(request, "Key") or ""
    if (refused := _missing(request, dot="")) is not None:
        return Reply([refused])
    ctx.live.astdb[_key(family, key)] = get(request, "Val") or ""
    return Reply([response(request, "Success", [("Message", "Updated database successfully")])])


@action("DBDel")
def db_del(ctx: SimContext, session: Session, request: Message) -> Reply:
    family, key = get(request, "Family") or "", get(request, "Key") or ""
    if (refused := _missing(request)) is not None:
        return Reply([refused])
    if not _delete(ctx, _key(family, key)):
        return Reply([error(request, "Database entry could not be deleted")])
    return Reply([response(request, "Success", [("Message", "Key deleted successfully")])])


@action("DBDelTree")
def db_del_tree(ctx: SimContext, session: Session, request: Message) -> Reply:
    family, key = get(request, "Family") or "", get(request, "Key") or ""
    if (refused := _missing(request, key=False)) is not None:
        return Reply([refused])
    prefix = _key(family, key) if key else f"/{family}"
    doomed = [k for k in entries(ctx) if (k + "/").startswith(prefix + "/")]
    for full_key in doomed:
        _delete(ctx, full_key)
    if not doomed:
        return Reply([error(request, "Database entry not found")])
    return Reply([response(request, "Success", [("Message", "Key tree deleted successfully")])])
