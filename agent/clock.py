"""The agent's clock seam: services that decide by the time of day (schedules, retention,
lapse policies, expiry checks) take a `Clock` instead of calling `datetime.now()`, so tests
move time forward in-process, without sleeping and without faking the system clock.

Only wall-clock *decisions* go through it; timeouts and intervals measured with
`time.monotonic()` or `asyncio.sleep()` stay as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK: Clock = SystemClock()
