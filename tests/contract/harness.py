"""What a vendor brings to the driver contract suite: a simulator of its acceptance office
speaking the real protocol over TCP, the settings that reach it, and the faults and life
events (restart, clean shutdown) the suite needs; for feature switching, how the office's
devices register again and how the PBX's own tooling undoes a change. Each vendor lives in
``tests/contract/vendors/<driver name>/``: ``harness.py`` defines ``Harness``, and
``expected.json`` says what its office must count, report and switch (see vendors/README.md).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drivers.config_files import ConfigFiles
from drivers.sim_faults import Faults

VENDORS = Path(__file__).parent / "vendors"


class Harness(Protocol):
    driver: str  # the registry name of the driver under test
    secret: str  # the management interface's secret for the office
    faults: Faults

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def restart(self) -> None:
        """The PBX process restarted: same address, fresh start time."""

    async def shutdown(self) -> None:
        """A clean stop: the PBX tells its sessions and stops listening."""

    def table(self) -> dict[str, Any]:
        """The driver's ``[pbx.<table>]`` keys reaching the simulator (no secret)."""
        ...

    def config_tree(self) -> Path:
        """Where the simulated PBX keeps its configuration (what backups copy)."""
        ...

    # -- feature switching ----------------------------------------------------------------

    def config_files(self) -> ConfigFiles:
        """The PBX's configuration folder as the agent reaches it (``[backup] source``)."""
        ...

    def prepare_lapse(self) -> None:
        """Put the office in the state expected.json's ``features`` describe (e.g. a phone
        registered from outside the site, when the captured office has none)."""

    def refresh(self, endpoint: str) -> dict[str, bool]:
        """Each device of `endpoint` registers again: accepted or not, by source address."""
        ...

    def registered(self, endpoint: str) -> list[str]:
        """The source addresses of `endpoint`'s live registrations."""
        ...

    async def add_extension(self) -> str:
        """The PBX's own tooling adds a phone-type extension with a registered phone; its
        endpoint name as the count report names it."""
        ...

    async def pbx_undoes(self) -> None:
        """The PBX's own tooling rewrites its configuration as it was before the agent came
        (FreePBX Apply Config, FusionPBX regenerating its files) and reloads it."""

    def runtime_switched(self) -> set[str]:
        """Objects switched in runtime state (what a restart forgets), e.g. maintenance."""
        ...


class SimulatedPbx(Protocol):
    """What a vendor simulator offers (drivers.sim_server.SimServer and its life events)."""

    faults: Faults

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def restart(self) -> None: ...

    async def shutdown(self) -> None: ...


class SimulatorHarness:
    """The usual harness: the life events are the simulator's own; a vendor adds the rest."""

    def __init__(self, simulator: SimulatedPbx) -> None:
        self.simulator = simulator
        self.faults: Faults = simulator.faults

    async def start(self) -> None:
        await self.simulator.start()

    async def stop(self) -> None:
        await self.simulator.stop()

    async def restart(self) -> None:
        await self.simulator.restart()

    async def shutdown(self) -> None:
        await self.simulator.shutdown()

    def prepare_lapse(self) -> None:
        """Nothing to prepare: the office has what its expected.json says."""


@dataclass(frozen=True)
class Vendor:
    name: str
    expected: dict[str, Any]

    def harness(self) -> Harness:
        module = importlib.import_module(f"tests.contract.vendors.{self.name}.harness")
        harness: Harness = module.Harness()
        return harness


def vendors() -> list[Vendor]:
    """Every vendor folder: a new driver passes the suite by adding one."""
    found = []
    for folder in sorted(p for p in VENDORS.iterdir() if (p / "harness.py").is_file()):
        expected = json.loads((folder / "expected.json").read_text())
        found.append(Vendor(folder.name, expected))
    return found
