#!/usr/bin/env python3
"""Regenerate drivers/asterisk/sim/data/pjsip_fields.json from the captured PJSIPShowEndpoint
answers and the fixture office's pjsip.conf.

For each detail event type (endpoint, auth, aor, transport) it records the field order
Asterisk 22 uses (deterministic per type) and each field's default: the value shown by an
object whose configuration does not set the matching option. The simulator then shows the
configured value where an option is set, formatted like the default (true/false, yes/no ...).
Usage: scripts/dev/extract_pjsip_fields.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/asterisk-ami"
OUT = ROOT / "drivers/asterisk/sim/data/pjsip_fields.json"
TYPES = {
    "EndpointDetail": "endpoint",
    "AuthDetail": "auth",
    "AorDetail": "aor",
    "TransportDetail": "transport",
    "OutboundRegistrationDetail": "registration",
}
# Captured before any UpdateConfig changed the files.
SOURCES = [
    "pjsip_show_endpoint_registered_two_contacts_same_aor",
    "pjsip_show_endpoint_registered",
    "pjsip_show_endpoint_registered_separate_app_endpoint",
    "pjsip_show_endpoint_registered_unreachable",
    "pjsip_show_endpoint_unregistered",
    "pjsip_show_endpoint_unused_max_contacts_0",
    "pjsip_show_endpoint_unregistered_app_endpoint",
    "pjsip_show_endpoint_dect_107",
    "pjsip_show_endpoint_trunk",
    "pjsip_show_registrations_outbound",
]


# Asterisk's own defaults for options every captured object sets (from its documentation).
ASTERISK_DEFAULTS = {
    "endpoint": {
        "Aors": "",
        "Context": "default",
        "RtpSymmetric": "false",
        "Transport": "",
        "Allow": "(nothing)",
        "DirectMedia": "true",
    },
    "aor": {"QualifyFrequency": "0"},
    "auth": {"Username": "", "AuthType": "userpass", "Password": ""},
    "transport": {"Cos": "0", "Protocol": "udp", "Bind": "", "Tos": "0"},
    "registration": {
        "ClientUri": "",
        "ServerUri": "",
        "Transport": "",
        "OutboundAuth": "",
        "ContactUser": "",
        "Expiration": "3600",
        "RetryInterval": "60",
        "ForbiddenRetryInterval": "0",
        "FatalRetryInterval": "0",
        "MaxRetries": "10",
        "AuthRejectionPermanent": "true",
        "Line": "false",
        "Endpoint": "",
    },
}


def camel(option: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in option.split("_"))


def effective_options() -> dict[tuple[str, str], set[str]]:
    """(object name, type) -> option names set for it, templates included."""
    sections: list[tuple[str, list[str], list[tuple[str, str]], bool]] = []
    current = None
    for raw in (FIXTURES / "pbx-config/pjsip.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        header = re.match(r"^\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if header:
            opts = [o.strip() for o in (header[2] or "").split(",") if o.strip()]
            current = (header[1], [o for o in opts if o != "!"], [], "!" in opts)
            sections.append(current)
        elif current and "=" in line:
            key, value = line.split("=", 1)
            current[2].append((key.strip(), value.strip()))
    templates = {s[0]: s for s in sections if s[3]}

    def expand(
        section: tuple[str, list[str], list[tuple[str, str]], bool],
    ) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for t in section[1]:
            pairs += expand(templates[t])
        return pairs + section[2]

    result: dict[tuple[str, str], set[str]] = {}
    for section in sections:
        if not section[3]:
            pairs = expand(section)
            kind = dict(pairs).get("type", "")
            result[(section[0], kind)] = {k for k, _ in pairs}
    return result


def main() -> None:
    options_by_name = effective_options()
    table: dict[str, dict[str, object]] = {}
    for source in SOURCES:
        data = (FIXTURES / "transcripts" / f"{source}.txt").read_bytes().decode()
        for block in data.split("\r\n\r\n"):
            pairs = [
                line.split(": ", 1) if ": " in line else [line.rstrip(":"), ""]
                for line in block.split("\r\n")
                if line
            ]
            fields = dict(pairs)
            kind = TYPES.get(fields.get("Event", ""))
            if kind is None:
                continue
            entry = table.setdefault(kind, {"order": [], "defaults": {}})
            order = [k for k, _ in pairs if k not in ("Event", "ActionID")]
            if not entry["order"]:
                entry["order"] = order
            if kind == "auth" and order[-1] != "EndpointName":
                continue  # the AuthDetail inside a registration list has no EndpointName
            assert entry["order"] == order, f"{kind}: field order differs in {source}"
            configured = options_by_name.get((fields["ObjectName"], kind), set())
            configured_camel = {camel(o) for o in configured}
            for key, value in pairs:
                if key in ("Event", "ActionID") or key in configured_camel:
                    continue
                entry["defaults"].setdefault(key, value)  # type: ignore[union-attr]
    for kind, defaults in ASTERISK_DEFAULTS.items():
        for key, value in defaults.items():
            table[kind]["defaults"].setdefault(key, value)  # type: ignore[union-attr]
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(
        f"wrote {OUT.relative_to(ROOT)}: "
        + ", ".join(f"{k} {len(v['order'])} fields" for k, v in table.items())
    )


if __name__ == "__main__":
    main()
