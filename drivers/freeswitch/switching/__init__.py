"""Switching subscription features on FreeSWITCH (the `Capability.FEATURES` part of the driver
contract in `drivers.base`): `plan` chooses the mechanisms for this PBX from its config files,
`changes` makes, checks and undoes them with proofs on what FreeSWITCH serves."""

from __future__ import annotations

from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching.changes import Changer
from drivers.freeswitch.switching.plan import NO_FILES, NO_SOFTWARE_UPDATES, Planner
from drivers.models import FeaturePolicy, SwitchPlan
from drivers.switching import Switcher

DESCRIPTIONS = {
    "softphone_app": "an auth-acl no address passes on the apps' own directory users "
    "(reloadxml, proven with user_data and acl), their registrations flushed",
    "add_extensions": "an auth-acl no address passes on directory users added during a lapse, "
    "their registrations flushed",
    "offsite_devices": "auth-acl on each domain: only licence.lan_subnets (reloadxml, proven "
    "with user_data and acl), off-site registrations flushed",
    "integrations": "not switchable: FreeSWITCH's event socket has one password for every "
    "client and reads its ACL only when the module loads",
    "remote_portal": "FreeSWITCH has none; FusionPBX's web portal is its web server's",
    "software_updates": NO_SOFTWARE_UPDATES,
}
NEEDS_FILES = ("softphone_app", "add_extensions", "offsite_devices")


class FreeswitchSwitcher(Switcher):
    def __init__(self, esl: EslClient, settings: EslSettings, conf_dir: str) -> None:
        super().__init__()
        self._esl = esl
        self._settings = settings
        self._conf_dir = conf_dir

    def describe(self) -> dict[str, str]:
        """How each feature is switched here, as last planned (else in general)."""
        described = {**DESCRIPTIONS, **self.last_how}
        if self._files is None:
            for feature in NEEDS_FILES:
                if feature not in self.last_how:
                    described[feature] = f"not switchable: {NO_FILES}"
        return described

    async def _plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        planner = Planner(self._esl, self._files, self._settings, self._conf_dir)
        return await planner.plan(feature, policy)

    def _changer(self) -> Changer:
        return Changer(self._esl, self._files, self._settings, self._conf_dir)
