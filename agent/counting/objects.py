"""The objects that are never counted, each with its reason: voicemail boxes, trunk
registrations, queues, dialplan objects (phone trees, inbound routes, ring groups, ...),
parking lots and manager accounts."""

from __future__ import annotations

from agent.counting.model import Excluded
from drivers.models import Hint, Inventory

OBJECT_REASONS = {
    "ivr": "greeting menu / phone tree (IVR): not a user",
    "route": "inbound route: sends callers on, not a user",
    "ring_group": "ring group: rings other extensions, not a user",
    "queue": "call queue: not a user",
    "conference": "conference bridge (virtual room): not a user",
    "paging": "paging group: not a user",
    "intercom": "intercom code: reaches other extensions, not a user",
    "parking": "call parking: not a user",
    "voicemail": "voicemail-only extension: not a user",
    "feature": "feature code: not a user",
}


def _parking_slot(hint: Hint) -> bool:
    """A hint on a parking slot (`park:701@parkedcalls`)."""
    return any(d[:5].lower() == "park:" for d in hint.devices)


def excluded_objects(inv: Inventory) -> list[Excluded]:
    excluded: list[Excluded] = []
    shown = {box for e in inv.endpoints for box in e.mailboxes}
    for box in inv.mailboxes:
        address = box.address
        owner = "" if address in shown else ", no phone"
        excluded.append(
            Excluded(
                "mailbox", address, f"voicemail box ({box.name or 'unnamed'}{owner}): not a user"
            )
        )
    for reg in inv.registrations:
        excluded.append(
            Excluded(
                "registration", reg.name, f"trunk registration to {reg.server_uri} ({reg.status})"
            )
        )
    for queue in inv.queues:
        excluded.append(Excluded("queue", queue.name, OBJECT_REASONS["queue"]))
    for obj in inv.dialplan:
        name = f"{obj.extension}@{obj.context}"
        detail = f" ({obj.detail})" if obj.detail else ""
        excluded.append(
            Excluded(obj.kind, name, OBJECT_REASONS.get(obj.kind, "not a user") + detail)
        )
    slots = sorted(
        filter(_parking_slot, inv.hints),
        key=lambda h: (h.context, int(h.extension) if h.extension.isdigit() else 0, h.extension),
    )
    if slots:
        span = (
            f"{slots[0].extension}-{slots[-1].extension}" if len(slots) > 1 else slots[0].extension
        )
        excluded.append(
            Excluded("parking", f"{span}@{slots[0].context}", OBJECT_REASONS["parking"])
        )
    for user in inv.manager_users:
        excluded.append(Excluded("manager_account", user, "manager/API account: not a user"))
    return excluded
