"""The Asterisk driver: I/O only, over the AMI client; parsing lives in `parse`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import ClassVar

from drivers.asterisk import parse, wire
from drivers.asterisk.ami import AmiClient
from drivers.asterisk.conftext import UnsafeEdit
from drivers.asterisk.enforce import AsteriskEnforcer
from drivers.asterisk.features import SWITCHES, feature_lines
from drivers.asterisk.inventory import collect
from drivers.asterisk.settings import AmiConfig, AmiSettings
from drivers.base import Driver
from drivers.config_files import ConfigFiles
from drivers.errors import DriverAuthError, DriverError
from drivers.models import (
    AgentLine,
    Capability,
    EndpointSummary,
    FeaturePolicy,
    Inventory,
    PbxFacts,
    Registration,
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
        self._enforcer: AsteriskEnforcer | None = None

    def use_config_files(self, files: ConfigFiles) -> None:
        """Give the driver write access to the PBX's config folder (feature switching)."""
        self._enforcer = AsteriskEnforcer(self.ami, files)

    def feature_switches(self) -> dict[str, str]:
        return dict(SWITCHES) if self._enforcer is not None else {}

    async def feature_lines(self, feature: str, policy: FeaturePolicy) -> tuple[AgentLine, ...]:
        return feature_lines(feature, policy)

    async def switch_lines(
        self, *, add: Sequence[AgentLine] = (), remove: Sequence[AgentLine] = ()
    ) -> list[AgentLine]:
        if self._enforcer is None:
            raise UnsafeEdit("no access to the PBX's config files ([backup] source/ssh)")
        conflicts: list[AgentLine] = []
        for filename in sorted({line.file for line in [*add, *remove]}):
            conflicts += await self._enforcer.change(
                filename,
                add=[line for line in add if line.file == filename],
                remove=[line for line in remove if line.file == filename],
            )
        return conflicts

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
