"""Asterisk `.conf` files as the simulator needs them: sections that share names, templates
(`[name](!)`, `[name](tpl1,tpl2)`), options in file order (`=` and `=>`), comments kept for
rewriting. Expansion follows what GetConfig shows: inherited options first, then own.

Not supported (absent from the offices we simulate): `#include`, `#exec`, `+=`, `(+)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_HEADER = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<opts>[^)]*)\))?\s*(?P<rest>;.*)?$")


@dataclass
class Category:
    name: str
    is_template: bool = False
    templates: list[str] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        """Last own value of `key` (later lines override earlier ones)."""
        for k, v in reversed(self.options):
            if k == key:
                return v
        return default


@dataclass(eq=False)
class ConfFile:
    """A parsed file. Treat it as read-only: lookups are indexed on first use (offices of
    10,000 extensions are served), and an edit is a new parse of the rewritten file."""

    filename: str
    categories: list[Category] = field(default_factory=list)
    _by_name: dict[str, list[Category]] | None = field(default=None, repr=False)
    _expanded: dict[int, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _objects: dict[str, list[Category]] = field(default_factory=dict, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfFile):
            return NotImplemented
        return (self.filename, self.categories) == (other.filename, other.categories)

    def _named(self, name: str) -> list[Category]:
        if self._by_name is None:
            self._by_name = {}
            for category in self.categories:
                self._by_name.setdefault(category.name, []).append(category)
        return self._by_name.get(name, [])

    def sections(self, name: str) -> list[Category]:
        return [c for c in self._named(name) if not c.is_template]

    def template(self, name: str) -> Category | None:
        named = self._named(name)
        for category in named:
            if category.is_template:
                return category
        return named[0] if named else None  # a normal section can also serve as a template

    def expanded(self, category: Category) -> list[tuple[str, str]]:
        """Inherited options (recursively, in template order) first, then the section's own."""
        cached = self._expanded.get(id(category))
        if cached is not None:
            return cached
        options: list[tuple[str, str]] = []
        for name in category.templates:
            parent = self.template(name)
            if parent is not None and parent is not category:
                options.extend(self.expanded(parent))
        options.extend(category.options)
        self._expanded[id(category)] = options
        return options

    def value(self, category: Category, key: str, default: str | None = None) -> str | None:
        """Effective value of `key`: the last one after expansion."""
        result = default
        for k, v in self.expanded(category):
            if k == key:
                result = v
        return result

    def objects(self, type_: str) -> list[Category]:
        """Non-template sections whose effective `type` is `type_` (pjsip.conf style)."""
        if type_ not in self._objects:
            self._objects[type_] = [
                c for c in self.categories if not c.is_template and self.value(c, "type") == type_
            ]
        return self._objects[type_]

    def find(self, name: str, type_: str) -> Category | None:
        for category in self.sections(name):
            if self.value(category, "type") == type_:
                return category
        return None


def _strip_comment(line: str) -> str:
    out = []
    escaped = False
    for ch in line:
        if ch == ";" and not escaped:
            break
        escaped = ch == "\\" and not escaped
        out.append(ch)
    return "".join(out).replace("\\;", ";").strip()


def parse(text: str, filename: str) -> ConfFile:
    conf = ConfFile(filename)
    current: Category | None = None
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        header = _HEADER.match(line)
        if header:
            opts = [o.strip() for o in (header["opts"] or "").split(",") if o.strip()]
            current = Category(
                name=header["name"].strip(),
                is_template="!" in opts,
                templates=[o for o in opts if o != "!"],
            )
            conf.categories.append(current)
            continue
        if current is None:
            continue  # options before any section are ignored, as Asterisk does
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value[1:] if value.startswith(">") else value
        current.options.append((key.strip(), value.strip()))
    return conf


class ConfigStore:
    """A directory of config files, re-parsed whenever a file changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[int, int, ConfFile]] = {}

    def path(self, filename: str) -> Path:
        if "/" in filename or filename.startswith("."):
            raise FileNotFoundError(filename)
        return self.root / filename

    def read(self, filename: str) -> ConfFile:
        path = self.path(filename)
        stat = path.stat()  # FileNotFoundError when missing
        cached = self._cache.get(filename)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        conf = parse(path.read_text(encoding="utf-8"), filename)
        self._cache[filename] = (stat.st_mtime_ns, stat.st_size, conf)
        return conf
