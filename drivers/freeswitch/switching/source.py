"""Where FreeSWITCH's directory comes from, read from its configuration files: each domain's
and user's element, in which file and at which offsets, so the agent can add its lines there
(or its own file where the domain's ``<params>`` include a folder) and take them out again
byte for byte.

The files are walked the way FreeSWITCH's pre-processor walks them (switch_xml.c): from
``freeswitch.xml``, every ``<X-PRE-PROCESS cmd="include" data="..."/>`` read in place (a
pattern relative to the including file's folder, files in sorted order), ``cmd="set"``
variables expanded where ``$${name}`` appears in a domain's name or a user's id, lines holding
``<include>`` wrappers ignored. Inside a ``<section>`` only the directory is read, and of the
module configurations only those of directory bindings (`CONFIGS`). A directive inside an XML
comment still runs in FreeSWITCH, but what it includes then lies inside that comment: it is
skipped here.

Also found here: a ``directory`` binding that serves users from elsewhere than these files
(FusionPBX's Lua ``xml_handler`` reading its database, ``mod_xml_curl``), which the agent
cannot switch by editing files.

Secrets: the files hold passwords; only the names, offsets and the few non-secret params the
agent needs leave this module, and nothing is logged. Blocking (`ConfigFiles`): run in a
thread.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from drivers.config_files import ConfigFiles
from drivers.errors import DriverError

ROOT_FILE = "freeswitch.xml"
MAX_DEPTH = 30
MAX_FILES = 20_000
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_CDATA = re.compile(r"<!\[CDATA\[.*?(?:\]\]>|\Z)", re.S)
_TAG = re.compile(r"""<(/?)([A-Za-z_][\w:.-]*)((?:[^<>"']|"[^"]*"|'[^']*')*?)(/?)>""")
_ATTR = re.compile(r"""([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")
_VAR = re.compile(r"\$\$\{([^}]*)\}")
# The module configurations read (by FreeSWITCH's file naming): bindings that serve the
# directory from elsewhere than the files.
CONFIGS = ("lua.conf.xml", "xml_curl.conf.xml")
# The core's own variables the agent may ask FreeSWITCH for (``global_getvar NAME``) when the
# files use them: never anything else, since a variable can hold a password (fact 40).
CORE_VARIABLES = re.compile(
    r"^(local_ip_v[46]|local_mask_v4|hostname|domain|domain_name|conf_dir)$"
)


class SourceError(DriverError):
    """The configuration files cannot be read as FreeSWITCH reads them (the message says
    which file and why); the agent changes nothing then."""


@dataclass(eq=False)
class Element:
    """A tag of the walked document: where it opens and closes in which file."""

    name: str
    attrs: dict[str, str]
    file: str  # relative to the configuration folder
    start: int  # offset of its ``<`` in that file's text
    open_end: int  # offset just after its opening tag
    close_file: str = ""  # where its closing tag is ("" for <x/>)
    close_start: int = -1
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
    # include patterns directly inside it: (folder relative to the root, file name pattern)
    includes: list[tuple[str, str]] = field(default_factory=list)

    def child(self, name: str) -> Element | None:
        return next((c for c in self.children if c.name == name), None)

    def all(self, name: str) -> Iterator[Element]:
        return (c for c in self.children if c.name == name)

    @property
    def self_closing(self) -> bool:
        return self.close_start < 0

    def params(self) -> list[tuple[str, str]]:
        """(name, value) of its ``<param>`` children, in order (non-secret use only)."""
        return [(p.attrs.get("name", ""), p.attrs.get("value", "")) for p in self.all("param")]


@dataclass
class UserSource:
    user_id: str
    element: Element
    params: Element | None  # the user's own <params>


@dataclass
class DomainSource:
    name: str
    element: Element
    params: Element | None  # the domain's own <params>
    users: dict[str, UserSource] = field(default_factory=dict)


@dataclass
class Outline:
    """The directory as the files define it, and the bindings that may serve it instead."""

    domains: dict[str, DomainSource]  # by lower-cased name
    texts: dict[str, str]  # every file read, by relative name
    directory_bindings: list[str]  # e.g. "mod_lua xml_handler (app.lua xml_handler)"
    fusionpbx: bool  # FusionPBX's own Lua handler is configured
    notes: list[str]  # includes the walk could not follow

    def domain(self, name: str) -> DomainSource | None:
        return self.domains.get(name.lower())


def mask(text: str) -> str:
    """`text` with comments and CDATA blanked (offsets and line breaks kept)."""

    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    return _CDATA.sub(blank, _COMMENT.sub(blank, text))


def attributes(raw: str) -> dict[str, str]:
    return {m.group(1): _unescape(m.group(2)[1:-1]) for m in _ATTR.finditer(raw)}


def _unescape(value: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        value = value.replace(entity, char)
    return value.replace("&amp;", "&")


class _Walker:
    def __init__(
        self, files: ConfigFiles, lookup: Callable[[str], str | None], conf_dir: str
    ) -> None:
        self.files = files
        self.lookup = lookup  # the core's own variables (hostname, local_ip_v4, ...)
        self.conf_dir = conf_dir.rstrip("/")
        self.variables: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self.notes: list[str] = []
        self.missing: set[str] = set()
        self.root = Element("#document", {}, "", 0, 0)
        self.current = self.root
        self.read_count = 0

    def expand(self, value: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in self.variables:
                return self.variables[name]
            found = self.lookup(name) if CORE_VARIABLES.match(name) else None
            if found is None:
                if CORE_VARIABLES.match(name):
                    self.missing.add(name)
                return ""
            return found

        return _VAR.sub(one, value)

    def file(self, name: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.notes.append(f"{name}: includes nested deeper than {MAX_DEPTH}: not read")
            return
        self.read_count += 1
        if self.read_count > MAX_FILES:
            raise SourceError(f"more than {MAX_FILES} configuration files: not read")
        text = self.texts.get(name)
        if text is None:
            text = self.files.read_text(name)
            self.texts[name] = text
        masked = mask(text)
        for match in _TAG.finditer(masked):
            closing, tag, raw, empty = match.groups()
            line_start = masked.rfind("\n", 0, match.start()) + 1
            line_end = masked.find("\n", match.end())
            line = masked[line_start : len(masked) if line_end < 0 else line_end]
            if "<include>" in line or "</include>" in line or "<?" in line:
                continue  # the pre-processor drops such lines whole
            if tag.lower() == "x-pre-process":
                self.directive(name, attributes(raw), depth)
                continue
            if closing:
                self.close(name, tag, match.start())
                continue
            element = Element(
                tag, attributes(raw), name, match.start(), match.end(), parent=self.current
            )
            self.current.children.append(element)
            if not empty:
                self.current = element

    def close(self, name: str, tag: str, offset: int) -> None:
        """A closing tag. One that closes nothing open is FreeSWITCH's parse error: inside
        the directory it stops the agent (it could not tell where its text goes); elsewhere
        it is noted, and ``reloadxml`` will say it (fact 22)."""
        if self.current is not self.root and self.current.name == tag:
            self.current.close_file = name
            self.current.close_start = offset
            self.current = self.current.parent or self.root
            return
        problem = f"{name}: </{tag}> at offset {offset} closes nothing open"
        if self.in_directory():
            raise SourceError(
                f"{problem}: the agent reads the directory as FreeSWITCH would and stops here"
            )
        self.notes.append(problem)
        open_names = []
        node: Element | None = self.current
        while node is not None and node is not self.root:
            open_names.append(node.name)
            node = node.parent
        if tag in open_names:  # recover as far as that element
            while self.current.name != tag:
                self.current = self.current.parent or self.root
            self.current = self.current.parent or self.root

    def in_directory(self) -> bool:
        return self.section() == "directory"

    def directive(self, name: str, attrs: dict[str, str], depth: int) -> None:
        cmd = attrs.get("cmd", "").lower()
        data = attrs.get("data", "")
        if cmd == "set":
            key, sep, value = data.partition("=")
            if sep:
                key, value = key.rstrip(" "), self.expand(value.lstrip(" "))
                self.variables.pop(key, None)
                if value:
                    self.variables[key] = value
        elif cmd == "include":
            pattern = self.expand(data)
            folder = posixpath.dirname(name)
            relative = self.relative(folder, pattern)
            if relative is not None:
                self.current.includes.append(
                    (posixpath.dirname(relative), posixpath.basename(relative))
                )
            section = self.section()
            for found in self.glob(folder, pattern):
                if section in (None, "directory") or posixpath.basename(found) in CONFIGS:
                    self.file(found, depth + 1)

    def section(self) -> str | None:
        """The ``<section>`` being read (None outside any): the dialplan and most module
        configurations are not read at all (fewer files, fewer sessions over SFTP)."""
        node: Element | None = self.current
        while node is not None:
            if node.name == "section":
                return node.attrs.get("name", "")
            node = node.parent
        return None

    def relative(self, folder: str, pattern: str) -> str | None:
        if pattern.startswith("/"):
            if self.conf_dir and pattern.startswith(self.conf_dir + "/"):
                return pattern[len(self.conf_dir) + 1 :]
            return None
        joined = posixpath.normpath(posixpath.join(folder, pattern))
        return None if joined.startswith("..") else joined

    def glob(self, folder: str, pattern: str) -> list[str]:
        relative = self.relative(folder, pattern)
        if relative is None:
            self.notes.append(f"include {pattern!r} is outside the configuration folder: not read")
            return []
        parts = relative.split("/")
        found = [""]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            step = []
            for base in found:
                if not any(c in part for c in "*?["):
                    step.append(posixpath.join(base, part) if base else part)
                    continue
                for entry in self.files.list_names(base):
                    if not entry.startswith(".") and fnmatch.fnmatchcase(entry, part):
                        step.append(posixpath.join(base, entry) if base else entry)
            found = step if last else [f for f in step if f]
        return sorted(f for f in found if f and self._is_file(f))

    def _is_file(self, name: str) -> bool:
        if name in self.texts:
            return True
        try:
            self.texts[name] = self.files.read_text(name)
        except DriverError:
            return False
        return True


def read_outline(
    files: ConfigFiles, lookup: Callable[[str], str | None], conf_dir: str
) -> tuple[Outline, set[str]]:
    """The outline of the directory, and the core variables the files use that `lookup`
    did not know (ask FreeSWITCH for them and read again)."""
    walker = _Walker(files, lookup, conf_dir)
    walker.file(ROOT_FILE, 0)
    if walker.current is not walker.root:
        problem = f"<{walker.current.name}> opened in {walker.current.file} is never closed"
        if walker.in_directory():
            raise SourceError(problem)
        walker.notes.append(problem)
    domains: dict[str, DomainSource] = {}
    directory = _section(walker.root, "directory")
    for element in directory.all("domain") if directory is not None else ():
        name = walker.expand(element.attrs.get("name", ""))
        if not name or name.lower() in domains:
            continue  # FreeSWITCH uses the first domain of a name
        source = DomainSource(name, element, element.child("params"))
        for user in _users(element):
            uid = walker.expand(user.attrs.get("id", ""))
            if uid and uid not in source.users and user.attrs.get("type") != "pointer":
                source.users[uid] = UserSource(uid, user, user.child("params"))
        domains[name.lower()] = source
    bindings, fusionpbx = _bindings(walker.root)
    outline = Outline(domains, walker.texts, bindings, fusionpbx, walker.notes)
    return outline, walker.missing


def _section(root: Element, name: str) -> Element | None:
    document = root.child("document")
    if document is None:
        return None
    return next((s for s in document.all("section") if s.attrs.get("name") == name), None)


def _users(domain: Element) -> Iterator[Element]:
    for box in domain.all("users"):
        yield from box.all("user")
    groups = domain.child("groups")
    for group in groups.all("group") if groups is not None else ():
        for box in group.all("users"):
            yield from box.all("user")


def _configuration(root: Element, name: str) -> Element | None:
    section = _section(root, "configuration")
    if section is None:
        return None
    return next((c for c in section.all("configuration") if c.attrs.get("name") == name), None)


def _bindings(root: Element) -> tuple[list[str], bool]:
    """Modules configured to serve the ``directory`` section from elsewhere."""
    found: list[str] = []
    fusionpbx = False
    lua = _configuration(root, "lua.conf")
    settings = lua.child("settings") if lua is not None else None
    if settings is not None:
        params = dict(settings.params())
        script = params.get("xml-handler-script", "")
        sections = [s.strip() for s in params.get("xml-handler-bindings", "").split(",")]
        if script and "directory" in sections:
            found.append(f"mod_lua ({script})")
            fusionpbx = "xml_handler" in script
    curl = _configuration(root, "xml_curl.conf")
    box = curl.child("bindings") if curl is not None else None
    for binding in box.all("binding") if box is not None else ():
        for param in binding.all("param"):
            if "directory" in param.attrs.get("bindings", "").split("|"):
                found.append(f"mod_xml_curl (binding {binding.attrs.get('name', '?')})")
    return found, fusionpbx
