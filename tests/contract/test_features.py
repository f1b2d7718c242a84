"""The place of feature switching in the driver contract.

Switching a subscription feature off on a lapse, undoing it exactly on renewal, and
converging after a crash in the middle are part of what a driver must do (SPEC section 6).
The vendor-neutral contract for it is being redesigned (issue 12: drivers/base.py's feature
methods and drivers/models.py); once it lands, its tests go here, parametrized over the
vendor folders like test_contract.py: switch each feature the driver declares on the
acceptance office and prove it on the live PBX objects, undo it and compare the PBX's
config byte for byte, and SIGKILL the agent between journal and change.

What holds today, for every driver: an operation a driver does not declare is refused.
"""

from __future__ import annotations

import pytest

from drivers.errors import UnsupportedOperation
from drivers.models import Capability, FeaturePolicy
from drivers.registry import driver_class
from tests.contract.conftest import VENDORS, Rig

WITHOUT_FEATURES = [
    v for v in VENDORS if Capability.FEATURES not in driver_class(v.name).capabilities
]


@pytest.mark.parametrize(
    "rig", WITHOUT_FEATURES, ids=[v.name for v in WITHOUT_FEATURES], indirect=True
)
async def test_undeclared_feature_switching_is_refused(rig: Rig) -> None:
    driver = rig.driver()
    assert driver.feature_switches() == {}
    with pytest.raises(UnsupportedOperation):
        await driver.feature_lines("softphone_app", FeaturePolicy())
    with pytest.raises(UnsupportedOperation):
        await driver.switch_lines()
