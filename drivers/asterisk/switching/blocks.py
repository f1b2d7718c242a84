"""The agent's own configuration blocks: `(+)` additions appended to a file the agent may write
(never one the PBX's tooling generates), leaving every byte of the customer's text as it was.

A block is a blank line, a comment naming the feature, a `[NAME](+type=TYPE)` (or `[NAME](+)`)
header and the agent's options. Asterisk merges the options into the existing category when it
loads the file (fact 21): the customer's sections are not edited. Removing a block removes
exactly the text that was appended, so the file is byte-identical to before. A block someone
edited is not removed (a conflict); one someone deleted is already gone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NOTE = "pbx-agent:"
_BLOCK = re.compile(
    r"\n; pbx-agent:(?P<feature>[^ \n]+) (?P<category>[^:\n]+):[^\n]*\n"
    r"\[(?P=category)\]\(\+[^)\n]*\)\n(?:[^\n;\[#][^\n]*=[^\n]*\n)*"
)


def block(feature: str, category: str, type_filter: str, options: Sequence[tuple[str, str]]) -> str:
    """The exact text appended for one category (starts with a newline: a file that does not
    end with one gets its last line ended, and removing the block restores that too)."""
    header = f"[{category}](+type={type_filter})" if type_filter else f"[{category}](+)"
    lines = [
        f"; {NOTE}{feature} {category}: the support subscription lapsed; "
        "the agent removes this block on renewal, do not edit it",
        header,
        *(f"{key} = {value}" for key, value in options),
    ]
    return "\n" + "\n".join(lines) + "\n"


def options(text: str) -> list[tuple[str, str]]:
    """The options a block sets, in order."""
    found = []
    for line in text.strip("\n").split("\n")[2:]:
        key, _, value = line.partition("=")
        found.append((key.strip(), value.strip()))
    return found


def present(text: str, wanted: str) -> bool:
    return wanted in text


def add(text: str, wanted: str) -> str:
    """`text` with the block appended, unless it is there already."""
    return text if wanted in text else text + wanted


def remove(text: str, wanted: str) -> tuple[str, str]:
    """`text` without the block, and what was found: `removed`, `absent` (nobody left a trace
    of it) or `edited` (its named comment is there but the block differs: left alone)."""
    at = text.rfind(wanted)
    if at >= 0:
        return text[:at] + text[at + len(wanted) :], "removed"
    first = wanted.lstrip("\n").split("\n", 1)[0]
    return text, "edited" if first in text.split("\n") else "absent"


def find(text: str) -> list[tuple[str, str, str]]:
    """(feature, category, exact text) of every agent block in a file's text, in order."""
    return [(m["feature"], m["category"], m.group(0)) for m in _BLOCK.finditer(text)]
