"""Minimal textual edits of an Asterisk config file: add or remove single option lines that
the agent owns, leaving every other byte of the customer's file as it was.

Why not UpdateConfig: it rewrites the whole file and drops a section's own option when it
equals the template's value, which changed a real endpoint's codecs (fixture facts 17-18).
Here a file is edited as text: each agent line is appended after the last option of its
section and carries a marker comment, `option = value ;pbx-agent:FEATURE`, so it can be found
and removed exactly, and an admin's later edit of it is recognised (a conflict, left alone).

Sections are located by position: the Nth `[header]` in the file is the Nth category GetConfig
lists with templates included, which gives its (possibly inherited) `type`. A file whose
headers do not line up (e.g. `#include`) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import UnsafeChange
from drivers.models import AgentLine

_HEADER = re.compile(r"^\s*\[(?P<name>[^\]]+)\]")


class UnsafeEdit(UnsafeChange):
    """The edit cannot be made safely; the message says why."""


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: str
    start: int  # header line
    end: int  # first line after the section


def split_sections(lines: Sequence[str], types: Sequence[tuple[str, str]]) -> list[Section]:
    """The file's sections with their types; `types` is GetConfig's (name, type) per
    category in order, templates included."""
    headers = [(i, m.group("name")) for i, line in enumerate(lines) if (m := _HEADER.match(line))]
    if any(line.lstrip().startswith("#") for line in lines):
        raise UnsafeEdit("the file uses #include/#exec: sections cannot be located safely")
    if [name for _, name in headers] != [name for name, _ in types]:
        raise UnsafeEdit("the file's sections do not match what the PBX reports")
    ends = [i for i, _ in headers[1:]] + [len(lines)]
    return [
        Section(name, kind, start, end)
        for (start, name), end, (_, kind) in zip(headers, ends, types, strict=True)
    ]


def _target(sections: Sequence[Section], line: AgentLine) -> Section:
    found = [
        s
        for s in sections
        if s.name == line.section and (not line.section_type or s.type == line.section_type)
    ]
    if len(found) != 1:
        kind = f" of type {line.section_type}" if line.section_type else ""
        raise UnsafeEdit(f"[{line.section}]{kind}: {len(found)} sections match, need exactly one")
    return found[0]


def _is_option(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith((";", "[")) and "=" in stripped


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())


def has_line(lines: Sequence[str], sections: Sequence[Section], line: AgentLine) -> bool:
    section = _target(sections, line)
    wanted = _normal(line.text())
    return any(_normal(lines[i]) == wanted for i in range(section.start + 1, section.end))


def add_lines(text: str, types: Sequence[tuple[str, str]], new: Sequence[AgentLine]) -> str:
    """`text` with each line of `new` added to its section (once: present lines are kept)."""
    lines = text.splitlines()
    for line in new:
        sections = split_sections(lines, types)
        if has_line(lines, sections, line):
            continue
        section = _target(sections, line)
        options = [i for i in range(section.start + 1, section.end) if _is_option(lines[i])]
        lines.insert((options[-1] if options else section.start) + 1, line.text())
    return "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")


def remove_lines(
    text: str, types: Sequence[tuple[str, str]], old: Sequence[AgentLine]
) -> tuple[str, list[AgentLine]]:
    """`text` without the agent's lines, and the lines that were not found as the agent wrote
    them (edited or removed by someone else: left alone, reported as conflicts)."""
    lines = text.splitlines()
    conflicts = []
    for line in old:
        sections = split_sections(lines, types)
        section = _target(sections, line)
        wanted = _normal(line.text())
        hits = [i for i in range(section.start + 1, section.end) if _normal(lines[i]) == wanted]
        if not hits:
            conflicts.append(line)
            continue
        del lines[hits[0]]
    ending = "\n" if text.endswith("\n") else ""
    return "\n".join(lines) + ending, conflicts
