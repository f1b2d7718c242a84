"""Directory answers -> users: ``list_users`` (pipe-separated, fact 18) and ``user_data``. Pure.

``list_users`` shows no passwords; the ``contact`` column is the live ``sofia_contact``
answer, a registration state and not an entitlement (README of the fixtures), so it is not
used to decide whether a user can register.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import ParseError
from drivers.freeswitch.parse.core import checked, no_output

LIST_USERS_HEADER = (
    "userid|context|domain|group|contact|callgroup|effective_caller_id_name|"
    "effective_caller_id_number"
)


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A directory user, as ``list_users`` shows it (no secrets)."""

    user_id: str
    context: str
    domain: str
    group: str
    callgroup: str
    callerid_name: str
    callerid_number: str

    @property
    def address(self) -> str:
        return f"{self.user_id}@{self.domain}"


def parse_list_users(text: str, warnings: list[str] | None = None) -> tuple[DirectoryUser, ...]:
    """Users in directory order, each once (a user in several groups is listed once per
    group). A row with too few columns is skipped and reported in `warnings`."""
    lines = checked("list_users", text).split("\n")
    if not lines or lines[0].strip() != LIST_USERS_HEADER:
        raise ParseError(f"list_users: unexpected header {lines[0][:80]!r}")
    if "+OK" not in (line.strip() for line in lines[1:]):
        raise ParseError("list_users: the answer does not end with +OK (cut short?)")
    users: dict[tuple[str, str], DirectoryUser] = {}
    for line in lines[1:]:
        if not line.strip() or line.strip() == "+OK":
            continue
        fields = line.split("|")
        if len(fields) < 8:
            if warnings is None:
                raise ParseError(f"list_users: a row with {len(fields)} columns: {line[:80]!r}")
            warnings.append(f"list_users: a row with {len(fields)} columns was skipped")
            continue
        # A '|' inside the caller-ID name shifts the columns: the name takes the extra ones.
        name = "|".join(fields[6:-1])
        user = DirectoryUser(
            user_id=fields[0],
            context=fields[1],
            domain=fields[2],
            group=fields[3],
            callgroup=fields[5],
            callerid_name=name,
            callerid_number=fields[-1],
        )
        users.setdefault((user.domain.lower(), user.user_id), user)
    return tuple(users.values())


def parse_flag(text: str) -> bool | None:
    """A ``user_data ... param NAME`` answer read as a boolean (FreeSWITCH's switch_true:
    true/yes/on/enabled/active/allow or a non-zero number); None when the user has no such
    parameter."""
    if no_output(text):
        return None
    value = text.strip().lower()
    if value in ("true", "yes", "on", "enabled", "active", "allow"):
        return True
    return value.isdigit() and int(value) != 0


def parse_bool(text: str) -> bool:
    """``true``/``false`` answers (domain_exists, user_exists, module_exists, acl; fact 21)."""
    value = text.strip()
    if value not in ("true", "false"):
        raise ParseError(f"expected true or false, got {value[:60]!r}")
    return value == "true"
