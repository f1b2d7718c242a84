"""The driver contract: the operations a PBX driver may offer, and its declared capabilities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from drivers.config_files import ConfigFiles
from drivers.errors import DriverError, UnsupportedOperation
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


class Driver(ABC):
    """A connection to one PBX.

    Subclasses set `name` and `capabilities` and implement the operations they declare;
    the default implementations raise `UnsupportedOperation`. Call `require` before an
    optional operation when the caller wants the check without the call.

    How a driver is configured is declared too, so the agent builds any driver without
    knowing its vendor: `settings_table` names its ``[pbx.<table>]``, `settings_model`
    validates it, `from_settings` builds the driver from the validated table, and
    `default_config_dir` is where the PBX keeps its configuration (what backups copy).
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    settings_table: ClassVar[str] = ""
    settings_model: ClassVar[type[DriverSettings]] = DriverSettings
    default_config_dir: ClassVar[str] = ""

    @classmethod
    def from_settings(cls, settings: DriverSettings) -> Driver:
        """The driver for its validated ``[pbx.<settings_table>]`` (secret loaded)."""
        raise UnsupportedOperation(f"driver {cls.name!r} cannot be built from settings")

    @classmethod
    def connection_hint(cls, settings: DriverSettings, error: DriverError) -> str:
        """What a technician should check when connecting failed with `error` (diag)."""
        return "is the PBX up, its management interface enabled, and its port open from here?"

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise UnsupportedOperation(f"driver {self.name!r} does not support {capability.value}")

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection and authenticate; raises `DriverConnectionError` subclasses."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection; never raises."""

    async def facts(self) -> PbxFacts:
        self.require(Capability.FACTS)
        raise UnsupportedOperation(f"driver {self.name!r} declares facts but does not implement it")

    async def inventory(self) -> Inventory:
        self.require(Capability.INVENTORY)
        raise UnsupportedOperation(
            f"driver {self.name!r} declares inventory but does not implement it"
        )

    async def registrations(self) -> tuple[Registration, ...]:
        """The PBX's outbound (trunk) registrations and their state."""
        self.require(Capability.REGISTRATIONS)
        raise UnsupportedOperation(
            f"driver {self.name!r} declares registrations but does not implement it"
        )

    def use_config_files(self, files: ConfigFiles) -> None:  # noqa: B027 - optional hook
        """Give the driver write access to the PBX's config folder (feature switching);
        drivers that switch features another way ignore it."""

    def feature_switches(self) -> dict[str, str]:
        """The subscription features this driver can switch on this PBX, each with how."""
        return {}

    async def feature_lines(self, feature: str, policy: FeaturePolicy) -> tuple[AgentLine, ...]:
        """The config lines that switch `feature` off (raises when it cannot be switched)."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but has no lines")

    async def switch_lines(
        self, *, add: Sequence[AgentLine] = (), remove: Sequence[AgentLine] = ()
    ) -> list[AgentLine]:
        """Apply agent lines safely; the removals not found as written (conflicts)."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot switch")

    async def endpoints(self) -> tuple[EndpointSummary, ...]:
        self.require(Capability.ENDPOINTS)
        raise UnsupportedOperation(
            f"driver {self.name!r} declares endpoints but does not implement it"
        )
