"""Cutting live registrations (CUT switches): which devices, only by a Call-ID that matches no
one else (``flush_inbound_reg`` also reads a Call-ID ``user@host`` as that user: sofia_reg.c
sofia_reg_expire_call_id, read in the source, not captured), only when FreeSWITCH would
refuse the device's next REGISTER (else it would come back at once), proven by listing the
registrations again (fixture lapse_06/07)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from drivers.freeswitch import parse
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching import live
from drivers.freeswitch.switching.lines import AUTH_ACL, FORBID
from drivers.models import Switch, SwitchKind, SwitchOutcome, SwitchState, Unswitchable

CUT_PLACE = "sofia profile"  # a cut's place: "sofia profile internal"


async def plan_cuts(
    esl: EslClient,
    settings: EslSettings,
    feature: str,
    wanted: Callable[[live.Device], bool],
) -> tuple[list[Switch], list[Unswitchable]]:
    """CUT switches for the registered devices `wanted` accepts. A Call-ID of the form
    ``user@host`` is also matched as that user by ``flush_inbound_reg`` (sofia_reg.c
    sofia_reg_expire_call_id): a device whose Call-ID would flush others is not cut."""
    devices = await live.devices(esl, settings)
    chosen = [d for d in devices if wanted(d)]
    cut_ids = {d.row.call_id for d in chosen}
    switches: list[Switch] = []
    unsafe: list[Unswitchable] = []
    for device in chosen:
        row = device.row
        target = f"device {row.user} at {row.network_ip}:{row.network_port}"
        if not live.safe(row.call_id) or not live.safe(device.profile):
            unsafe.append(Unswitchable(target, "its Call-ID cannot be sent in an api line"))
            continue
        others = [
            d for d in devices if d.row.call_id not in cut_ids and _flushed_by(d, row.call_id)
        ]
        if others:
            unsafe.append(
                Unswitchable(
                    target,
                    f"not cut: flushing its Call-ID {row.call_id} would also drop "
                    f"{others[0].row.user} (FreeSWITCH matches a Call-ID user@host as that "
                    "user); it stops at its next registration refresh",
                )
            )
            continue
        place = f"{CUT_PLACE} {device.profile}"
        switches.append(Switch(feature, SwitchKind.CUT, target, place, row.call_id))
    return switches, unsafe


def _flushed_by(device: live.Device, call_id: str) -> bool:
    """Whether ``flush_inbound_reg CALL_ID`` also matches `device` by user and host."""
    user, at, host = call_id.partition("@")
    row = device.row
    if at:
        return row.user_id == user and row.realm.lower() == host.lower()
    return row.realm.lower() == call_id.lower()


async def refused_now(esl: EslClient, devices: Sequence[live.Device]) -> dict[str, str | None]:
    """For each device's Call-ID: None when FreeSWITCH would refuse it now, else why not."""
    addresses = sorted({d.address for d in devices})
    forbid = await live.user_values(esl, addresses, "param", FORBID)
    acls = await live.user_values(esl, addresses, "param", AUTH_ACL)
    by_user = dict(zip(addresses, zip(forbid, acls, strict=True), strict=True))
    checks = [(d.row.network_ip, by_user[d.address][1]) for d in devices]
    allowed = await live.acl_allows(
        esl, [(ip, acl) for ip, acl in checks if acl and live.safe(ip)]
    )
    answers = iter(allowed)
    result: dict[str, str | None] = {}
    for device, (ip, acl) in zip(devices, checks, strict=True):
        forbidden = parse.parse_flag(by_user[device.address][0]) is True
        passes = next(answers) if acl and live.safe(ip) else True
        result[device.row.call_id] = (
            None
            if forbidden or not passes
            else f"FreeSWITCH would accept {device.row.user} from {ip} again at once"
        )
    return result


async def make_cuts(
    esl: EslClient, settings: EslSettings, switches: Sequence[Switch]
) -> dict[Switch, SwitchOutcome]:
    result: dict[Switch, SwitchOutcome] = {}
    devices = {d.row.call_id: d for d in await live.devices(esl, settings)}
    present = [devices[s.value] for s in switches if s.value in devices]
    why = await refused_now(esl, present)
    for switch in switches:
        device = devices.get(switch.value)
        if device is None:
            result[switch] = SwitchOutcome(
                switch, SwitchState.IN_EFFECT, "no longer registered"
            )
            continue
        if why[switch.value] is not None:
            result[switch] = SwitchOutcome(
                switch, SwitchState.FAILED, f"not cut: {why[switch.value]}"
            )
            continue
        profile = switch.place.removeprefix(f"{CUT_PLACE} ")
        await live.flush(esl, profile, switch.value)
    after = {d.row.call_id for d in await live.devices(esl, settings)}
    for switch in switches:
        if switch in result:
            continue
        gone = switch.value not in after
        result[switch] = SwitchOutcome(
            switch,
            SwitchState.IN_EFFECT if gone else SwitchState.FAILED,
            "flushed: its registration is gone, its next REGISTER is refused"
            if gone
            else "flush_inbound_reg: the registration is still listed",
        )
    return result


def device_json(device: live.Device) -> str:
    """A cut's prior: the device as it was registered (no secret)."""
    row = device.row
    return json.dumps(
        {
            "profile": device.profile,
            "user": row.user,
            "contact": row.uri,
            "user_agent": row.agent[:200],
            "network_ip": row.network_ip,
            "network_port": row.network_port,
        },
        separators=(",", ":"),
    )
