"""A health check as a small state machine with flap damping: it changes state only after
`threshold` consecutive observations that disagree with the current state, and each change
is one transition (a `problem` or a `resolved` event). A problem that persists is one event,
however many polls see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["ok", "problem"]


@dataclass
class Transition:
    key: str
    to: State
    problem_id: str | None  # the problem's event id, once raised (for its resolution)


@dataclass
class CheckState:
    """One check (e.g. `trunk:provider`); `observe` returns a transition or None."""

    key: str
    threshold: int
    state: State = "ok"
    problem_id: str | None = None
    streak: int = 0

    def observe(self, healthy: bool) -> Transition | None:
        if healthy == (self.state == "ok"):
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self.threshold:
            return None
        self.streak = 0
        self.state = "ok" if healthy else "problem"
        return Transition(self.key, self.state, self.problem_id)
