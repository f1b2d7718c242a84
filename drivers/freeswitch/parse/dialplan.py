"""A dialplan context (``xml_locate dialplan context name CTX``) -> the virtual objects one can
dial in it: IVRs, ring groups, queues, conferences, parking, paging/intercom, voicemail-only
numbers and feature codes. Phone extensions (a bridge to one user) are not objects. Pure.

Which application makes an extension which object is vendor knowledge, kept as data.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from drivers.errors import ParseError
from drivers.freeswitch.parse.core import checked
from drivers.models import DialplanObject

# Dialplan applications that make an extension a virtual object, by kind.
APP_KINDS = {
    "ivr": "ivr",
    "play_and_get_digits": "ivr",
    "conference": "conference",
    "callcenter": "queue",
    "fifo": "queue",
    "park": "parking",
    "valet_park": "parking",
}
AUTO_ANSWER = ("sip_auto_answer=true", "auto answer", "auto-answer", "intercom=true")
RING_TARGETS = ("user/", "sofia/", "loopback/", "group/", "${group_call(", "${sofia_contact(")

_LITERAL = re.compile(r"^\^?\(?((?:\\.|[0-9A-Za-z*#+_.@-])+)\)?\$?$")


def _number(expression: str) -> str | None:
    """The one number an expression matches exactly (``^3000$``, ``^\\*98$``), else None."""
    found = _LITERAL.match(expression.strip())
    if found is None:
        return None
    literal = found.group(1)
    if re.search(r"(?<!\\)[.*+]", literal):  # a regex operator, not a literal
        return None
    return re.sub(r"\\(.)", r"\1", literal)


def _targets(data: str) -> list[str]:
    parts = re.split(r",|\||:_:", re.sub(r"^\{[^}]*\}", "", data))
    return [p.strip() for p in parts if p.strip().startswith(RING_TARGETS)]


def parse_context(text: str, context: str) -> tuple[DialplanObject, ...]:
    """The objects of one context; an answer of "can't find anything" (no such context) is
    an empty tuple."""
    body = checked("xml_locate dialplan", text).strip()
    if not body or body.startswith("can't find"):
        return ()
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ParseError(f"dialplan context {context}: not XML: {exc}") from exc
    objects: list[DialplanObject] = []
    for extension in root.iter("extension"):
        found = _classify(extension)
        if found is None:
            continue
        kind, detail, number = found
        objects.append(
            DialplanObject(context, number or extension.get("name") or "?", kind, detail)
        )
    return tuple(sorted(set(objects), key=lambda o: (o.context, o.extension, o.kind)))


def _classify(extension: ET.Element) -> tuple[str, str, str | None] | None:
    number = None
    actions: list[tuple[str, str]] = []
    for condition in extension.iter("condition"):
        if condition.get("field") == "destination_number" and number is None:
            number = _number(condition.get("expression", ""))
        for action in condition.findall("action"):
            actions.append((action.get("application", "").lower(), action.get("data", "")))
    apps = [app for app, _ in actions]
    auto_answer = any(
        app in ("set", "export") and any(a in data.lower() for a in AUTO_ANSWER)
        for app, data in actions
    )
    for app, data in actions:
        if app in APP_KINDS:
            return APP_KINDS[app], data.split()[0] if data.split() else "", number
    for app, data in actions:
        if app != "bridge":
            continue
        targets = _targets(data)
        if auto_answer:
            return ("paging" if len(targets) > 1 else "intercom"), data[:80], number
        if len(targets) > 1 or "group/" in data or "${group_call(" in data:
            return "ring_group", data[:80], number
    if "voicemail" in apps and number is not None:
        data = next(d for a, d in actions if a == "voicemail")
        if data.split()[:1] == ["check"]:
            return "feature", "voicemail check", number
        if "bridge" not in apps:
            return "voicemail", data, number
    return None
