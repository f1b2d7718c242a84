"""Switching subscription features on Asterisk (the `Capability.FEATURES` part of the driver
contract in `drivers.base`): `plan` chooses the mechanisms for this PBX, `changes` makes,
checks and undoes them with proofs on the live objects."""

from __future__ import annotations

from drivers.asterisk.ami import AmiClient
from drivers.asterisk.switching.changes import Changer
from drivers.asterisk.switching.plan import NO_FILES, NOT_ON_ASTERISK, Planner
from drivers.models import FeaturePolicy, SwitchPlan
from drivers.switching import Switcher

DESCRIPTIONS = {
    "softphone_app": "maintenance mode on the apps' endpoints (or an ACL), registrations cut",
    "add_extensions": "maintenance mode on endpoints added during a lapse (or an ACL)",
    "offsite_devices": "ACL on phone endpoints: only licence.lan_subnets, off-site contacts cut",
    "integrations": "ACL on the manager users in licence.integration_accounts",
}


class AsteriskSwitcher(Switcher):
    def __init__(self, ami: AmiClient, own_user: str) -> None:
        super().__init__()
        self._ami = ami
        self._own_user = own_user

    def describe(self) -> dict[str, str]:
        """How each feature is switched here, as last planned (else in general)."""
        described = {**DESCRIPTIONS, **NOT_ON_ASTERISK, **self.last_how}
        if self._files is None:
            for feature in ("offsite_devices", "integrations"):
                described.setdefault(feature, DESCRIPTIONS[feature])
                if feature not in self.last_how:
                    described[feature] = f"not switchable: {NO_FILES}"
        return described

    async def _plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        return await Planner(self._ami, self._files, self._own_user).plan(feature, policy)

    def _changer(self) -> Changer:
        return Changer(self._ami, self._files)
