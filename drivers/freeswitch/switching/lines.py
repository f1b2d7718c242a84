"""The agent's own text in FreeSWITCH's configuration: one ``<param>`` line in a customer's
file, or a file of its own in a folder a domain's ``<params>`` include.

A line carries a comment naming the feature and the target, so it is found again and told
apart from the customer's text. Adding it inserts exactly `text` at one offset; removing it
takes out exactly that text, so the file is byte-identical to before. A line whose comment is
there but whose text differs was edited by someone: it is left alone (a conflict). The
pre-processor runs every line holding ``x-pre-process`` even inside a comment, so the
comment never says it.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.freeswitch.switching.source import Element
from drivers.models import Switch

NOTE = "pbx-agent:"
AUTH_ACL = "auth-acl"
FORBID = "sip-forbid-register"
# An ACL list name no one defines: FreeSWITCH matches no address against it (fact 22).
REFUSE_ALL = "pbx-agent-lapsed-refuse-all"
PREFIX = "pbx-agent-"  # the agent's own files: pbx-agent-<feature>.xml


def comment(feature: str, target: str, what: str) -> str:
    # "--" cannot stand inside an XML comment (IDN domains have it: xn--...).
    target = target.replace("--", "- -")
    return (
        f"<!-- {NOTE}{feature} {target}: the support subscription lapsed; the agent removes "
        f"this {what} on renewal, do not edit it -->"
    )


def param(name: str, value: str) -> str:
    return f'<param name="{name}" value="{value}"/>'


@dataclass(frozen=True, slots=True)
class Insertion:
    """Exactly what goes where in one file."""

    offset: int
    text: str


def _indent(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    head = text[line_start:offset]
    return head[: len(head) - len(head.lstrip(" \t"))]


def first_in(text: str, params: Element, line: str) -> Insertion:
    """`line` as the first child of `params` (a domain's params: the first of a name wins
    when FreeSWITCH merges them into each user, switch_xml.c do_merge)."""
    indent = _indent(text, params.start) + "  "
    eol = "\r\n" if text[params.open_end : params.open_end + 2] == "\r\n" else "\n"
    return Insertion(params.open_end, f"{eol}{indent}{line}")


def last_in(text: str, params: Element, line: str) -> Insertion:
    """`line` as the last child of `params` (a user's own params: sofia and ``user_data``
    take the last of a name, sofia_reg.c, mod_commands.c)."""
    close = params.close_start
    line_start = text.rfind("\n", 0, close) + 1
    if text[line_start:close].strip(" \t"):
        return Insertion(close, line)  # `</params>` shares its line: the line goes before it
    end_of_previous = line_start - 1
    eol = "\n"
    if end_of_previous > 0 and text[end_of_previous - 1] == "\r":
        end_of_previous -= 1
        eol = "\r\n"
    indent = _indent(text, params.start) + "  "
    return Insertion(max(end_of_previous, 0), f"{eol}{indent}{line}")


def insert(text: str, at: Insertion) -> str:
    return text[: at.offset] + at.text + text[at.offset :]


def remove(text: str, wanted: str) -> tuple[str, str]:
    """`text` without `wanted`, and what was found: `removed`, `absent` or `edited` (its
    comment is there but the text around it differs: left alone)."""
    at = text.rfind(wanted)
    if at >= 0:
        return text[:at] + text[at + len(wanted) :], "removed"
    marker = _marker(wanted)
    return text, "edited" if marker and marker in text else "absent"


def _marker(text: str) -> str:
    start = text.find(f"<!-- {NOTE}")
    if start < 0:
        return ""
    end = text.find(":", start + len(f"<!-- {NOTE}"))
    return text[start:end] if end > 0 else ""


def own_file_text(feature: str, target: str, name: str, value: str) -> str:
    """The whole text of an agent file merged into a domain's params."""
    return (
        "<include>\n"
        f"  {comment(feature, target, 'file')}\n"
        f"  {param(name, value)}\n"
        "</include>\n"
    )


def own_file_name(folder: str, feature: str) -> str:
    return f"{folder}/{PREFIX}{feature}.xml" if folder else f"{PREFIX}{feature}.xml"


# -- what a switch's target and value say -----------------------------------------------


def own_file(switch: Switch) -> bool:
    """The switch is a whole file of the agent's (else: one line in a customer's file)."""
    return switch.value.startswith("<include>")


def domains_of(switch: Switch) -> list[str]:
    if switch.target.startswith("domains "):
        return [d.strip() for d in switch.target.removeprefix("domains ").split(",")]
    if switch.target.startswith("domain "):
        return [switch.target.removeprefix("domain ")]
    return []


def user_of(switch: Switch) -> str:
    return switch.target.removeprefix("user ") if switch.target.startswith("user ") else ""


def acl_value(switch: Switch) -> str:
    marker = f'<param name="{AUTH_ACL}" value="'
    at = switch.value.find(marker)
    return switch.value[at + len(marker) :].split('"', 1)[0] if at >= 0 else ""
