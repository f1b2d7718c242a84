"""Which drivers exist: the built-in ones in an explicit map, third-party ones through the
`pbx_agent.drivers` entry-point group. No import by user-supplied string."""

from __future__ import annotations

from importlib.metadata import entry_points

from drivers.asterisk.driver import AsteriskDriver
from drivers.base import Driver
from drivers.errors import UnsupportedOperation
from drivers.freeswitch.driver import FreeswitchDriver

BUILTIN: dict[str, type[Driver]] = {"asterisk": AsteriskDriver, "freeswitch": FreeswitchDriver}
ENTRY_POINT_GROUP = "pbx_agent.drivers"


def available() -> dict[str, type[Driver]]:
    drivers = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in drivers:
            loaded = ep.load()
            if isinstance(loaded, type) and issubclass(loaded, Driver):
                drivers[ep.name] = loaded
    return drivers


def driver_class(name: str) -> type[Driver]:
    if name in BUILTIN:
        return BUILTIN[name]
    drivers = available()
    if name not in drivers:
        raise UnsupportedOperation(
            f"unknown PBX driver {name!r}; known drivers: {', '.join(sorted(drivers))}"
        )
    return drivers[name]
