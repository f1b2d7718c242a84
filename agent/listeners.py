"""Listener lists: a service calls every listener with each result; one that fails is logged
and never stops the service or the other listeners."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

Listener = Callable[[T], Awaitable[None]]


async def notify(listeners: list[Listener[T]], value: T, what: str) -> None:
    for listener in listeners:
        try:
            await listener(value)
        except Exception:
            log.exception(
                f"{what} listener failed", listener=getattr(listener, "__qualname__", "?")
            )
