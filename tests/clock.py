"""A clock the tests move by hand (the agent's `Clock` seam, `agent/clock.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class ManualClock:
    at: datetime

    def now(self) -> datetime:
        return self.at

    def __call__(self) -> datetime:  # for services that take a callable clock
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at
