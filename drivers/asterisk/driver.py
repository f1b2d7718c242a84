"""The Asterisk driver: I/O only, over the AMI client; parsing lives in `parse`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.inventory import collect
from drivers.asterisk.settings import AmiSettings
from drivers.base import Driver
from drivers.models import Capability, EndpointSummary, Inventory, PbxFacts, Registration


class AsteriskDriver(Driver):
    name: ClassVar[str] = "asterisk"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.FACTS,
            Capability.ENDPOINTS,
            Capability.EVENTS,
            Capability.INVENTORY,
            Capability.REGISTRATIONS,
        }
    )

    def __init__(self, settings: AmiSettings) -> None:
        self.settings = settings
        self._subscribers: list[Callable[[wire.Message], None]] = []
        self.ami = AmiClient(settings, on_event=self._on_event)

    async def connect(self) -> None:
        await self.ami.connect()

    async def close(self) -> None:
        await self.ami.close()

    async def facts(self) -> PbxFacts:
        settings, status = await asyncio.gather(
            self.ami.action("CoreSettings"), self.ami.action("CoreStatus")
        )
        return parse.parse_facts(settings, status)

    async def endpoints(self) -> tuple[EndpointSummary, ...]:
        return parse.parse_endpoint_list(await self.ami.list_action("PJSIPShowEndpoints"))

    async def registrations(self) -> tuple[Registration, ...]:
        return parse.parse_registrations(
            await self.ami.list_action("PJSIPShowRegistrationsOutbound")
        )

    async def inventory(self) -> Inventory:
        """Everything the counting rules need, in one round of concurrent AMI actions."""
        return await collect(self.ami, await self.facts())

    def subscribe(self, callback: Callable[[wire.Message], None]) -> None:
        """Receive every unsolicited AMI event (e.g. ContactStatus, FullyBooted, Shutdown)."""
        self.require(Capability.EVENTS)
        self._subscribers.append(callback)

    def _on_event(self, message: wire.Message) -> None:
        for callback in self._subscribers:
            callback(message)
