"""Making, checking and undoing switches on a live FreeSWITCH, each proven on what it serves.

A change of the agent's text is made in this order, and put back at the first step that
fails, so FreeSWITCH never keeps half a change:
1. the files are written (atomically): lines inserted at the offsets found by reading the
   configuration afresh, the agent's own files created;
2. ``reloadxml`` must answer ``[Success]``: a failed reload still starts with ``+OK`` and
   keeps the previous tree (facts 13, 22, the "failed-reloadxml trap"), so anything else
   puts every file back as it was (nothing to reload: FreeSWITCH never loaded them);
3. each switch is proven on the directory FreeSWITCH serves now: ``user_data U@D param
   auth-acl`` shows the agent's list for a stopped user and ``acl`` passes no address of its
   devices; every user of a domain shows the agent's ``auth-acl`` (or one of the customer's
   own) and ``acl`` says the site's networks pass and the off-site devices' addresses do
   not. A switch not proven is taken out again (files and reload).

A cut (``flush_inbound_reg CALL_ID``) is made only when the device's user would be refused
now (forbidden, or its ``auth-acl`` refuses the device's address): otherwise it would come
back at once. It is proven by listing the registrations again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drivers.config_files import ConfigAccessError, ConfigFiles
from drivers.errors import DriverError, UnsafeChange
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching import lines, live
from drivers.freeswitch.switching.cuts import device_json, make_cuts
from drivers.freeswitch.switching.lines import domains_of, own_file, user_of
from drivers.freeswitch.switching.proofs import prove
from drivers.freeswitch.switching.source import Outline, SourceError
from drivers.models import Switch, SwitchKind, SwitchOutcome, SwitchState


@dataclass
class _Batch:
    """The files a group of switches changes: their texts before and now."""

    before: dict[str, str | None] = field(default_factory=dict)  # None: did not exist
    now: dict[str, str | None] = field(default_factory=dict)

    def changed(self) -> list[str]:
        return [name for name in self.now if self.now[name] != self.before[name]]


@dataclass
class Changer:
    esl: EslClient
    files: ConfigFiles | None
    settings: EslSettings
    conf_dir: str

    # -- files -------------------------------------------------------------------------------

    def _files(self) -> ConfigFiles:
        if self.files is None:
            raise UnsafeChange("no access to FreeSWITCH's config files")
        return self.files

    async def _read(self, name: str) -> str | None:
        files = self._files()
        try:
            return await asyncio.to_thread(files.read_text, name)
        except ConfigAccessError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    async def _write(self, batch: _Batch, which: str) -> None:
        """Write every changed file of `batch` as it is in `which` (``now`` or ``before``)."""
        files = self._files()
        texts = batch.now if which == "now" else batch.before
        for name in batch.changed():
            text = texts[name]
            if text is None:
                await asyncio.to_thread(files.remove, name)
            elif (batch.before if which == "now" else batch.now)[name] is None:
                await asyncio.to_thread(files.create_text, name, text)
            else:
                await asyncio.to_thread(files.write_text, name, text)

    async def _outline(self) -> Outline:
        return await live.outline(self.esl, self._files(), self.conf_dir)

    # -- priors ------------------------------------------------------------------------------

    async def priors(self, switches: Sequence[Switch]) -> list[str]:
        texts: dict[str, str | None] = {}
        devices: dict[str, live.Device] | None = None
        result = []
        for switch in switches:
            if switch.kind is SwitchKind.CUT:
                if devices is None:
                    found = await live.devices(self.esl, self.settings)
                    devices = {d.row.call_id: d for d in found}
                device = devices.get(switch.value)
                result.append(device_json(device) if device is not None else "")
                continue
            if switch.place not in texts:
                texts[switch.place] = await self._read(switch.place)
            text = texts[switch.place]
            present = text is not None and (
                text == switch.value if own_file(switch) else switch.value in text
            )
            result.append("present" if present else "")
        return result

    # -- applying ----------------------------------------------------------------------------

    async def apply(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        outcomes: dict[Switch, SwitchOutcome] = {}
        config = [s for s in switches if s.kind is SwitchKind.CONFIG]
        if config:
            outcomes |= await self._add(config)
        cuts = [s for s in switches if s.kind is SwitchKind.CUT]
        if cuts:
            outcomes |= await make_cuts(self.esl, self.settings, cuts)
        return [outcomes[s] for s in switches]

    async def _add(self, switches: Sequence[Switch]) -> dict[Switch, SwitchOutcome]:
        result: dict[Switch, SwitchOutcome] = {}
        try:
            outline = await self._outline()
            batch = await self._batch(switches)
        except (SourceError, ConfigAccessError, UnsafeChange) as exc:
            return _all(switches, SwitchState.FAILED, f"cannot read the config files: {exc}")
        placed: list[Switch] = []
        insertions: dict[str, list[lines.Insertion]] = {}
        for switch in switches:
            problem = self._place(switch, outline, batch, insertions)
            if problem is None:
                placed.append(switch)
            else:
                result[switch] = SwitchOutcome(switch, SwitchState.FAILED, problem)
        for place, found in insertions.items():
            text = batch.now[place]
            assert text is not None
            for insertion in sorted(found, key=lambda i: i.offset, reverse=True):
                text = lines.insert(text, insertion)  # from the end: earlier offsets hold
            batch.now[place] = text
        if not placed:
            return result
        wrote = bool(batch.changed())
        if wrote:
            try:
                await self._write(batch, "now")
            except DriverError as exc:
                await self._put_back(batch)
                return result | _all(placed, SwitchState.FAILED, f"cannot write: {exc}")
            loaded, answer = await live.reloadxml(self.esl)
            if not loaded:
                await self._put_back(batch)
                return result | _all(placed, SwitchState.FAILED, _reload_refused(answer))
        proofs = await prove(self.esl, self.settings, placed, thorough=True)
        unproven = [s for s in placed if proofs[s].state is not SwitchState.IN_EFFECT]
        if unproven and not wrote:
            # Already in the files but not loaded (a crash between writing and reloading).
            loaded, answer = await live.reloadxml(self.esl)
            if not loaded:
                await self._take_out(unproven, reload=False)  # never loaded: files only
                return result | proofs | _all(unproven, SwitchState.FAILED, _reload_refused(answer))
            proofs = await prove(self.esl, self.settings, placed, thorough=True)
            unproven = [s for s in placed if proofs[s].state is not SwitchState.IN_EFFECT]
        if unproven:
            await self._take_out(unproven)
        for switch in placed:
            outcome = proofs[switch]
            if outcome.state is not SwitchState.IN_EFFECT:
                outcome = SwitchOutcome(
                    switch, SwitchState.FAILED, f"{outcome.detail}: put back as it was"
                )
            result[switch] = outcome
        return result

    async def _batch(self, switches: Iterable[Switch]) -> _Batch:
        batch = _Batch()
        for switch in switches:
            if switch.place not in batch.before:
                text = await self._read(switch.place)
                batch.before[switch.place] = text
                batch.now[switch.place] = text
        return batch

    def _place(
        self,
        switch: Switch,
        outline: Outline,
        batch: _Batch,
        insertions: dict[str, list[lines.Insertion]],
    ) -> str | None:
        """Put `switch`'s text in `batch.now` (an agent file) or in `insertions` (a line at an
        offset of the file as read); None, or why it cannot be placed."""
        text = batch.now[switch.place]
        if own_file(switch):
            if text is None or text == switch.value:
                batch.now[switch.place] = switch.value
                return None
            return f"{switch.place} exists and is not the agent's: left as it is"
        if text is None:
            return f"{switch.place} does not exist"
        if switch.value in text:
            return None
        if outline.texts.get(switch.place) != text:
            return f"{switch.place} changed while the agent read it: tried again next poll"
        offset = _offset(switch, outline)
        if offset is None:
            return f"{switch.target} is no longer defined in {switch.place}"
        insertions.setdefault(switch.place, []).append(lines.Insertion(offset, switch.value))
        return None

    async def _put_back(self, batch: _Batch) -> None:
        try:
            await self._write(batch, "before")
        except DriverError as exc:  # pragma: no cover - reported, nothing else to do
            raise UnsafeChange(f"could not put the config files back: {exc}") from exc

    async def _take_out(self, switches: Sequence[Switch], *, reload: bool = True) -> None:
        """Remove unproven switches' text again and reload (the others stay)."""
        batch = await self._batch(switches)
        for switch in switches:
            text = batch.now[switch.place]
            if text is None:
                continue
            if own_file(switch):
                batch.now[switch.place] = None if text == switch.value else text
            else:
                batch.now[switch.place] = lines.remove(text, switch.value)[0]
        if batch.changed():
            await self._write(batch, "now")
            if reload:
                await live.reloadxml(self.esl)

    # -- checking ----------------------------------------------------------------------------

    async def check(self, switches: Sequence[Switch], *, thorough: bool) -> list[SwitchOutcome]:
        """Every poll: the agent's text still in its file, and in effect on what FreeSWITCH
        serves (FreeSWITCH keeps no time of its last reloadxml, so this is always looked at;
        only the number of users read per domain depends on `thorough`)."""
        outcomes: dict[Switch, SwitchOutcome] = {}
        config = [s for s in switches if s.kind is SwitchKind.CONFIG]
        texts: dict[str, str | None] = {}
        in_files = []
        for switch in config:
            if switch.place not in texts:
                try:
                    texts[switch.place] = await self._read(switch.place)
                except DriverError:
                    texts[switch.place] = None  # unreadable now: applied again, or reported
            text = texts[switch.place]
            there = text is not None and (
                text == switch.value if own_file(switch) else switch.value in text
            )
            if there:
                in_files.append(switch)
            else:
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, f"the agent's text is no longer in {switch.place}"
                )
        outcomes |= await prove(self.esl, self.settings, in_files, thorough=thorough)
        for switch in (s for s in switches if s.kind is SwitchKind.CUT):
            outcomes[switch] = SwitchOutcome(switch, SwitchState.IN_EFFECT, "one-shot")
        return [outcomes[s] for s in switches]

    # -- undoing -----------------------------------------------------------------------------

    async def undo(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]:
        outcomes: dict[Switch, SwitchOutcome] = {}
        config: list[Switch] = []
        for switch, prior in applied:
            if switch.kind is SwitchKind.CUT:
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, "nothing to undo: the device registers again"
                )
            elif prior == "present":
                outcomes[switch] = SwitchOutcome(
                    switch, SwitchState.ABSENT, "it was so before the lapse: left as it was"
                )
            else:
                config.append(switch)
        if not config:
            return [outcomes[s] for s, _ in applied]
        try:
            batch = await self._batch(config)
        except DriverError as exc:
            return [
                outcomes.get(s) or SwitchOutcome(s, SwitchState.FAILED, str(exc))
                for s, _ in applied
            ]
        removed: list[Switch] = []
        for switch in config:
            text = batch.now[switch.place]
            if own_file(switch):
                found = (
                    "absent" if text is None else "removed" if text == switch.value else "edited"
                )
                if found == "removed":
                    batch.now[switch.place] = None
            elif text is None:
                found = "absent"
            else:
                batch.now[switch.place], found = lines.remove(text, switch.value)
            if found == "edited":
                outcomes[switch] = SwitchOutcome(
                    switch,
                    SwitchState.CONFLICT,
                    f"the agent's text in {switch.place} was edited since: left as it is",
                )
            else:
                removed.append(switch)
        if removed:
            try:
                await self._write(batch, "now")
            except DriverError as exc:
                await self._put_back(batch)
                return [
                    outcomes.get(s) or SwitchOutcome(s, SwitchState.FAILED, f"cannot write: {exc}")
                    for s, _ in applied
                ]
            # Also after a crash between writing and reloading: the files are what counts.
            loaded, answer = await live.reloadxml(self.esl)
            if not loaded:
                await self._put_back(batch)
                for switch in removed:
                    outcomes[switch] = SwitchOutcome(
                        switch, SwitchState.FAILED, f"{_reload_refused(answer)}; the agent retries"
                    )
            else:
                for switch in removed:
                    outcomes[switch] = SwitchOutcome(
                        switch,
                        SwitchState.ABSENT,
                        f"removed from {switch.place}, reloadxml [Success]",
                    )
        return [outcomes[s] for s, _ in applied]


def _offset(switch: Switch, outline: Outline) -> int | None:
    """Where a line goes now: first in a domain's params, last in a user's."""
    user = user_of(switch)
    if user:
        uid, _, domain_name = user.partition("@")
        domain = outline.domain(domain_name)
        found = domain.users.get(uid) if domain is not None else None
        params = found.params if found is not None else None
        if params is None or params.self_closing or params.close_file != switch.place:
            return None
        text = outline.texts[switch.place]
        line = switch.value.lstrip("\r\n").lstrip(" \t")
        return lines.last_in(text, params, line).offset
    names = domains_of(switch)
    domain = outline.domain(names[0]) if names else None
    params = domain.params if domain is not None else None
    if params is None or params.self_closing or params.file != switch.place:
        return None
    return params.open_end


def _reload_refused(answer: str) -> str:
    return (
        f"reloadxml did not load the configuration ({answer}): FreeSWITCH keeps its previous "
        "tree and still answers +OK (fact 22); the agent's change was put back. Fix the XML "
        "error (line numbers refer to freeswitch.xml.fsxml in the log folder); the agent "
        "switches again after the next poll"
    )


def _all(
    switches: Sequence[Switch], state: SwitchState, detail: str
) -> dict[Switch, SwitchOutcome]:
    return {s: SwitchOutcome(s, state, detail) for s in switches}
