"""UpdateConfig's edits and Asterisk's rewrite of the whole file, reproduced line by line.

What Asterisk 22 does on save (fixture facts 17-18, `pbx-config-after-updateconfig/`):
a generated `;!` header replaces any earlier one; comments and blank lines stay; each option
is written `name = value` (so an empty value gains a trailing space); and an option a section
sets to the value one of its templates already has is dropped, leaving an empty line. That
last rule silently changes behaviour (it removed `disallow = all` from a real endpoint).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from drivers.asterisk.sim.conffile import Category, ConfFile, parse

_HEADER = re.compile(r"^\s*\[(?P<name>[^\]]+)\]")


class UpdateError(ValueError):
    """An UpdateConfig action that Asterisk would refuse (message as Asterisk words it)."""


@dataclass
class Edit:
    """One ``Action-NNNNNN`` of an UpdateConfig request."""

    action: str
    cat: str
    var: str | None = None
    value: str | None = None
    match: str | None = None
    options: str | None = None

    def catfilter(self) -> dict[str, str]:
        """``Options: catfilter="type=endpoint"`` narrows a name to the sections whose
        options match; without it the name matches every section of that name (fact 17)."""
        found = re.search(r'catfilter\s*=\s*"?([^"]*)"?', self.options or "")
        pairs = [p.split("=", 1) for p in (found.group(1).split(",") if found else []) if "=" in p]
        return {k.strip(): v.strip() for k, v in pairs}


class Document:
    """A config file as lines, each known to be a header, an option or anything else."""

    def __init__(self, text: str, filename: str) -> None:
        lines = text.splitlines()
        while lines and lines[0].startswith(";!"):
            lines.pop(0)  # Asterisk drops its own generated header when it reads a file
        self.lines = lines
        self.filename = filename

    def conf(self) -> ConfFile:
        return parse("\n".join(self.lines), self.filename)

    def _spans(self) -> list[tuple[int, int]]:
        """(header line, end line) of every section, in file order."""
        starts = [i for i, line in enumerate(self.lines) if _HEADER.match(line)]
        ends = [*starts[1:], len(self.lines)]
        return list(zip(starts, ends, strict=True))

    def _option_lines(self, start: int, end: int) -> list[int]:
        return [i for i in range(start + 1, end) if _option(self.lines[i]) is not None]

    def _targets(self, edit: Edit) -> list[tuple[Category, tuple[int, int]]]:
        conf = self.conf()
        wanted = edit.catfilter()
        result = []
        for category, span in zip(conf.categories, self._spans(), strict=True):
            if category.name != edit.cat:
                continue
            if wanted and any(conf.value(category, k) != v for k, v in wanted.items()):
                continue
            result.append((category, span))
        return result

    def apply(self, edit: Edit) -> None:
        kind = edit.action.lower()
        if kind == "newcat":
            self.lines += ["", f"[{edit.cat}]"]
            return
        targets = self._targets(edit)
        if not targets:
            raise UpdateError("Update did not complete successfully")
        # Work from the end so earlier line numbers stay valid.
        for _category, (start, end) in reversed(targets):
            options = self._option_lines(start, end)
            if kind == "append":
                at = (options[-1] if options else start) + 1
                self.lines.insert(at, f"{edit.var} = {edit.value or ''}")
            elif kind in ("update", "delete"):
                hits = [
                    i
                    for i in options
                    if (opt := _option(self.lines[i])) is not None
                    and opt[0] == edit.var
                    and (edit.match is None or opt[1] == edit.match)
                ]
                if not hits:
                    raise UpdateError("Update did not complete successfully")
                for i in reversed(hits):
                    if kind == "update":
                        self.lines[i] = f"{edit.var} = {edit.value or ''}"
                    else:
                        del self.lines[i]
            elif kind == "emptycat":
                for i in reversed(options):
                    del self.lines[i]
            elif kind == "delcat":
                del self.lines[start:end]
            elif kind == "renamecat":
                self.lines[start] = self.lines[start].replace(f"[{edit.cat}]", f"[{edit.value}]", 1)
            else:
                raise UpdateError("Unknown action")

    def render(self, *, etc_dir: str, now: float | None = None) -> str:
        """The file as Asterisk writes it back."""
        conf = self.conf()
        out = [
            ";!",
            ";! Automatically generated configuration file",
            f";! Filename: {self.filename} ({etc_dir}/{self.filename})",
            ";! Generator: Manager",
            f";! Creation Date: {time.asctime(time.localtime(now))}",
            ";!",
        ]
        spans = self._spans()
        owner: dict[int, Category] = {}
        for category, (start, end) in zip(conf.categories, spans, strict=True):
            for i in range(start + 1, end):
                owner[i] = category
        for i, line in enumerate(self.lines):
            option = _option(line)
            if option is None:
                out.append(line)
                continue
            name, value, op = option
            section = owner.get(i)
            if section is not None and _from_template(conf, section, name, value):
                out.append("")
            else:
                out.append(f"{name} {op} {value}")
        return "\n".join(out) + "\n"


def _option(line: str) -> tuple[str, str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith((";", "[", "#")) or "=" not in stripped:
        return None
    name, _, value = stripped.partition("=")
    op = "=>" if value.startswith(">") else "="
    return name.strip(), value[1:].strip() if op == "=>" else value.strip(), op


def _from_template(conf: ConfFile, category: Category, name: str, value: str) -> bool:
    for template_name in category.templates:
        template = conf.template(template_name)
        if template is not None and (name, value) in conf.expanded(template):
            return True
    return False
