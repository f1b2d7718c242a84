"""FreeSWITCH's XML configuration as FreeSWITCH reads and writes it: the pre-processor
(``X-PRE-PROCESS`` includes and sets, ``$${var}`` expansion, line by line), its small XML
parser (character content kept per element, with each child's offset in it; errors named
``[error near line N]: ...`` in the pre-processed document, fixture fact 22), and its
serialiser (``xml_locate`` answers, with FreeSWITCH's indentation rules).

Behaviour was learned from the 1.10.12 transcripts and reading switch_xml.c; tests check it
against the captured pre-processed document and ``xml_locate`` answers byte for byte.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

WS = "\t\r\n "
MAX_INCLUDE_DEPTH = 100
_ENTITIES = {"lt": "<", "gt": ">", "quot": '"', "apos": "'", "amp": "&"}
_CHAR_REF = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|quot|apos|amp);")


class XmlError(ValueError):
    """The pre-processed document does not parse; the message is FreeSWITCH's own."""


@dataclass(eq=False)
class Element:
    """A tag: its attributes in order, its character content (text between its children,
    comments removed), and its children, each with the offset in `txt` where it opened."""

    name: str
    attrs: list[tuple[str, str]] = field(default_factory=list)
    txt: str = ""
    off: int = 0
    children: list[Element] = field(default_factory=list)
    parent: Element | None = None

    def attr(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def child(self, name: str) -> Element | None:
        return next((c for c in self.children if c.name == name), None)

    def all(self, name: str) -> Iterator[Element]:
        return (c for c in self.children if c.name == name)

    def find(self, name: str, attr: str, value: str) -> Element | None:
        return next((c for c in self.all(name) if c.attr(attr) == value), None)


# -- pre-processing ---------------------------------------------------------------------


@dataclass
class Preprocessor:
    """Runs FreeSWITCH's pre-processor over `root_file`; `variables` are the globals known
    beforehand (hostname, directories...), in order, and collect every ``set`` (a variable
    set again moves to the end; set to nothing, it is removed: switch_core_set_variable)."""

    variables: dict[str, str] = field(default_factory=dict)

    def run(self, root_file: Path) -> str:
        out: list[str] = []
        self._file(root_file, out, 0)
        return "".join(out)

    def _expand(self, line: str) -> str:
        if "$${" not in line:
            return line
        result, i = [], 0
        while i < len(line):
            if line.startswith("$${", i):
                end = _end_brace(line, i + 2)
                if end is not None:
                    result.append(self.variables.get(line[i + 3 : end], ""))
                    i = end + 1
                    continue
            result.append(line[i])
            i += 1
        return "".join(result)

    def _set(self, data: str) -> None:
        name, sep, value = data.partition("=")
        if not sep:
            return
        name, value = name.rstrip(" "), value.lstrip(" ")
        self.variables.pop(name, None)
        if value:
            self.variables[name] = value

    def _include(self, cwd: Path, pattern: str, out: list[str], depth: int) -> None:
        path = Path(pattern) if pattern.startswith("/") else cwd / pattern
        for name in sorted(glob.glob(str(path))):
            self._file(Path(name), out, depth + 1)

    def _file(self, path: Path, out: list[str], depth: int) -> None:
        if depth > MAX_INCLUDE_DEPTH or not path.is_file():
            return
        multiline = False
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
            for raw in fh:
                line = self._expand(raw)
                if "<include>" in raw or "</include>" in raw or "<?" in raw:
                    continue
                if multiline:
                    end = line.find("-->")
                    if end < 0:
                        continue
                    multiline, line = False, line[end + 3 :]
                lower = line.lower()
                at = lower.find("x-pre-process")
                if at >= 0:
                    if at == 0 or line[at - 1] != "<":
                        continue
                    self._directive(line[at:], path.parent, out, depth)
                    continue
                at = line.find("<!--#")
                if at >= 0:
                    out.append(line[:at])
                    end = line.find("-->", at)
                    if end >= 0:
                        out.append(line[end + 3 :])
                        command = line[at + 5 : end]
                    else:
                        multiline = True
                        command = line[at + 5 :].split("\r")[0].split("\n")[0]
                    self._hash_directive(command, path.parent, out, depth)
                    continue
                out.append(line)

    def _directive(self, text: str, cwd: Path, out: list[str], depth: int) -> None:
        cmd = _quoted_after(text, "cmd")
        if cmd is None:
            return
        data = _quoted_after(text[text.lower().find("cmd") :].split('"', 2)[-1], "data")
        if data is None:
            return
        self._run(cmd.lower(), data, cwd, out, depth)

    def _hash_directive(self, command: str, cwd: Path, out: list[str], depth: int) -> None:
        name, _, arg = command.partition(" ")
        if not arg:
            return
        quoted = re.search(r'"([^"]*)"', arg)
        self._run(name.lower(), quoted.group(1) if quoted else arg, cwd, out, depth)

    def _run(self, cmd: str, data: str, cwd: Path, out: list[str], depth: int) -> None:
        if cmd == "set":
            self._set(data)
        elif cmd == "include":
            self._include(cwd, data, out, depth)
        # exec, exec-set, stun-set and env-set run programs or ask the network: a simulator
        # does neither; they leave nothing in the document.


def _quoted_after(text: str, keyword: str) -> str | None:
    lower = text.lower()
    at = lower.find(keyword)
    if at < 0:
        return None
    eq = text.find("=", at)
    if eq < 0:
        return None
    q = text.find('"', eq)
    if q < 0:
        return None
    end = text.find('"', q + 1)
    return text[q + 1 :] if end < 0 else text[q + 1 : end]


def _end_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at `start`, nested braces allowed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


# -- parsing ------------------------------------------------------------------------------


def _decode(text: str, attribute: bool) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    def ref(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16)) if int(name[2:], 16) else match.group(0)
        if name.startswith("#"):
            return chr(int(name[1:])) if int(name[1:]) else match.group(0)
        return _ENTITIES[name]

    if "&" in text:
        text = _CHAR_REF.sub(ref, text)
    if attribute:
        text = re.sub(r"[\t\n ]", " ", text)
    return text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.root: Element | None = None
        self.cur: Element | None = None

    def error(self, position: int, message: str) -> XmlError:
        line = self.text.count("\n", 0, position) + 1
        return XmlError(f"[error near line {line}]: {message}")

    def open(self, name: str, attrs: list[tuple[str, str]]) -> None:
        if self.cur is None:
            self.root = self.cur = Element(name, attrs)
            return
        child = Element(name, attrs, off=len(self.cur.txt), parent=self.cur)
        self.cur.children.append(child)
        self.cur = child

    def close(self, name: str, position: int) -> None:
        if self.cur is None or self.cur.name != name:
            raise self.error(position, f"unexpected closing tag </{name}>")
        self.cur = self.cur.parent

    def parse(self) -> Element:
        text, n = self.text, len(self.text)
        s = text.find("<")
        if s < 0:
            raise self.error(n, "root tag missing")
        while True:
            d = s + 1
            c = text[d : d + 1]
            if c and (c.isalpha() or c in "_:" or ord(c) > 127):
                if self.root is not None and self.cur is None:
                    raise self.error(d, "markup outside of root element")
                s = d
                while s < n and text[s] not in WS + "/>":
                    s += 1
                name = text[d:s]
                attrs: list[tuple[str, str]] = []
                while s < n and text[s] in WS:
                    s += 1
                while s < n and text[s] not in "/>":
                    a = s
                    while s < n and text[s] not in WS + "=/>":
                        s += 1
                    attr_name, value = text[a:s], ""
                    if s < n and (text[s] == "=" or text[s] in WS):
                        while s < n and text[s] in WS + "=":
                            s += 1
                        q = text[s : s + 1]
                        if q in ('"', "'"):
                            end = text.find(q, s + 1)
                            if end < 0:
                                raise self.error(d, f"missing {q}")
                            value = _decode(text[s + 1 : end], attribute=True)
                            s = end + 1
                    attrs.append((attr_name, value))
                    while s < n and text[s] in WS:
                        s += 1
                if text[s : s + 1] == "/":
                    if text[s + 1 : s + 2] != ">":
                        raise self.error(d, "missing >")
                    self.open(name, attrs)
                    self.close(name, s)
                    s += 1
                elif text[s : s + 1] == ">":
                    self.open(name, attrs)
                else:
                    raise self.error(d, "missing >")
            elif c == "/":
                start = d + 1
                s = start
                while s < n and text[s] not in WS + ">":
                    s += 1
                name = text[start:s]
                if s >= n:
                    raise self.error(start, "missing >")
                self.close(name, s)
                while s < n and text[s] in WS:
                    s += 1
                if text[s : s + 1] != ">":
                    s = text.find(">", s)
                    if s < 0:
                        raise self.error(start, "missing >")
            elif text.startswith("!--", d):
                end = text.find("--", d + 3)
                if end < 0 or text[end + 2 : end + 3] != ">":
                    raise self.error(d, "unclosed <!--")
                s = end + 2
            elif text.startswith("![CDATA[", d):
                end = text.find("]]>", d)
                if end < 0:
                    raise self.error(d, "unclosed <![CDATA[")
                if self.cur is not None:
                    self.cur.txt += text[d + 8 : end]
                s = end + 2
            elif text.startswith("!DOCTYPE", d):
                end = text.find(">", d)
                if end < 0:
                    raise self.error(d, "unclosed <!DOCTYPE")
                s = end
            elif c == "?":
                end = text.find("?>", d)
                if end < 0:
                    raise self.error(d, "unclosed <?")
                s = end + 1
            else:
                raise self.error(d, "unexpected <")
            s += 1
            if s >= n:
                break
            nxt = text.find("<", s)
            if nxt < 0:
                break
            if nxt > s and self.cur is not None:
                self.cur.txt += _decode(text[s:nxt], attribute=False)
            s = nxt
        if self.root is None:
            raise self.error(n, "root tag missing")
        if self.cur is not None:
            raise self.error(n, f"unclosed tag <{self.cur.name}>")
        return self.root


def parse(text: str) -> Element:
    """The document's root element, or `XmlError` with FreeSWITCH's message."""
    return _Parser(text).parse()


# -- serialising ----------------------------------------------------------------------------


def _encode(text: str, attribute: bool) -> str:
    out = []
    immune = False
    for i, ch in enumerate(text):
        if immune:
            out.append(ch)
        elif ch == "&":
            out.append("&amp;")
        elif ch == "<":
            if text[i + 1 : i + 2] == "!":
                out.append(ch)
                immune = True
            else:
                out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;" if attribute else '"')
        elif ch == "\n":
            out.append("&#xA;" if attribute else "\n")
        elif ch == "\t":
            out.append("&#x9;" if attribute else "\t")
        elif ch == "\r":
            out.append("&#xD;")
        else:
            out.append(ch)
    return "".join(out)


def toxml(element: Element) -> str:
    """How ``xml_locate`` prints an element (switch_xml_toxml without a header)."""
    out: list[str] = []
    _write(element, out, 0, root=True)
    return "".join(out)


def _ends_with(out: list[str], char: str) -> bool:
    for piece in reversed(out):
        if piece:
            return piece[-1] == char
    return False


def _write(xml: Element, out: list[str], depth: int, root: bool = False) -> None:
    parent_txt = "" if root or xml.parent is None else xml.parent.txt
    siblings = [xml] if root or xml.parent is None else xml.parent.children
    start = 0
    for item in siblings[siblings.index(xml) :]:
        out.append(_encode(parent_txt[start : item.off], False))
        if _ends_with(out, ">"):
            out.append("\n")
        out.append("  " * depth)
        out.append(f"<{item.name}")
        seen: set[str] = set()
        for name, value in item.attrs:
            if name not in seen:  # a repeated attribute prints once, with its first value
                seen.add(name)
                out.append(f' {name}="{_encode(value, True)}"')
        out.append(">")
        if item.children:
            _write(item.children[0], out, depth + 1)
        else:
            out.append(_encode(item.txt, False))
        if _ends_with(out, "\n"):
            out.append("  " * depth)
        out.append(f"</{item.name}>\n")
        start = min(item.off, len(parent_txt))
    out.append(_encode(parent_txt[start:], False))
