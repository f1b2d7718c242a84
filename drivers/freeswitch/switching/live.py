"""What the running FreeSWITCH says, for switching: the directory as it serves it now
(``user_data``, never ``xml_locate directory``, which returns passwords: fact 40), ACL
checks, ``reloadxml`` (whose failure still starts with ``+OK``: facts 13, 22), registered
devices and ``flush_inbound_reg``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.config_files import ConfigFiles
from drivers.errors import CommandError
from drivers.freeswitch import parse
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching.source import Outline, read_outline

BATCH = 500
SAFE_ARG = re.compile(r"^[^\s|{}()$'\"]+$")  # sent as one word of an api line
RELOAD_OK = "[Success]"


def safe(value: str) -> bool:
    return bool(SAFE_ARG.match(value))


async def outline(esl: EslClient, files: ConfigFiles, conf_dir: str) -> Outline:
    """The directory's outline; core variables the files use are asked of FreeSWITCH, and
    where it keeps its configuration (absolute includes are read relative to it)."""
    answer = (await esl.api("global_getvar conf_dir")).strip()
    if answer.startswith("/") and not parse.no_output(answer):
        conf_dir = answer
    known: dict[str, str] = {"conf_dir": conf_dir}
    result, missing = await asyncio.to_thread(read_outline, files, known.get, conf_dir)
    if missing:
        names = sorted(missing)
        answers = await esl.api_many([f"global_getvar {n}" for n in names])
        known |= {n: a.strip() for n, a in zip(names, answers, strict=True) if a.strip()}
        known = {n: v for n, v in known.items() if not parse.no_output(v)}
        result, _ = await asyncio.to_thread(read_outline, files, known.get, conf_dir)
    return result


async def user_values(esl: EslClient, addresses: Sequence[str], kind: str, name: str) -> list[str]:
    """``user_data U@D KIND NAME`` for each address ("" when unset). Only for names whose
    values are no secret (``auth-acl``, ``sip-forbid-register``)."""
    answers: list[str] = []
    for start in range(0, len(addresses), BATCH):
        chunk = addresses[start : start + BATCH]
        answers += await esl.api_many([f"user_data {a} {kind} {name}" for a in chunk])
    return ["" if parse.no_output(a) else a.strip() for a in answers]


async def users_of(esl: EslClient, domain: str) -> list[str]:
    """The user ids of `domain` as FreeSWITCH serves its directory now."""
    users = parse.parse_list_users(await esl.api(f"list_users domain {domain}"), [])
    return [u.user_id for u in users]


async def acl_allows(esl: EslClient, checks: Sequence[tuple[str, str]]) -> list[bool]:
    """``acl ADDRESS LIST`` for each (address, list or CIDRs) (fact 21: true/false)."""
    if not checks:
        return []
    answers = await esl.api_many([f"acl {ip} {acl}" for ip, acl in checks])
    return [a.strip() == "true" for a in answers]


async def reloadxml(esl: EslClient) -> tuple[bool, str]:
    """(loaded, FreeSWITCH's answer). A failed reload keeps the previous tree and still
    answers ``+OK [...]`` (fact 22): only ``[Success]`` means the files were loaded."""
    answer = (await esl.api("reloadxml")).strip()
    return RELOAD_OK in answer, answer[:300]


async def module_loaded(esl: EslClient, module: str) -> bool:
    try:
        return parse.parse_bool(await esl.api(f"module_exists {module}"))
    except CommandError:
        return False


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device, as the agent keeps it in a cut's journal entry (no secret)."""

    profile: str
    row: parse.RegistrationRow

    @property
    def address(self) -> str:
        return f"{self.row.user_id}@{self.row.realm}".lower()


async def devices(esl: EslClient, settings: EslSettings) -> list[Device]:
    """Every registered device of the profiles the agent reads (``sofia xmlstatus``,
    fact 24: one row per Contact)."""
    sofia = parse.parse_sofia_status(await esl.api("sofia status"))
    running = [e.name for e in sofia if e.kind == "profile"]
    found: list[Device] = []
    for profile in [p for p in settings.profiles or running if p in running and safe(p)]:
        answer = await esl.api(f"sofia xmlstatus profile {profile} reg")
        found += [Device(profile, row) for row in parse.parse_registrations(answer, [])]
    return found


async def flush(esl: EslClient, profile: str, call_id: str) -> str:
    return (await esl.api(f"sofia profile {profile} flush_inbound_reg {call_id}")).strip()
