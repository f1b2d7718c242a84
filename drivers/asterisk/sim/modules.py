"""Which Asterisk modules the simulated PBX runs: those its version has, minus those the office's
build lacks (`[pbx] not_built`), minus modules.conf's `noload` lines. An AMI action or CLI
command that a missing module provides does not exist (ListCommands omits it, a request gets
"Invalid/unknown command")."""

from __future__ import annotations

from drivers.asterisk.sim.base import SimContext

# Module -> (description, support level), as `module show like` prints them.
MODULES: dict[str, tuple[str, str]] = {
    "res_pjsip.so": ("Basic SIP resource", "core"),
    "res_pjsip_registrar.so": ("PJSIP Registrar Support", "core"),
    "res_pjsip_outbound_registration.so": ("PJSIP Outbound Registration Support", "core"),
    "res_pjsip_maintenance.so": ("PJSIP Endpoint Maintenance Mode", "extended"),
    "chan_pjsip.so": ("PJSIP Channel Driver", "core"),
    "chan_iax2.so": ("Inter Asterisk eXchange (Ver 2)", "core"),
    "app_voicemail.so": ("Comedian Mail (Voicemail System)", "core"),
    "app_queue.so": ("True Call Queueing", "core"),
    "app_confbridge.so": ("Conference Bridge Application", "core"),
    "res_parking.so": ("Call Parking Resource", "core"),
    "res_fax.so": ("Generic FAX Applications", "core"),
    "manager": ("Asterisk Manager Interface", "core"),
}

# res_pjsip_maintenance arrived in 20.20, 22.10 and 23.4 (fact 32): the first release of each
# branch that has it; a branch not listed has it from its first release (24+) or never (21).
MAINTENANCE_SINCE = {20: (20, 20, 0), 22: (22, 10, 0), 23: (23, 4, 0)}


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = [int(p) if p.isdigit() else 0 for p in version.split("-")[0].split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def has_maintenance(version: str) -> bool:
    """Whether this Asterisk version ships res_pjsip_maintenance."""
    numbers = version_tuple(version)
    since = MAINTENANCE_SINCE.get(numbers[0])
    if since is not None:
        return numbers >= since
    return numbers[0] >= 24


def loaded(ctx: SimContext) -> frozenset[str]:
    names = set(MODULES)
    if not has_maintenance(ctx.version):
        names.discard("res_pjsip_maintenance.so")
    names -= set(ctx.not_built)
    try:
        modules = ctx.loaded("modules.conf")
    except FileNotFoundError:
        return frozenset(names)
    for category in modules.sections("modules"):
        names -= {value for key, value in category.options if key == "noload"}
    return frozenset(names)


def is_loaded(ctx: SimContext, module: str) -> bool:
    return module in loaded(ctx)


def canonical(name: str) -> str | None:
    """`chan_iax2` / `chan_iax2.so` -> `chan_iax2.so`; None for a module we do not know."""
    candidate = name if name.endswith(".so") or name == "manager" else f"{name}.so"
    return candidate if candidate in MODULES else None
