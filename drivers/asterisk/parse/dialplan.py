"""ShowDialPlan answers -> hints, the virtual objects reachable by dialling (phone trees,
inbound routes into them, queues, conferences, paging, parking, ring groups, intercom,
voicemail-only extensions, feature codes) and the chan_iax2/chan_sip peers the dialplan
dials. Pure functions over `wire.Message` lists."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drivers.asterisk import wire
from drivers.models import DialplanObject, Hint

# Dialplan applications that make an extension a virtual object, by kind.
APP_KINDS = {
    "queue": "queue",
    "confbridge": "conference",
    "meetme": "conference",
    "page": "paging",
    "park": "parking",
    "voicemailmain": "feature",
    "echo": "feature",
    "directory": "feature",
}
IVR_APPS = {"background", "waitexten", "read"}
# Where FreePBX sends calls from trunks; an extension there jumping into a phone tree is an
# inbound route (a trunk endpoint's own `context` is added to these by the caller).
INBOUND_CONTEXTS = frozenset(
    {"from-trunk", "from-pstn", "from-did-direct", "ext-did", "ext-did-0001", "ext-did-0002"}
)
# chan_iax2 / chan_sip dial strings: `IAX2/peer` (a device), `IAX2/peer/number` and
# `SIP/number@peer` (a number dialled through the peer: an outbound route).
_AS_DEVICE = re.compile(r"\b(IAX2|SIP)/([^&,()\s/@$]+)(?=[&,()\s]|$)", re.I)
_THROUGH = re.compile(r"\b(IAX2|SIP)/([^&,()\s/@$]+)/[^&,()\s]+", re.I)
_AT_PEER = re.compile(r"\b(IAX2|SIP)/[^&,()\s@/]+@([^&,()\s/$]+)", re.I)
_PEER = re.compile(r"\b(IAX2|SIP)/", re.I)  # any of the three above can match


def hint_devices(value: str) -> tuple[str, ...]:
    """`PJSIP/301&Custom:DND301,CustomPresence:301` -> (`PJSIP/301`, `Custom:DND301`): the
    device part is split on `&`; what follows the first `,` is the presence provider."""
    devices = value.partition(",")[0]
    return tuple(d.strip() for d in devices.split("&") if d.strip())


@dataclass
class PeerDials:
    """How the dialplan reaches one chan_iax2/chan_sip peer."""

    extensions: set[str] = field(default_factory=set)  # dial it as a device, or show it in a hint
    with_number: bool = False  # dial numbers through it (an outbound route)


# Phone-tree contexts; (context, extension, kind, detail, first application) of the others.
_Classified = tuple[set[str], list[tuple[str, str, str | None, str, str]]]


class Dialplan:
    """ShowDialPlan read as it streams in (`add` each message): its hints (the `hint`
    priorities), each extension's steps (for the virtual objects), and how chan_iax2/chan_sip
    peers are dialled (every application's data: Dial, and the arguments of Gosub/Macro that
    dial for their caller; and every hint). Only these are kept, never the events. The sorted
    hints and the classified extensions are made when first asked: after the last event."""

    def __init__(self) -> None:
        self._hints: list[Hint] = []
        self._steps: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        self._dials: dict[tuple[str, str], PeerDials] = defaultdict(PeerDials)
        self._sorted_hints: tuple[Hint, ...] | None = None
        self._classified: _Classified | None = None

    def add(self, event: wire.Fields) -> None:
        """One event's fields (`wire.fields`)."""
        if event.field("Event") != "ListDialplan":
            return
        exten = event.field("Extension")
        if exten is None:
            return
        context = sys.intern(event.field("Context") or "")  # one object per context
        priority = event.field("Priority") or ""
        app = (event.field("Application") or "").strip()
        data = event.field("AppData") or ""
        text = data if data else app
        if _PEER.search(text):
            self._peer_dials(exten, text)
        if priority == "hint":
            self._hints.append(Hint(exten, context, hint_devices(app)))
            return
        lowered = app.lower()
        if lowered != "parkedcall":  # parking slots: summarised from their hints, one per lot
            self._steps[(context, exten)].append((sys.intern(lowered), data))

    def read(self, messages: Iterable[wire.Message]) -> Dialplan:
        """A whole recorded answer (tests, transcripts)."""
        for message in messages:
            self.add(wire.fields(message))
        return self

    def _peer_dials(self, exten: str, text: str) -> None:
        for match in _AS_DEVICE.finditer(text):
            self._dials[(match.group(1).upper(), match.group(2))].extensions.add(exten)
        for pattern in (_THROUGH, _AT_PEER):
            for match in pattern.finditer(text):
                self._dials[(match.group(1).upper(), match.group(2))].with_number = True

    def _classify_all(self) -> _Classified:
        """The contexts that are phone trees, and the other extensions that can be objects:
        their kind as their steps alone say (None: a feature code's, perhaps), detail and
        first application; made once."""
        if self._classified is None:
            steps = self._steps
            ivr_contexts = {
                context
                for (context, _), apps in steps.items()
                if any(a in IVR_APPS for a, _ in apps)
            }
            extensions = []
            for (context, exten), apps in steps.items():
                if context in ivr_contexts:
                    continue
                kind, detail = _classify(apps, exten, ivr_contexts)
                if kind is not None or exten.lstrip("_").startswith("*"):  # (else: a phone's)
                    extensions.append((context, exten, kind, detail, apps[0][0] if apps else ""))
            self._classified = ivr_contexts, extensions
        return self._classified

    def hints(self) -> tuple[Hint, ...]:
        if self._sorted_hints is None:
            self._sorted_hints = tuple(sorted(self._hints, key=lambda h: (h.context, h.extension)))
        return self._sorted_hints

    def prepare(self) -> Dialplan:
        """Work out what does not depend on the rest of the inventory (the hints in order,
        each extension's kind), once the whole answer is in: the inventory has it done while
        the PBX is still busy with the answers after this one."""
        self.hints()
        self._classify_all()
        return self

    def peer_dials(self) -> dict[tuple[str, str], PeerDials]:
        """(technology, peer name) -> how the dialplan dials it."""
        return dict(self._dials)

    def objects(self, inbound_contexts: Iterable[str] = ()) -> tuple[DialplanObject, ...]:
        """Virtual objects: IVRs (contexts that play a menu and wait for digits, and the
        extensions that dial into them), inbound routes into IVRs (extensions of an inbound
        context, or patterns, that jump into one), queues, conferences, paging, parking, ring
        groups (Dial to several devices), intercom (Dial with auto-answer), voicemail-only
        extensions and feature codes (`*97`). Phone extensions are not reported."""
        inbound = INBOUND_CONTEXTS | set(inbound_contexts)
        ivr_contexts, extensions = self._classify_all()
        objects: list[DialplanObject] = [
            DialplanObject(c, "s", "ivr", "phone tree") for c in ivr_contexts
        ]
        for context, exten, kind, detail, first_app in extensions:
            if kind == "ivr" and (context in inbound or exten.startswith("_")):
                kind, detail = "route", f"into the phone tree {detail}"
            if exten.lstrip("_").startswith("*") and kind not in ("intercom", "paging", "parking"):
                kind, detail = "feature", detail or first_app
            if kind is not None:
                objects.append(DialplanObject(context, exten, kind, detail))
        return tuple(sorted(set(objects), key=lambda o: (o.context, o.extension, o.kind)))


def parse_hints(messages: Sequence[wire.Message]) -> tuple[Hint, ...]:
    """Hints from ShowDialPlan (the `hint` priorities) or ExtensionStateList events."""
    hints = []
    for m in messages:
        event = wire.get(m, "Event")
        if event == "ListDialplan" and wire.get(m, "Priority") == "hint":
            exten, value = wire.get(m, "Extension"), wire.get(m, "Application") or ""
        elif event == "ExtensionStatus":
            exten, value = wire.get(m, "Exten"), wire.get(m, "Hint") or ""
        else:
            continue
        if exten is None:
            continue
        hints.append(Hint(exten, wire.get(m, "Context") or "", hint_devices(value)))
    return tuple(sorted(hints, key=lambda h: (h.context, h.extension)))


def parse_dialplan(
    messages: Sequence[wire.Message], inbound_contexts: Iterable[str] = ()
) -> tuple[DialplanObject, ...]:
    """Virtual objects from ShowDialPlan (`Dialplan.objects`)."""
    return Dialplan().read(messages).objects(inbound_contexts)


def _classify(
    apps: list[tuple[str, str]], exten: str, ivr_contexts: set[str]
) -> tuple[str | None, str]:
    names = [a for a, _ in apps]
    for app, data in apps:
        if app in APP_KINDS:
            return APP_KINDS[app], data.split(",")[0]
        if app in ("goto", "gosub") and data.split(",")[0] in ivr_contexts:
            return "ivr", data.split(",")[0]
    dials = [data for app, data in apps if app == "dial"]
    for data in dials:
        target, _, options = data.partition(",")
        if "${ARG" in target:  # a subroutine dialling what its caller passed: not an object
            continue
        if "autoanswer" in options.lower() or exten.startswith(("*8", "_*8")):
            return "intercom", target
        if "&" in target or (target.startswith("${") and "EXTEN" not in target):
            return "ring_group", target
    if "voicemail" in names and not dials and "gosub" not in names:
        data = next(d for a, d in apps if a == "voicemail")
        return "voicemail", data.split(",")[0]
    return None, ""


def parse_peer_dials(messages: Sequence[wire.Message]) -> dict[tuple[str, str], PeerDials]:
    """(technology, peer name) -> how the dialplan dials it (`Dialplan.peer_dials`)."""
    return Dialplan().read(messages).peer_dials()
