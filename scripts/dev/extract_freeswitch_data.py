#!/usr/bin/env python3
"""Regenerate drivers/freeswitch/sim/data/ from the captured FreeSWITCH 1.10.12 answers: what
the build offers, which no office description holds.

- interfaces.tsv: every interface the modules register (``show modules``), with the
  description and syntax ``show api`` gives for apis;
- complete.tsv: the tab-completion table (``show complete as xml``);
- unload.jsonl: the MODULE_UNLOAD events of a shutdown, in the order FreeSWITCH fires them
  (module by module, each interface with the fields it carries, and as "_line" the source
  line that fired it), until the event socket itself is unloaded.

Usage: scripts/dev/extract_freeswitch_data.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from drivers.freeswitch import wire  # noqa: E402

TRANSCRIPTS = ROOT / "tests/fixtures/freeswitch-esl/transcripts"
OUT = ROOT / "drivers/freeswitch/sim/data"
HEADERS = ("Event-", "Core-UUID", "FreeSWITCH-")


def body(name: str) -> str:
    messages = list(wire.Framer().feed((TRANSCRIPTS / f"{name}.txt").read_bytes()))
    return messages[0].text()


def csv_rows(text: str) -> list[list[str]]:
    lines = text.split("\n")
    return [line.split(",", 3) for line in lines[1:] if line and not line.endswith(" total.")]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    modules = csv_rows(body("api_show_modules"))
    ikeys = {row[2] for row in modules}
    apis: dict[str, tuple[str, str]] = {}
    pending = ""
    for line in body("api_huge_show_api").split("\n")[1:]:
        if not pending and (not line or line.endswith(" total.")):
            continue
        # name,description,syntax,ikey: a syntax may span lines and hold commas, so a row
        # ends at a line ending in ",<ikey>"
        pending = f"{pending}\n{line}" if pending else line
        head, _, ikey = pending.rpartition(",")
        if ikey not in ikeys:
            continue
        name, _, rest = head.partition(",")
        apis[name] = (rest, ikey)
        pending = ""
    unload: list[list[tuple[str, str]]] = []
    for message in wire.Framer().feed((TRANSCRIPTS / "events_plain_all_shutdown.txt").read_bytes()):
        if message.content_type != wire.EVENT_PLAIN:
            continue
        event = wire.decode_event(message)
        if event.get("Event-Name") == "MODULE_UNLOAD":
            # where it was fired from differs per interface type: keep it, as "_line"
            line = ("_line", event.get("Event-Calling-Line-Number") or "")
            unload.append([line, *((k, v) for k, v in event.headers if not k.startswith(HEADERS))])
    described = {(dict(e)["type"], dict(e)["name"]): dict(e) for e in unload}
    lines = ["# type\tname\tikey\tfilename\tdescription\tsyntax (extract_freeswitch_data.py)"]
    for kind, name, ikey, filename in modules:
        info = described.get((kind, name), {})
        description, syntax = info.get("description", ""), info.get("syntax", "")
        if kind == "api" and name in apis:
            both = apis[name][0]  # "description,syntax" as show api joins them
            if not description or not both.startswith(description + ","):
                description, _, syntax = both.partition(",")
            else:
                syntax = both[len(description) + 1 :]
        fields = (kind, name, ikey, filename, description, syntax)
        lines.append("\t".join(json.dumps(f) if "\n" in f or "\t" in f else f for f in fields))
    (OUT / "interfaces.tsv").write_text("\n".join(lines) + "\n")

    rows = re.findall(
        r"<row row_id=\"\d+\">(.*?)</row>", body("api_huge_show_complete_as_xml"), re.S
    )
    complete = ["# sticky\ta1..a10 (extract_freeswitch_data.py)"]
    for row in rows:
        cells = dict(re.findall(r"<(\w+)>(.*?)</\1>", row, re.S))
        values = [cells.get("sticky", "0"), *(cells.get(f"a{i}", "") for i in range(1, 11))]
        complete.append("\t".join(values))
    (OUT / "complete.tsv").write_text("\n".join(complete) + "\n")

    (OUT / "unload.jsonl").write_text("".join(json.dumps(e) + "\n" for e in unload))
    print(f"{len(lines) - 1} interfaces, {len(complete) - 1} completions, {len(unload)} unloads")


if __name__ == "__main__":
    main()
