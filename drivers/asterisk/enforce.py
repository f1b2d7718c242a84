"""Switching subscription features on a live Asterisk, safely.

Each change adds or removes agent-owned option lines (`conftext`) in a config file reached
through `ConfigFiles` (local disk on the PBX host, or SFTP with the pinned host key), then
reloads only the module that reads it. Around every change the effective configuration of
the whole file is read over AMI (GetConfig, templates expanded) before and after: every
section the change does not target must be identical, and each targeted one must differ by
exactly the agent's lines. Otherwise the original bytes are put back, the module reloaded,
and the change refused with the reason. `manager reload` is never issued while any manager
user has `setvar` (it crashes Asterisk 22, fixture fact 19).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from drivers.asterisk import parse
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.conftext import UnsafeEdit, add_lines, remove_lines
from drivers.config_files import ConfigFiles
from drivers.models import AgentLine

RELOAD_MODULE = {"pjsip.conf": "res_pjsip.so", "manager.conf": "manager"}
SECRET_OPTIONS = ("password", "secret", "md5_cred")

Effective = list[tuple[str, str, tuple[tuple[str, str], ...]]]  # (name, type, options)


class AsteriskEnforcer:
    def __init__(self, ami: AmiClient, files: ConfigFiles) -> None:
        self._ami = ami
        self._files = files

    async def effective(self, filename: str, *, templates: bool = False) -> Effective:
        """Every section of `filename` as Asterisk reads it: name, type, options (inherited
        first); secret values replaced by their hash."""
        if templates:
            answer = await self._ami.action(
                "GetConfig", Filename=filename, Filter="TEMPLATES=include"
            )
        else:
            answer = await self._ami.action("GetConfig", Filename=filename)
        sections = parse.parse_get_config(answer)
        return [
            (s.name, s.get("type") or "", tuple(_hide_secret(k, v) for k, v in s.options))
            for s in sections
        ]

    async def change(
        self, filename: str, *, add: Sequence[AgentLine] = (), remove: Sequence[AgentLine] = ()
    ) -> list[AgentLine]:
        """Add and remove agent lines in `filename`; the removals that were not found as the
        agent wrote them (conflicts, left alone). Raises `UnsafeEdit` when the change was not
        made (nothing changed then)."""
        module = RELOAD_MODULE.get(filename)
        if module is None:
            raise UnsafeEdit(f"{filename}: the agent does not change this file")
        with_templates = await self.effective(filename, templates=True)
        before = await self.effective(filename)
        if module == "manager":
            _refuse_setvar(before)
        types = [(name, kind) for name, kind, _ in with_templates]
        original = await asyncio.to_thread(self._files.read_text, filename)
        text = add_lines(original, types, add) if add else original
        text, conflicts = remove_lines(text, types, remove) if remove else (text, [])
        if text == original:
            return conflicts
        await asyncio.to_thread(self._files.write_text, filename, text)
        await self._reload(module)
        after = await self.effective(filename)
        removed = [line for line in remove if line not in conflicts]
        problem = _unexpected(before, after, add, removed)
        if problem:
            await asyncio.to_thread(self._files.write_text, filename, original)
            await self._reload(module)
            raise UnsafeEdit(f"{filename}: change undone, {problem}")
        return conflicts

    async def _reload(self, module: str) -> None:
        await self._ami.action("Reload", Module=module)


def _hide_secret(key: str, value: str) -> tuple[str, str]:
    if any(word in key.lower() for word in SECRET_OPTIONS):
        return key, "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return key, value


def _refuse_setvar(sections: Effective) -> None:
    users = [name for name, _, options in sections if any(k == "setvar" for k, _ in options)]
    if users:
        raise UnsafeEdit(
            f"manager.conf: user(s) {', '.join(users)} have setvar; `manager reload` crashes "
            "Asterisk 22 when such a user exists, so the agent does not reload the manager"
        )


def _unexpected(
    before: Effective,
    after: Effective,
    added: Sequence[AgentLine],
    removed: Sequence[AgentLine],
) -> str | None:
    """What differs between `before` and `after` beyond the agent's own lines, or None."""
    expected = [list(options) for _, _, options in before]
    index = {(name, kind): i for i, (name, kind, _) in enumerate(before)}
    for line in added:
        i = _find(index, line)
        if i is not None:
            expected[i].append((line.option, line.value))
    for line in removed:
        i = _find(index, line)
        if i is not None and (line.option, line.value) in expected[i]:
            expected[i].reverse()
            expected[i].remove((line.option, line.value))  # the last occurrence
            expected[i].reverse()
    if [(n, k) for n, k, _ in after] != [(n, k) for n, k, _ in before]:
        return "the set of sections changed"
    changed = [
        f"[{name}]" + (f" ({kind})" if kind else "")
        for (name, kind, options), wanted in zip(after, expected, strict=True)
        if list(options) != wanted
    ]
    if changed:
        return "it would also change the effective options of " + ", ".join(changed[:10])
    return None


def _find(index: dict[tuple[str, str], int], line: AgentLine) -> int | None:
    if line.section_type:
        return index.get((line.section, line.section_type))
    hits = [i for (name, _), i in index.items() if name == line.section]
    return hits[0] if len(hits) == 1 else None
