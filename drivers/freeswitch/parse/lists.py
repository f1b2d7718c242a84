"""Module listings -> queue names: ``callcenter_config queue list`` (pipe-separated, ends in
``+OK`` with no blank line, fact 19) and ``fifo list`` (an XML report). Pure."""

from __future__ import annotations

import re

from drivers.errors import ParseError
from drivers.freeswitch.parse.core import checked

_FIFO = re.compile(r'<fifo name="([^"]*)"')


def parse_pipe_table(command: str, text: str) -> list[dict[str, str]]:
    """Rows of a ``callcenter_config ... list`` answer as dicts keyed by its header."""
    lines = [line for line in checked(command, text).split("\n") if line.strip()]
    if not lines or lines[-1].strip() != "+OK":
        raise ParseError(f"{command}: the answer does not end with +OK")
    if len(lines) == 1:  # "+OK" alone: nothing listed
        return []
    header = lines[0].split("|")
    rows = []
    for line in lines[1:-1]:
        fields = line.split("|")
        if len(fields) != len(header):
            raise ParseError(f"{command}: a row with {len(fields)} of {len(header)} columns")
        rows.append(dict(zip(header, fields, strict=True)))
    return rows


def parse_callcenter_queues(text: str) -> tuple[str, ...]:
    rows = parse_pipe_table("callcenter_config queue list", text)
    return tuple(row["name"] for row in rows if row.get("name"))


def parse_fifo_names(text: str) -> tuple[str, ...]:
    body = checked("fifo list", text)
    if "<fifo_report" not in body:
        raise ParseError(f"fifo list: not a fifo report: {body.strip()[:80]!r}")
    return tuple(_FIFO.findall(body))
