"""Asterisk `.conf` files as the simulator's handlers use them: the categories Asterisk loads
(`astconfig`: includes followed, `(+)` additions merged, templates copied), each with its
options in order; lookups indexed. GetConfig shows exactly `expanded()`: inherited options
first, then the category's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drivers.asterisk.sim import astconfig
from drivers.asterisk.sim.astconfig import ConfigInvalid

__all__ = ["Category", "ConfFile", "ConfigInvalid", "ConfigStore"]


@dataclass
class Category:
    name: str
    is_template: bool = False
    templates: list[str] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)
    inherited: list[tuple[str, str]] | None = None  # as copied at load; None: from templates
    sources: list[tuple[str, int]] | None = None  # (file, line) of each own option

    def source(self, index: int) -> str:
        """`file:line` where own option `index` was written (`?` when unknown)."""
        if self.sources is None or index >= len(self.sources):
            return "?"
        file, line = self.sources[index]
        return f"{file}:{line}"

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
        if category.inherited is not None:
            options = category.inherited + category.options
            self._expanded[id(category)] = options
            return options
        options = []
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


def from_loaded(cfg: astconfig.AstConfig, filename: str) -> ConfFile:
    conf = ConfFile(filename)
    for cat in cfg.categories:
        conf.categories.append(
            Category(
                name=cat.name,
                is_template=cat.ignored,
                templates=[t.name for t in cat.templates],
                options=[(v.name, v.value) for v in cat.vars if not v.inherited],
                inherited=[(v.name, v.value) for v in cat.vars if v.inherited],
                sources=[
                    (v.file.rsplit("/", 1)[-1] or filename, v.lineno)
                    for v in cat.vars
                    if not v.inherited
                ],
            )
        )
    return conf


def etc_dir(root: Path) -> str:
    """Where Asterisk believes its config files are: asterisk.conf `astetcdir`."""
    try:
        cfg = astconfig.load(root, "asterisk.conf")
    except (FileNotFoundError, ConfigInvalid):
        return "/etc/asterisk"
    for cat in cfg.categories:
        if cat.name == "directories":
            for var in reversed(cat.vars):
                if var.name == "astetcdir":
                    return var.value or "/etc/asterisk"
    return "/etc/asterisk"


class ConfigStore:
    """A directory of config files, loaded as Asterisk loads them and re-loaded whenever one
    of the files a load read changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[tuple[tuple[Path, int, int], ...], ConfFile]] = {}
        self._etc: tuple[tuple[Path, int, int], str] | None = None

    @property
    def etc_dir(self) -> str:
        signature = _signature(self.root / "asterisk.conf")
        if self._etc is None or self._etc[0] != signature:
            self._etc = (signature, etc_dir(self.root))
        return self._etc[1]

    def path(self, filename: str) -> Path:
        if not filename or "/" in filename or filename.startswith("."):
            raise FileNotFoundError(filename)
        return self.root / filename

    def load(self, filename: str) -> astconfig.AstConfig:
        """Asterisk's own structure (comments, files, line numbers), for UpdateConfig."""
        self.path(filename)
        return astconfig.load(self.root, filename, self.etc_dir)

    def read(self, filename: str) -> ConfFile:
        """The categories of `filename`; FileNotFoundError when missing, ConfigInvalid when
        Asterisk could not parse it (or a file it includes)."""
        cached = self._cache.get(filename)
        if cached is not None and all(_signature(p) == (p, m, n) for p, m, n in cached[0]):
            return cached[1]
        cfg = self.load(filename)
        conf = from_loaded(cfg, filename)
        self._cache[filename] = (tuple(_signature(p) for p in cfg.files), conf)
        return conf


def _signature(path: Path) -> tuple[Path, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_mtime_ns, stat.st_size)
