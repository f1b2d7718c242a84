"""The replay tests' simulator and sessions: one per test module, for the module's CAPTURE."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sim.replay import Replayer


@pytest.fixture(scope="module")
def replayer(request: pytest.FixtureRequest) -> Iterator[Replayer]:
    r = Replayer(request.module.CAPTURE)
    yield r
    r.close()
