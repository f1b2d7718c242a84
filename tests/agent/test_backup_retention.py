"""Retention keeps the last N plus the newest per day/week/month/year, never the newest good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.backup.retention import Policy, keep

START = datetime(2025, 1, 1, 2, 30, tzinfo=UTC)


def daily(days: int) -> list[tuple[str, datetime]]:
    return [(f"b{i:04d}", START + timedelta(days=i)) for i in range(days)]


def test_keep_last_only() -> None:
    backups = daily(10)
    assert keep(backups, Policy(3, 0, 0, 0, 0)) == {"b0009", "b0008", "b0007"}


def test_grandfather_father_son() -> None:
    backups = daily(800)  # more than two years of nightly backups
    kept = keep(backups, Policy(last=2, daily=7, weekly=4, monthly=12, yearly=3))
    newest = max(backups, key=lambda b: b[1])[0]
    assert newest in kept
    assert len(kept) <= 2 + 7 + 4 + 12 + 3
    years = {when.year for bid, when in backups if bid in kept}
    assert years == {2025, 2026, 2027}


def test_the_newest_good_backup_is_always_kept() -> None:
    assert keep([("only", START)], Policy(0, 0, 0, 0, 0)) == {"only"}


def test_several_backups_in_one_day_keep_the_newest_of_the_day() -> None:
    same_day = [(f"h{h}", START + timedelta(hours=h)) for h in range(5)]
    assert keep(same_day, Policy(1, 1, 0, 0, 0)) == {"h4"}
