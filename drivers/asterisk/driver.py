"""The Asterisk driver: I/O only, over the AMI client; parsing lives in `parse`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import ClassVar

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.inventory import collect
from drivers.asterisk.settings import AmiConfig, AmiSettings
from drivers.asterisk.switching import AsteriskSwitcher
from drivers.base import Driver
from drivers.config_files import ConfigFiles
from drivers.errors import DriverAuthError, DriverError
from drivers.models import (
    Capability,
    EndpointSummary,
    FeaturePolicy,
    Inventory,
    PbxFacts,
    Registration,
    Switch,
    SwitchOutcome,
    SwitchPlan,
)
from drivers.settings import DriverSettings


class AsteriskDriver(Driver):
    name: ClassVar[str] = "asterisk"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.FACTS,
            Capability.ENDPOINTS,
            Capability.EVENTS,
            Capability.INVENTORY,
            Capability.REGISTRATIONS,
            Capability.FEATURES,
        }
    )
    settings_table: ClassVar[str] = "ami"
    settings_model: ClassVar[type[DriverSettings]] = AmiConfig
    default_config_dir: ClassVar[str] = "/etc/asterisk"

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> AsteriskDriver:
        if not isinstance(settings, AmiConfig):
            raise TypeError("the Asterisk driver is configured by [pbx.ami]")
        return cls(settings.to_settings())

    @classmethod
    def connection_hint(cls, settings: DriverSettings, error: DriverError) -> str:
        if isinstance(error, DriverAuthError) and isinstance(settings, AmiConfig):
            return (
                "check pbx.ami.username and its secret against manager.conf "
                f"[{settings.username}]"
            )
        return (
            "is the PBX up, the AMI enabled (manager.conf [general] enabled = yes, "
            "bindaddr, port), and the port open from this host?"
        )

    def __init__(self, settings: AmiSettings) -> None:
        self.settings = settings
        self._subscribers: list[Callable[[wire.Message], None]] = []
        self.ami = AmiClient(settings, on_event=self._on_event)
        self._switcher = AsteriskSwitcher(self.ami, settings.username)

    def use_config_files(self, files: ConfigFiles) -> None:
        """Give the driver access to the PBX's config folder (CONFIG switches)."""
        self._switcher.use_files(files)

    def feature_switches(self) -> dict[str, str]:
        return self._switcher.describe()

    async def plan_switches(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        return await self._switcher.plan(feature, policy)

    async def read_priors(self, switches: Sequence[Switch]) -> list[str]:
        return await self._switcher.priors(switches)

    async def apply_switches(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        return await self._switcher.apply(switches)

    async def check_switches(
        self, switches: Sequence[Switch], *, thorough: bool
    ) -> list[SwitchOutcome]:
        return await self._switcher.check(switches, thorough=thorough)

    async def undo_switches(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]:
        return await self._switcher.undo(applied)

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
        """Everything the counting rules need, in one round of pipelined AMI actions."""
        return await collect(self.ami, self.facts())

    def subscribe(self, callback: Callable[[wire.Message], None]) -> None:
        """Receive every unsolicited AMI event (e.g. ContactStatus, FullyBooted, Shutdown)."""
        self.require(Capability.EVENTS)
        self._subscribers.append(callback)

    def _on_event(self, message: wire.Message) -> None:
        for callback in self._subscribers:
            callback(message)
