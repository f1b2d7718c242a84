"""Pure checks behind a config change: which section a switch extends, what GetConfig must show
after the agent's blocks are added or removed (nothing else may differ), and the agent's
manager rules as `manager show user` prints them."""

from __future__ import annotations

from collections.abc import Sequence

from drivers.asterisk.switching import blocks, live
from drivers.models import Switch


def category(switch: Switch) -> tuple[str, str]:
    """(section name, section type) a CONFIG switch extends."""
    if switch.target.startswith("manager user "):
        return switch.target.removeprefix("manager user "), ""
    return switch.target.removeprefix("endpoint "), "endpoint"


def ours(switch: Switch) -> list[tuple[str, str]]:
    """The agent's rules of a manager block as `manager show user` prints them."""
    return [
        ("allow" if key == "permit" else "deny", live.ha_rule(value))
        for key, value in blocks.options(switch.value)
    ]


def unexpected(
    before: live.Effective,
    after: live.Effective,
    added: Sequence[Switch],
    removed: Sequence[Switch],
) -> str | None:
    """What differs between `before` and `after` beyond the agent's own options, or None."""
    if [(n, k) for n, k, _ in after] != [(n, k) for n, k, _ in before]:
        return "the set of sections Asterisk reads would change"
    expected = [list(options) for _, _, options in before]
    index = _index(before)
    for switch in added:
        at = index.get(category(switch))
        if at is None:
            return f"{switch.target} is not in the configuration"
        expected[at] += blocks.options(switch.value)
    for switch in removed:
        at = index.get(category(switch))
        if at is None:
            continue
        expected[at] = _without(expected[at], blocks.options(switch.value))
    changed = [
        f"[{name}]" + (f" ({kind})" if kind else "")
        for (name, kind, options), wanted in zip(after, expected, strict=True)
        if list(options) != wanted
    ]
    if changed:
        return "it would also change " + ", ".join(changed[:10])
    return None


def _index(sections: live.Effective) -> dict[tuple[str, str], int]:
    """(name, type) -> position; manager users are found by name alone (type "")."""
    index: dict[tuple[str, str], int] = {}
    for i, (name, kind, _) in enumerate(sections):
        index.setdefault((name, kind), i)
    return index


def _without(options: list[tuple[str, str]], block: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`options` with the last contiguous run equal to `block` taken out."""
    size = len(block)
    for start in range(len(options) - size, -1, -1):
        if options[start : start + size] == block:
            return options[:start] + options[start + size :]
    return options
