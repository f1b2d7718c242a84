"""The switch's life events beyond the registrar: a clean shutdown's events in FreeSWITCH's
order (SHUTDOWN, then the build's modules unloaded one interface at a time, mod_sofia taking
its gateways and profiles down as it goes, fact 38)."""

from __future__ import annotations

from collections.abc import Iterator

from drivers.freeswitch.sim import tables
from drivers.freeswitch.sim.events import SimEvent
from drivers.freeswitch.sim.state import SimState


def shutdown(state: SimState) -> Iterator[None]:
    """Fire the shutdown's events, yielding between unloads (the sessions get them live)."""
    state.shutting_down = True
    state.fire(
        SimEvent(
            "SHUTDOWN",
            [("Event-Info", "System Shutting Down")],
            ("switch_core.c", "switch_core_destroy", 3023),
        )
    )
    ikeys = {(i.kind, i.name): i.ikey for i in tables.interfaces()}
    events = tables.unload_events()
    last_sofia = max(
        (
            n
            for n, e in enumerate(events)
            if ikeys.get((dict(e)["type"], dict(e)["name"])) == "mod_sofia"
        ),
        default=-1,
    )
    for index, headers in enumerate(events):
        fields = dict(headers)
        state.fire(
            SimEvent(
                "MODULE_UNLOAD",
                [pair for pair in headers if pair[0] != "_line"],
                (
                    "switch_loadable_module.c",
                    "switch_loadable_module_unprocess",
                    int(fields.get("_line") or 1240),
                ),
            )
        )
        if index == last_sofia:
            sofia_teardown(state)
        yield


def sofia_teardown(state: SimState) -> None:
    """mod_sofia unloading: each gateway DOWN then deleted, then each profile unpublished."""
    profiles = sorted(
        state.profiles.values(),
        key=lambda p: [*state.office.sofia_order, p.name].index(p.name),
    )
    for profile in profiles:
        for gw in profile.gateways:
            gw.status = "DOWN"
            state.custom(
                "sofia::gateway_state",
                [("Gateway", gw.name), ("State", "DOWN"), ("Ping-Status", "DOWN")],
                ("sofia_reg.c", "sofia_reg_fire_custom_gateway_state_event", 156),
            )
        for gw in profile.gateways:
            state.custom(
                "sofia::gateway_delete",
                [("profile-name", profile.name), ("Gateway", gw.name)],
                ("sofia_reg.c", "sofia_reg_check_gateway", 343),
            )
    for profile in profiles:
        state.fire(
            SimEvent(
                "UNPUBLISH",
                [
                    ("service", "_sip._udp,_sip._tcp,_sip._sctp"),
                    ("port", profile.param("sip-port", "5060")),
                    ("module_name", "mod_sofia"),
                    ("profile_name", profile.name),
                    ("profile_uri", profile.url),
                ],
                ("sofia.c", "sofia_profile_thread_run", 3552),
            )
        )
