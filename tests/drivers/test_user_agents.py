"""The user-agent table against real user agents gathered from public sources
(tests/fixtures/user-agents/corpus.tsv: each string with its source and expected kind)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drivers.models import DeviceKind
from drivers.user_agents import MAX_USER_AGENT, classify_user_agent, parse_rules, rules

CORPUS = Path(__file__).parents[1] / "fixtures" / "user-agents" / "corpus.tsv"


def corpus() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        kind, user_agent, source, note = line.split("\t")
        rows.append((kind, user_agent, source, note))
    return rows


def test_the_corpus_is_large_sourced_and_unique() -> None:
    rows = corpus()
    assert len(rows) >= 150
    assert len({r[1] for r in rows}) == len(rows), "each string once"
    for kind, user_agent, source, _ in rows:
        assert kind in {k.value for k in DeviceKind}, user_agent
        assert source.startswith("https://") or len(source.split(" ")) == 2, (
            f"{user_agent!r}: a source is a URL or 'owner/repo path'"
        )
    kinds = Counter(r[0] for r in rows)
    assert all(kinds[k.value] for k in DeviceKind), f"every kind has examples: {kinds}"


@pytest.mark.parametrize(("kind", "user_agent", "source"), [r[:3] for r in corpus()])
def test_each_real_user_agent_gets_its_kind(kind: str, user_agent: str, source: str) -> None:
    assert classify_user_agent(user_agent).value == kind, f"{user_agent!r} from {source}"


@pytest.mark.parametrize(
    ("family", "pattern"),
    [
        ("Zoiper 3/5", "Z "),
        ("Bria / X-Lite", "Bria"),
        ("Linphone", "Linphone"),
        ("MicroSIP", "MicroSIP"),
        ("3CX", "3CXPhone"),
        ("Grandstream Wave", "Grandstream Wave"),
        ("Yealink DECT", "Yealink SIP-W"),
        ("Gigaset DECT", "C530A IP"),
        ("Panasonic DECT", "KX-TGP"),
        ("Poly conference", "Trio"),
        ("Yealink conference", "CP9"),
        ("Grandstream HT", "Grandstream HT"),
        ("Cisco SPA", "SPA1"),
        ("Cisco ATA", "ATA18"),
        ("Algo paging", "Algo"),
    ],
)
def test_the_families_the_issue_names_are_in_the_corpus(family: str, pattern: str) -> None:
    assert any(pattern in r[1] for r in corpus()), f"no {family} string in the corpus"


def test_the_issue_13_zoiper_5_example_is_an_app() -> None:
    # The user agent quoted in issue 13 (an app-only user's Zoiper 5).
    assert classify_user_agent("Z 5.6.6 v2.10.20.5") is DeviceKind.APP


def test_servers_and_door_stations_are_never_guessed_as_phones() -> None:
    for ua in ("Grandstream UCM6208V1.4A 1.0.16.20", "Algo-8186/1.7", "FPBX-2.11.0(11.20.0)"):
        assert classify_user_agent(ua) is DeviceKind.UNKNOWN


def test_a_huge_user_agent_is_cut_before_matching() -> None:
    assert classify_user_agent("x" * 100_000 + "Yealink") is DeviceKind.UNKNOWN
    assert classify_user_agent("Yealink " + "x" * 100_000) is DeviceKind.DESK_PHONE
    assert MAX_USER_AGENT == 512


def test_the_table_is_well_formed_and_a_bad_line_is_refused() -> None:
    assert len(rules()) > 40
    with pytest.raises(ValueError, match="line 1"):
        parse_rules("desk_phone\tonly two fields")
    with pytest.raises(ValueError):
        parse_rules("robot\tyealink\twhy")
