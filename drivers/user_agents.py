"""Device kind from a SIP User-Agent: vendor knowledge as data (`drivers/data/user_agents.tsv`),
first matching rule wins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from drivers.models import DeviceKind

MAX_USER_AGENT = 512  # longer values are cut before matching (a hostile device can send 10 kB)
TABLE = "data/user_agents.tsv"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: DeviceKind
    pattern: re.Pattern[str]
    why: str


def parse_rules(text: str) -> tuple[Rule, ...]:
    """The rules of a table: `kind<TAB>pattern<TAB>why` lines; `#` starts a comment line."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{TABLE} line {number}: expected kind, pattern and why")
        kind, pattern, why = parts
        rules.append(Rule(DeviceKind(kind), re.compile(pattern, re.IGNORECASE), why))
    return tuple(rules)


@cache
def rules() -> tuple[Rule, ...]:
    return parse_rules(resources.files("drivers").joinpath(TABLE).read_text(encoding="utf-8"))


@lru_cache(maxsize=4096)  # offices have a few dozen distinct user agents, seen many times
def classify_user_agent(user_agent: str) -> DeviceKind:
    """The device kind a User-Agent names, or `unknown`."""
    text = user_agent[:MAX_USER_AGENT]
    for rule in rules():
        if rule.pattern.search(text):
            return rule.kind
    return DeviceKind.UNKNOWN
