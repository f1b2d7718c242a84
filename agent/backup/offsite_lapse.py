"""The archive's lapse policy: when the licence's `config_archive` feature went off, what the
explicit `[backup.offsite] lapse` policy does about it (`keep`: nothing; `delete`: this site's
copies are removed `lapse_delete_days` after the lapse began), and the `licence` messages
that tell each step. The lapse's start is kept in the state store, so a restart does not move
the deletion date."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from agent.config.schema import OffsiteConfig
from agent.listeners import Listener, notify
from agent.state import StateStore

log = structlog.get_logger(__name__)

LAPSE_SINCE = "offsite_lapse_since"  # meta key: when config_archive was first seen off


@dataclass(frozen=True, slots=True)
class Lapse:
    since: datetime
    delete_at: datetime | None  # None under `lapse = "keep"`

    def due(self, now: datetime) -> bool:
        return self.delete_at is not None and now >= self.delete_at

    @property
    def note(self) -> str:
        """The off-site state of a local backup during the lapse."""
        if self.delete_at is None:
            return "config_archive is off (licence lapse); the archive host keeps its copies"
        return (
            "config_archive is off (licence lapse); copies on the archive host are deleted "
            f"from {self.delete_at.date()}"
        )


class LapseTracker:
    def __init__(self, store: StateStore, offsite: Callable[[], OffsiteConfig]) -> None:
        self._store = store
        self._offsite = offsite
        # `licence` message bodies (action, summary, details); the daemon adds the state.
        self.listeners: list[Listener[dict[str, Any]]] = []

    async def current(self, allowed: bool, now: datetime, copies: int) -> Lapse | None:
        """The lapse in force (None while config_archive is on); a `licence` message when a
        lapse begins (`copies`: how many the archive host holds) or ends."""
        since_text = await self._store.get_meta(LAPSE_SINCE)
        offsite = self._offsite()
        if allowed:
            if since_text:
                await self._store.set_meta(LAPSE_SINCE, "")
                await self.tell(
                    "archive_resumed",
                    "config_archive is on again: off-site copies resume, and the backups "
                    "taken during the lapse are uploaded (newest first)",
                    lapse_began=since_text,
                )
            return None
        since = datetime.fromisoformat(since_text) if since_text else now
        delete_at = None
        if offsite.lapse == "delete":
            delete_at = since + timedelta(days=offsite.lapse_delete_days)
        if not since_text:
            await self._store.set_meta(LAPSE_SINCE, since.isoformat())
            plan = (
                f"this site's {copies} copies there are deleted on {delete_at.date()} "
                f"(lapse = delete after {offsite.lapse_delete_days} days)"
                if delete_at is not None
                else f"the archive host keeps this site's {copies} copies (lapse = keep)"
            )
            await self.tell(
                "archive_lapse",
                f"config_archive is off: off-site copies stop; {plan}",
                delete_at=delete_at.isoformat() if delete_at else None,
            )
        return Lapse(since, delete_at)

    def deletion_reason(self, lapse: Lapse) -> str:
        return (
            f"licence lapse policy: delete {self._offsite().lapse_delete_days} days after the "
            f"lapse began on {lapse.since.date()}"
        )

    async def tell(self, action: str, summary: str, **details: Any) -> None:
        log.info("off-site lapse policy: " + action, summary=summary)
        body = {
            "action": action,
            "summary": summary,
            "details": {"policy": self._offsite().lapse, **details},
        }
        await notify(self.listeners, body, "licence")
