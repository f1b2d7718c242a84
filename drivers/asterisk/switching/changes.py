"""Making, checking and undoing switches on a live Asterisk, each proven on the live objects.

A change of the agent's blocks in one file is made in this order, and put back as it was at
the first step that fails (so the PBX never keeps half a change):
1. the file is written (atomically) with the blocks added or removed;
2. GetConfig of the file Asterisk loads reads it back: it must parse (a `(+)` block whose
   section does not exist makes the whole file unreadable, fact 22) and differ from before
   only by the agent's options at the end of the targeted sections;
3. the module is reloaded (never `manager` while a user has setvar, fact 19);
4. each target is checked on the live object: `Acl` of PJSIPShowEndpoint, the rules of
   `manager show user`. A reload's answer proves nothing (fact 31).
Maintenance is proven with PJSIPShowMaintenance, a cut with DBGet (the key is gone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.asterisk.ami import AmiClient
from drivers.asterisk.switching import blocks, live
from drivers.asterisk.switching.compare import category, ours, unexpected
from drivers.asterisk.switching.layout import RELOAD_MODULE
from drivers.config_files import ConfigFiles
from drivers.errors import CommandError, UnsafeChange
from drivers.models import Switch, SwitchKind, SwitchOutcome, SwitchState

# The file Asterisk loads for each file the agent may write its blocks to.
TOP_FILE = {
    "pjsip.endpoint_custom_post.conf": "pjsip.conf",
    "manager_custom.conf": "manager.conf",
    "pjsip.conf": "pjsip.conf",
    "manager.conf": "manager.conf",
}
SETVAR_CRASH = (
    "`manager reload` crashes Asterisk 22 while a manager user has setvar (fact 19): "
    "the agent does not reload the manager"
)


@dataclass
class Changer:
    ami: AmiClient
    files: ConfigFiles | None

    # -- priors ------------------------------------------------------------------------------

    async def priors(self, switches: Sequence[Switch]) -> list[str]:
        maintenance: set[str] | None = None
        texts: dict[str, str] = {}
        result = []
        for switch in switches:
            if switch.kind is SwitchKind.RUNTIME:
                if maintenance is None:
                    maintenance = await live.maintenance(self.ami)
                name = switch.target.removeprefix("endpoint ")
                result.append("enabled" if name in maintenance else "disabled")
            elif switch.kind is SwitchKind.CONFIG:
                if switch.place not in texts:
                    texts[switch.place] = await self._read(switch.place)
                result.append("present" if switch.value in texts[switch.place] else "")
            else:
                answer = await self._contact_value(switch.value)
                result.append(answer)
        return result

    async def _contact_value(self, key: str) -> str:
        try:
            answer = await self.ami.list_action("DBGet", Family=live.CONTACT_FAMILY, Key=key)
        except CommandError:
            return ""
        return next((v for m in answer for k, v in m if k == "Val"), "")

    # -- applying ----------------------------------------------------------------------------

    async def apply(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        outcomes: dict[Switch, SwitchOutcome] = {}
        runtime = [s for s in switches if s.kind is SwitchKind.RUNTIME]
        if runtime:
            outcomes |= await self._maintenance(runtime, on=True)
        for place, group in _by_place(s for s in switches if s.kind is SwitchKind.CONFIG):
            outcomes |= await self._change(place, add=group)
        for switch in (s for s in switches if s.kind is SwitchKind.CUT):
            outcomes[switch] = await self._cut(switch)
        return [outcomes[s] for s in switches]

    async def _maintenance(
        self, switches: list[Switch], *, on: bool
    ) -> dict[Switch, SwitchOutcome]:
        failed: dict[Switch, str] = {}
        for switch in switches:
            try:
                await live.set_maintenance(self.ami, switch.target.removeprefix("endpoint "), on)
            except CommandError as exc:
                failed[switch] = exc.reason
        now = await live.maintenance(self.ami)
        result = {}
        for switch in switches:
            name = switch.target.removeprefix("endpoint ")
            if switch in failed:
                result[switch] = SwitchOutcome(switch, SwitchState.FAILED, failed[switch])
            elif (name in now) == on:
                word = "in maintenance" if on else "out of maintenance"
                result[switch] = SwitchOutcome(
                    switch,
                    SwitchState.IN_EFFECT if on else SwitchState.ABSENT,
                    f"PJSIPShowMaintenance: {name} {word}",
                )
            else:
                result[switch] = SwitchOutcome(
                    switch, SwitchState.FAILED, f"PJSIPShowMaintenance does not show {name} so"
                )
        return result

    async def _cut(self, switch: Switch) -> SwitchOutcome:
        try:
            await live.delete_contact(self.ami, switch.value)
        except CommandError as exc:
            if await live.contact_exists(self.ami, switch.value):
                return SwitchOutcome(switch, SwitchState.FAILED, exc.reason)
        if await live.contact_exists(self.ami, switch.value):
            return SwitchOutcome(switch, SwitchState.FAILED, "the registrar still has it")
        return SwitchOutcome(switch, SwitchState.IN_EFFECT, "removed from the registrar")

    # -- one file of agent blocks --------------------------------------------------------------

    async def _read(self, place: str) -> str:
        if self.files is None:
            raise UnsafeChange("no access to the PBX's config files")
        return await asyncio.to_thread(self.files.read_text, place)

    async def _write(self, place: str, text: str) -> None:
        assert self.files is not None
        await asyncio.to_thread(self.files.write_text, place, text)

    async def _change(
        self, place: str, *, add: Sequence[Switch] = (), remove: Sequence[Switch] = ()
    ) -> dict[Switch, SwitchOutcome]:
        """Add and remove the blocks of one file; every outcome proven."""
        top = TOP_FILE.get(place)
        everything = [*add, *remove]
        if top is None:
            return _all(everything, SwitchState.FAILED, f"{place}: the agent does not write here")
        try:
            original = await self._read(place)
        except UnsafeChange as exc:
            return _all(everything, SwitchState.FAILED, str(exc))
        text = original
        result: dict[Switch, SwitchOutcome] = {}
        for switch in add:
            text = blocks.add(text, switch.value)
        removing: list[Switch] = []
        for switch in remove:
            text, found = blocks.remove(text, switch.value)
            if found == "removed":
                removing.append(switch)
            elif found == "edited":
                result[switch] = SwitchOutcome(
                    switch,
                    SwitchState.CONFLICT,
                    f"the agent's block in {place} was edited since: left as it is",
                )
            else:
                result[switch] = SwitchOutcome(switch, SwitchState.ABSENT, f"not in {place}")
        module = RELOAD_MODULE[top]
        before_live = await self._live(add, removing)
        if text != original:
            if module == "manager" and await self._has_setvar():
                return result | _all([*add, *removing], SwitchState.FAILED, SETVAR_CRASH)
            try:
                problem = await self._write_checked(place, top, original, text, add, removing)
            except UnsafeChange as exc:  # cannot write (read-only, permissions): unchanged
                return result | _all([*add, *removing], SwitchState.FAILED, str(exc))
            if problem is not None and add and len(add) > 1:
                return result | await self._one_by_one(place, add, removing)
            if problem is not None:
                return result | _all([*add, *removing], SwitchState.FAILED, problem)
            await live.reload(self.ami, module)
        proven = await self._prove(add, removing, before_live)
        unproven = [s for s in [*add, *removing] if proven[s].state is SwitchState.FAILED]
        if unproven and text == original and not (module == "manager" and await self._has_setvar()):
            # Already in the file but not live (e.g. a crash between writing and reloading).
            await live.reload(self.ami, module)
            proven = await self._prove(add, removing, before_live)
        elif unproven:
            await self._write(place, original)
            await live.reload(self.ami, module)
        return result | proven

    async def _one_by_one(
        self, place: str, add: Sequence[Switch], removing: Sequence[Switch]
    ) -> dict[Switch, SwitchOutcome]:
        """After a batch that Asterisk could not read: each block on its own, so one bad target
        does not stop the others."""
        result: dict[Switch, SwitchOutcome] = {}
        for switch in add:
            result |= await self._change(place, add=[switch])
        if removing:
            result |= await self._change(place, remove=removing)
        return result

    async def _has_setvar(self) -> bool:
        manager = await live.effective(self.ami, "manager.conf")
        return any(k == "setvar" for _, _, opts in manager for k, _ in opts)

    async def _write_checked(
        self,
        place: str,
        top: str,
        original: str,
        text: str,
        add: Sequence[Switch],
        removing: Sequence[Switch],
    ) -> str | None:
        """Write `text`; None when Asterisk reads `top` as expected, else the reason (and the
        original bytes are back)."""
        before = await live.effective(self.ami, top)
        await self._write(place, text)
        try:
            after = await live.effective(self.ami, top)
        except CommandError as exc:
            await self._write(place, original)
            return (
                f"Asterisk cannot read {top} with the agent's block in {place} ({exc.reason}): "
                "put back; is every section it extends defined before that file is included?"
            )
        problem = unexpected(before, after, add, removing)
        if problem is not None:
            await self._write(place, original)
            return f"{place}: put back, {problem}"
        return None

    async def _live(
        self, add: Sequence[Switch], removing: Sequence[Switch]
    ) -> dict[Switch, list[tuple[str, str]] | str | None]:
        """What the live objects show before the change (manager rules, endpoint Acl)."""
        found: dict[Switch, list[tuple[str, str]] | str | None] = {}
        for switch in [*add, *removing]:
            name, kind = category(switch)
            if kind == "":
                found[switch] = await live.manager_user_rules(self.ami, name)
            else:
                found[switch] = await live.endpoint_acl(self.ami, name)
        return found

    async def _prove(
        self,
        add: Sequence[Switch],
        removing: Sequence[Switch],
        before: dict[Switch, list[tuple[str, str]] | str | None],
    ) -> dict[Switch, SwitchOutcome]:
        result = {}
        for switch in add:
            result[switch] = await self.in_effect(switch)
            if result[switch].state is SwitchState.ABSENT:
                result[switch] = SwitchOutcome(switch, SwitchState.FAILED, result[switch].detail)
        for switch in removing:
            name, kind = category(switch)
            if kind == "":
                rules = await live.manager_user_rules(self.ami, name)
                wanted = ours(switch)
                was = before[switch]
                gone = isinstance(was, list) and rules == was[: len(was) - len(wanted)]
                result[switch] = SwitchOutcome(
                    switch,
                    SwitchState.ABSENT if gone else SwitchState.FAILED,
                    "manager show user: the agent's rules are gone"
                    if gone
                    else f"manager show user {name} still shows other rules than expected",
                )
            else:
                result[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, f"removed from {switch.place}, reloaded"
                )
        return result

    async def in_effect(self, switch: Switch) -> SwitchOutcome:
        """A CONFIG switch on the live object: its block in the file and in effect."""
        name, kind = category(switch)
        if kind == "":
            rules = await live.manager_user_rules(self.ami, name)
            wanted = ours(switch)
            if rules is None:
                return SwitchOutcome(switch, SwitchState.ABSENT, f"no manager user {name} now")
            if rules[-len(wanted) :] == wanted:
                return SwitchOutcome(
                    switch, SwitchState.IN_EFFECT, f"manager show user {name}: denied everywhere"
                )
            return SwitchOutcome(
                switch,
                SwitchState.ABSENT,
                f"manager show user {name}: the agent's rules are not last",
            )
        acl = await live.endpoint_acl(self.ami, name)
        if acl is None:
            return SwitchOutcome(switch, SwitchState.ABSENT, f"no endpoint {name} now")
        if "deny" not in acl:
            return SwitchOutcome(switch, SwitchState.ABSENT, f"PJSIPShowEndpoint {name}: no ACL")
        return SwitchOutcome(switch, SwitchState.IN_EFFECT, f"PJSIPShowEndpoint {name}: Acl {acl}")

    # -- checking ------------------------------------------------------------------------------

    async def check(self, switches: Sequence[Switch], *, thorough: bool) -> list[SwitchOutcome]:
        outcomes: dict[Switch, SwitchOutcome] = {}
        runtime = [s for s in switches if s.kind is SwitchKind.RUNTIME]
        if runtime:
            now = await live.maintenance(self.ami)
            for switch in runtime:
                name = switch.target.removeprefix("endpoint ")
                outcomes[switch] = SwitchOutcome(
                    switch,
                    SwitchState.IN_EFFECT if name in now else SwitchState.ABSENT,
                    f"PJSIPShowMaintenance: {name} "
                    + ("in maintenance" if name in now else "NOT in maintenance (restarted?)"),
                )
        texts: dict[str, str] = {}
        for switch in (s for s in switches if s.kind is SwitchKind.CONFIG):
            if not thorough:
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.IN_EFFECT, "no reload or restart since it was proven"
                )
                continue
            if switch.place not in texts:
                texts[switch.place] = await self._read(switch.place)
            if switch.value not in texts[switch.place]:
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, f"the agent's block is no longer in {switch.place}"
                )
            else:
                outcomes[switch] = await self.in_effect(switch)
        for switch in (s for s in switches if s.kind is SwitchKind.CUT):
            outcomes[switch] = SwitchOutcome(switch, SwitchState.IN_EFFECT, "one-shot")
        return [outcomes[s] for s in switches]

    # -- undoing ---------------------------------------------------------------------------

    async def undo(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]:
        outcomes: dict[Switch, SwitchOutcome] = {}
        runtime = []
        for switch, prior in applied:
            if switch.kind is SwitchKind.CUT:
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, "nothing to undo: the device registers again"
                )
            elif prior in ("enabled", "present"):
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, "it was so before the lapse: left as it was"
                )
            elif switch.kind is SwitchKind.RUNTIME:
                runtime.append(switch)
        if runtime:
            outcomes |= await self._maintenance(runtime, on=False)
        config = [s for s, p in applied if s.kind is SwitchKind.CONFIG and s not in outcomes]
        for place, group in _by_place(config):
            outcomes |= await self._change(place, remove=group)
        return [outcomes[s] for s, _ in applied]


def _by_place(switches: Iterable[Switch]) -> list[tuple[str, list[Switch]]]:
    grouped: dict[str, list[Switch]] = {}
    for switch in switches:
        grouped.setdefault(switch.place, []).append(switch)
    return list(grouped.items())


def _all(
    switches: Sequence[Switch], state: SwitchState, detail: str
) -> dict[Switch, SwitchOutcome]:
    return {s: SwitchOutcome(s, state, detail) for s in switches}
