"""What a real Asterisk charges for GetConfig, and how it delivers an answer, so a benchmark
against the simulator shows the PBX's own cost (off unless the office asks for it: the
simulator then answers from memory, each answer written whole).

`action_getconfig` (`main/manager.c`) loads the file afresh on every call
(``CONFIG_FLAG_NOCACHE``): it reads it and its includes and copies each template's variables
into the sections that use it, then applies the filter, and only then writes its answer. So
every GetConfig costs the whole file, whatever its filter selects. Measured on Asterisk
22.10.1 (issue 19): about 235 ms per GetConfig of a 10,000-extension pjsip.conf (endpoint,
auth and AOR from templates: about 28 variables per extension once the templates are copied,
~18 for the endpoint from its 804-byte answer, ~5 each for auth and AOR), and the two filtered
calls that selected nothing still took 0.48 s together. Model: the answer waits
`MEASURED_SECONDS_PER_VARIABLE` (0.235 s / 280,000 = 0.84 us) per variable loaded, templates
expanded.

Asterisk writes an answer as it makes it (`astman_append` sends each line), so a client reads
the first lines while the PBX makes the rest; in this mode the simulator likewise hands each
answer to the socket in pieces (`pieces`), waiting for the socket between them.

Office file::

    [pbx]
    getconfig_cost = "asterisk"   # the measured model; or microseconds per loaded variable
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from drivers.asterisk.sim.base import SimContext
from drivers.asterisk.sim.conffile import ConfFile, ConfigInvalid
from drivers.asterisk.sim.office import Office
from drivers.asterisk.wire import EOL, Message, get
from drivers.sim_server import OfficeError

MEASURED_SECONDS_PER_VARIABLE = 0.235 / (10_000 * 28)
CHARGED_ACTIONS = frozenset({"getconfig", "getconfigjson"})


@dataclass
class GetConfigCost:
    """Seconds a GetConfig waits before its answer: `per_variable` times the variables of the
    file as Asterisk loads it (counted once per parsed version of the file)."""

    per_variable: float
    _sizes: dict[str, tuple[ConfFile, int]] = field(default_factory=dict)  # by file name

    @classmethod
    def from_office(cls, office: Office) -> GetConfigCost | None:
        """The office's `[pbx] getconfig_cost`; None when absent (no charge). Raises
        OfficeError for a value that is neither "asterisk" nor a number of microseconds."""
        setting = office.raw.get("pbx", {}).get("getconfig_cost")
        if setting is None:
            return None
        if setting == "asterisk":
            return cls(MEASURED_SECONDS_PER_VARIABLE)
        if isinstance(setting, int | float) and not isinstance(setting, bool) and setting >= 0:
            return cls(setting / 1e6)
        raise OfficeError(
            f'{office.path}: [pbx] getconfig_cost: "asterisk" or microseconds per variable, '
            f"not {setting!r}"
        )

    def charge(self, ctx: SimContext, request: Message) -> float:
        """Seconds the PBX spends loading the file before it answers `request` (0 for other
        actions and for files it cannot load)."""
        if (get(request, "Action") or "").strip().lower() not in CHARGED_ACTIONS:
            return 0.0
        try:
            conf = ctx.config.read((get(request, "Filename") or "").strip())
        except (FileNotFoundError, ConfigInvalid):
            return 0.0
        known = self._sizes.get(conf.filename)
        if known is None or known[0] is not conf:  # a new version of the file
            known = (conf, sum(len(conf.expanded(c)) for c in conf.categories))
            self._sizes[conf.filename] = known
        return known[1] * self.per_variable


PIECE = 64 * 1024
FIELDS_PER_STEP = 512


def pieces(messages: list[Message], size: int = PIECE) -> Iterator[bytes]:
    """The bytes of `messages` (exactly `wire.encode` of each, in order) in pieces of about
    `size`, made as they are asked for: a 500,000-line GetConfig is never encoded whole."""
    pending: list[bytes] = []
    held = 0
    for message in messages:
        for start in range(0, len(message), FIELDS_PER_STEP):
            lines = [
                (f"{k}: {v}" if k else v).encode() + EOL
                for k, v in message[start : start + FIELDS_PER_STEP]
            ]
            pending += lines
            held += sum(map(len, lines))
            if held >= size:
                yield b"".join(pending)
                pending, held = [], 0
        pending.append(EOL)
        held += len(EOL)
    if pending:
        yield b"".join(pending)
