"""What every driver's feature switching shares: the plan remembered per feature (for
`pbx-agent features`), the config folder when the agent has one, and the contract's
priors / apply / check / undo handed to a fresh vendor `Changes` each time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

from drivers.config_files import ConfigFiles
from drivers.models import FeaturePolicy, Switch, SwitchOutcome, SwitchPlan


class Changes(Protocol):
    """A vendor's making, checking and undoing of switches (drivers.base's steps 2-5)."""

    async def priors(self, switches: Sequence[Switch]) -> list[str]: ...

    async def apply(self, switches: Sequence[Switch]) -> list[SwitchOutcome]: ...

    async def check(
        self, switches: Sequence[Switch], *, thorough: bool
    ) -> list[SwitchOutcome]: ...

    async def undo(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]: ...


class Switcher(ABC):
    def __init__(self) -> None:
        self._files: ConfigFiles | None = None
        self.last_how: dict[str, str] = {}

    def use_files(self, files: ConfigFiles) -> None:
        self._files = files

    async def plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        plan = await self._plan(feature, policy)
        self.last_how[feature] = plan.how or (
            f"not switchable: {plan.refused}" if plan.refused else ""
        )
        return plan

    @abstractmethod
    async def _plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan: ...

    @abstractmethod
    def _changer(self) -> Changes: ...

    async def priors(self, switches: Sequence[Switch]) -> list[str]:
        return await self._changer().priors(switches)

    async def apply(self, switches: Sequence[Switch]) -> list[SwitchOutcome]:
        return await self._changer().apply(switches)

    async def check(self, switches: Sequence[Switch], *, thorough: bool) -> list[SwitchOutcome]:
        return await self._changer().check(switches, thorough=thorough)

    async def undo(self, applied: Sequence[tuple[Switch, str]]) -> list[SwitchOutcome]:
        return await self._changer().undo(applied)
