"""The core's tables as ``show`` prints them (mod_commands show_function): delimited with a
``N total.`` line, ``as json`` (a different shape when empty, fact 17) or ``as xml``; and the
build's own tables (interfaces, completions, module unload order) from data/."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from drivers.freeswitch.sim import xmldoc

Row = Sequence[str]


@dataclass(frozen=True, slots=True)
class Interface:
    kind: str
    name: str
    ikey: str
    filename: str
    description: str
    syntax: str


def _field(text: str) -> str:
    return json.loads(text) if text.startswith('"') else text


@cache
def interfaces() -> tuple[Interface, ...]:
    """Every interface the build's modules register, in (type, name) order."""
    data = resources.files("drivers.freeswitch.sim").joinpath("data/interfaces.tsv").read_text()
    rows = []
    for line in data.splitlines():
        if line and not line.startswith("#"):
            rows.append(Interface(*(_field(f) for f in line.split("\t"))))
    return tuple(rows)


@cache
def api_names() -> frozenset[str]:
    return frozenset(i.name for i in interfaces() if i.kind == "api")


def syntax(api: str) -> str:
    return next((i.syntax for i in interfaces() if i.kind == "api" and i.name == api), "")


@cache
def completions() -> tuple[tuple[str, ...], ...]:
    data = resources.files("drivers.freeswitch.sim").joinpath("data/complete.tsv").read_text()
    return tuple(
        tuple(line.split("\t")) for line in data.splitlines() if line and not line.startswith("#")
    )


@cache
def unload_events() -> tuple[tuple[tuple[str, str], ...], ...]:
    """The MODULE_UNLOAD events of a shutdown, in order, each as its own headers."""
    data = resources.files("drivers.freeswitch.sim").joinpath("data/unload.jsonl").read_text()
    return tuple(tuple(tuple(p) for p in json.loads(line)) for line in data.splitlines() if line)


def render(columns: Sequence[str], rows: Sequence[Row], fmt: str) -> str:
    """One table in `fmt`: ``delim`` (comma-separated), ``json`` or ``xml``."""
    if fmt == "json":
        if not rows:
            return '{"row_count": 0}\n'
        items = [
            "{"
            + ",".join(
                f"{json.dumps(c)}:{json.dumps(v, ensure_ascii=False)}"
                for c, v in zip(columns, row, strict=True)
            )
            + "}"
            for row in rows
        ]
        return '{"row_count":' + str(len(rows)) + ',"rows":[' + ",".join(items) + "]}"
    if fmt == "xml":
        if not rows:
            return '<result row_count="0"/>\n'
        result = xmldoc.Element("result")
        for index, row in enumerate(rows):
            item = xmldoc.Element("row", [("row_id", str(index + 1))], parent=result)
            result.children.append(item)
            for column, value in zip(columns, row, strict=True):
                item.children.append(xmldoc.Element(column, txt=value, parent=item))
        result.attrs.append(("row_count", str(len(rows))))
        return xmldoc.toxml(result)
    if not rows:
        return "\n0 total.\n"
    lines = [",".join(columns)] + [",".join(row) for row in rows]
    return "\n".join(lines) + f"\n\n{len(rows)} total.\n"


def count(number: int) -> str:
    return f"\n{number} total.\n"
