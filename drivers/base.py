"""The driver contract: the operations a PBX driver may offer, and its declared capabilities.

Switching subscription features (`Capability.FEATURES`) is vendor-neutral: the agent decides
*what* must be off and journals every change; the driver decides *how* on its PBX and proves
it. The contract, in the order the agent calls it:

1. `plan_switches(feature, policy)` -> `SwitchPlan`: the strongest mechanism this PBX offers
   for the feature, chosen per PBX (version, modules, file layout, access), as a list of
   `Switch`es, plus what it cannot switch (`Unswitchable`, by name) or why it cannot switch the
   feature at all (`refused`: reason and fix), or `applicable=False` when the PBX has no such
   feature. Planning changes nothing. CUT switches name the live registrations to cut now.
2. `read_priors(switches)` -> the exact prior value of each, read from the PBX before anything
   is changed; the agent journals it (state `applying`) before calling:
3. `apply_switches(switches)` -> one `SwitchOutcome` each. Idempotent (a switch already in
   place is not made twice). Each is PROVEN on the live objects after applying (Asterisk:
   PJSIPShowEndpoint, PJSIPShowMaintenance, `manager show user`; FreeSWITCH: the directory
   as reloaded, registrations listed) - never on a reload's answer, which can say success
   while the PBX kept its old objects. A change that cannot be made or proven is put back as
   it was and reported FAILED with the reason; the driver never leaves a half change.
4. `check_switches(switches, thorough=...)` after every poll: IN_EFFECT or ABSENT for each
   switch the journal says is applied. RUNTIME switches are always checked (a restart loses
   them); `thorough` (the PBX restarted or reloaded since the last check) checks CONFIG
   switches on the live objects too. ABSENT ones are applied again by the agent, with a
   `licence` message: that is how a switch the PBX's own tooling undid (FreePBX Apply
   Config, a restart) is noticed and re-applied.
5. `undo_switches([(switch, prior)])` on renewal (and for switches no longer wanted): puts
   back exactly the prior value; a switch changed by someone else since is left alone and
   reported CONFLICT. CUT switches have nothing to undo.

Mechanisms (`SwitchKind`): CONFIG blocks in places the agent owns (never a file the PBX's
tooling generates), RUNTIME state the PBX forgets on restart, one-shot CUTs of live
registrations. Errors: `UnsafeChange` for a change refused before anything was touched,
`DriverConnectionError` when the PBX is unreachable (the agent retries after the next poll).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from drivers.config_files import ConfigFiles
from drivers.errors import DriverError, UnsupportedOperation
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
        """Give the driver access to the PBX's config folder (CONFIG switches); drivers that
        switch features another way ignore it."""

    def feature_switches(self) -> dict[str, str]:
        """How each feature would be switched on this PBX, as the driver knows it now (one line
        each, for `pbx-agent features`); a feature it cannot switch says why."""
        return {}

    async def plan_switches(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        """The switches that turn `feature` off on this PBX now (changes nothing)."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot plan")

    async def read_priors(self, switches: Sequence[Switch]) -> list[str]:
        """The exact prior value of each switch's place, read before anything is changed."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot read")

    async def apply_switches(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        """Make each switch so (idempotently) and prove it on the live objects."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot switch")

    async def check_switches(
        self, switches: Sequence[Switch], *, thorough: bool
    ) -> list[SwitchOutcome]:
        """Whether each applied switch is still in effect (RUNTIME always; CONFIG on the live
        objects when `thorough`, else from the agent-owned places)."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot check")

    async def undo_switches(
        self, applied: Sequence[tuple[Switch, str]]
    ) -> list[SwitchOutcome]:
        """Put back each (switch, prior value) exactly; CONFLICT where someone changed it."""
        self.require(Capability.FEATURES)
        raise UnsupportedOperation(f"driver {self.name!r} declares features but cannot undo")

    async def endpoints(self) -> tuple[EndpointSummary, ...]:
        self.require(Capability.ENDPOINTS)
        raise UnsupportedOperation(
            f"driver {self.name!r} declares endpoints but does not implement it"
        )
