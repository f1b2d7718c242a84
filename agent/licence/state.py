"""The licence state machine, pure: from the cached token, the time, and whether the server
answered, the state and the features that must be on.

    unknown   no valid token ever: change nothing (every feature stays as it is: on)
    active    valid, more than 60 days left
    expiring  valid, 60 days or fewer left (reminders at 60/30/14/7/1 days)
    grace     expired, but the server could not be asked (the customer may have renewed):
              nothing is switched off until `grace_days` after expiry
    lapsed    the server says lapsed/suspended, or says nothing newer than an expired token,
              or the grace period ended: every subscription feature off

A wall clock behind the newest `issued_at` seen is reported and never re-enables anything:
from `lapsed`, such an evaluation stays `lapsed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.licence.token import FEATURES, Licence

REMINDER_DAYS = (60, 30, 14, 7, 1)


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: str
    reason: str
    days_left: float | None = None
    grace_ends: datetime | None = None
    features: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FEATURES, True))

    @property
    def due_reminder(self) -> int | None:
        """The smallest reminder threshold already reached (60/30/14/7/1), if expiring."""
        if self.state != "expiring" or self.days_left is None:
            return None
        reached = [d for d in REMINDER_DAYS if self.days_left <= d]
        return min(reached) if reached else None


def evaluate(
    licence: Licence | None,
    *,
    now: datetime,
    server_answered: bool,
    grace_days: int,
    previous: str | None = None,
    newest_issued_at: datetime | None = None,
) -> Evaluation:
    result = _evaluate(licence, now=now, server_answered=server_answered, grace_days=grace_days)
    clock_behind = newest_issued_at is not None and now < newest_issued_at
    if clock_behind and previous == "lapsed" and result.state != "lapsed":
        return Evaluation(
            "lapsed",
            f"system clock is behind the newest licence issue time ({newest_issued_at}); "
            "nothing is re-enabled until it is right",
            result.days_left,
            features=dict.fromkeys(FEATURES, False),
        )
    return result


def _evaluate(
    licence: Licence | None, *, now: datetime, server_answered: bool, grace_days: int
) -> Evaluation:
    if licence is None:
        return Evaluation("unknown", "no valid licence token yet: nothing is switched")
    off = dict.fromkeys(FEATURES, False)
    days_left = (licence.expires_at - now) / timedelta(days=1)
    if licence.status != "active":
        return Evaluation(
            "lapsed", f"the licence server says {licence.status}", days_left, features=off
        )
    entitled = dict(licence.entitlements)
    if days_left <= 0:
        grace_ends = licence.expires_at + timedelta(days=grace_days)
        if server_answered:
            return Evaluation(
                "lapsed",
                f"expired on {licence.expires_at.date()} and not renewed",
                days_left,
                features=off,
            )
        if now < grace_ends:
            return Evaluation(
                "grace",
                f"expired on {licence.expires_at.date()}; the licence server cannot be reached, "
                f"so nothing is switched off before {grace_ends.date()}",
                days_left,
                grace_ends,
                entitled,
            )
        return Evaluation(
            "lapsed",
            f"expired on {licence.expires_at.date()}; "
            f"grace without contact ended {grace_ends.date()}",
            days_left,
            grace_ends,
            off,
        )
    if days_left <= REMINDER_DAYS[0]:
        return Evaluation(
            "expiring",
            f"expires on {licence.expires_at.date()} ({days_left:.0f} days)",
            days_left,
            features=entitled,
        )
    return Evaluation(
        "active", f"valid until {licence.expires_at.date()}", days_left, features=entitled
    )
