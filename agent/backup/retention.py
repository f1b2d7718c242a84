"""Which backups to keep: the last N, plus the newest of each recent day, week, month and
year (the usual grandfather-father-son scheme). The newest good backup is always kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.config.schema import BackupConfig


@dataclass(frozen=True, slots=True)
class Policy:
    last: int
    daily: int
    weekly: int
    monthly: int
    yearly: int

    @classmethod
    def of(cls, backup: BackupConfig) -> Policy:
        """The policy in `[backup]` (the local store and the archive host share it)."""
        return cls(
            backup.keep_last,
            backup.keep_daily,
            backup.keep_weekly,
            backup.keep_monthly,
            backup.keep_yearly,
        )


def keep(backups: Sequence[tuple[str, datetime]], policy: Policy) -> set[str]:
    """The ids to keep among good backups given as (id, time)."""
    ordered = sorted(backups, key=lambda b: b[1], reverse=True)
    kept = {bid for bid, _ in ordered[: max(1, policy.last)]}
    buckets = (
        (policy.daily, lambda t: t.date().isoformat()),
        (policy.weekly, lambda t: f"{t.isocalendar()[0]}-W{t.isocalendar()[1]:02d}"),
        (policy.monthly, lambda t: f"{t.year}-{t.month:02d}"),
        (policy.yearly, lambda t: str(t.year)),
    )
    for count, period in buckets:
        seen: list[str] = []
        for bid, when in ordered:
            bucket = period(when)
            if bucket not in seen:
                seen.append(bucket)
                if len(seen) > count:
                    break
                kept.add(bid)
    return kept
