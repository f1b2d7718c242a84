"""The simulated PJSIP registrar: what happens when a phone sends REGISTER (first registration,
refresh, or Expires: 0), decided from the loaded configuration and the runtime state.

- An endpoint in maintenance refuses it with 503 (Expires: 0 is still accepted; fact 37).
- An endpoint ACL (`deny`/`permit`, on the source address) or contact ACL
  (`contact_deny`/`contact_permit`, on the contact URI's host) refuses it with 401, never 403
  (fact 46). Rules apply in order, the last matching one decides, no match allows.
- Neither touches bindings that already exist (facts 36, 47): a refused refresh leaves the
  contact in place until it expires.
- An accepted refresh re-creates a binding removed behind the phone's back (DBDel) under the
  same key, with a new expiry (fact 41).
"""

from __future__ import annotations

import ipaddress
import time

from drivers.asterisk.sim.base import SimContext
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.live import Contact

ACCEPTED, UNAUTHORIZED, UNAVAILABLE, NOT_FOUND = "200", "401", "503", "404"


def acl_allows(rules: list[tuple[str, str]], address: str) -> bool:
    """Asterisk's ast_apply_ha over (`deny`|`permit`, network[,network...]) rules."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    allowed = True
    for sense, value in rules:
        for item in (v.strip() for v in value.split(",") if v.strip()):
            try:
                network = ipaddress.ip_network(item.lstrip("!"), strict=False)
            except ValueError:
                continue
            if network.version == ip.version and ip in network:
                allowed = sense == "permit"
    return allowed


def _rules(conf: ConfFile, endpoint: Category, deny: str, permit: str) -> list[tuple[str, str]]:
    return [
        ("deny" if key == deny else "permit", value)
        for key, value in conf.expanded(endpoint)
        if key in (deny, permit)
    ]


def _endpoint_for(conf: ConfFile, aor: str) -> Category | None:
    """The endpoint a phone registering to `aor` authenticates as (FreePBX and hand-written
    offices name them alike; otherwise the first endpoint listing the AOR)."""
    endpoint = conf.find(aor, "endpoint")
    if endpoint is not None:
        return endpoint
    for candidate in conf.objects("endpoint"):
        aors = [a.strip() for a in (conf.value(candidate, "aors") or "").split(",")]
        if aor in aors:
            return candidate
    return None


def decide(ctx: SimContext, device: Contact) -> str:
    """The answer the registrar gives this device's REGISTER."""
    conf = ctx.loaded("pjsip.conf")
    endpoint = _endpoint_for(conf, device.aor)
    if endpoint is None or conf.find(device.aor, "aor") is None:
        return NOT_FOUND
    if endpoint.name in ctx.live.maintenance:
        return UNAVAILABLE
    source, _ = device.via
    if not acl_allows(_rules(conf, endpoint, "deny", "permit"), source):
        return UNAUTHORIZED
    if not acl_allows(_rules(conf, endpoint, "contact_deny", "contact_permit"), source):
        return UNAUTHORIZED
    return ACCEPTED


def register(ctx: SimContext, device: Contact) -> str:
    """A (first or refreshing) REGISTER from `device`; the binding is created or renewed
    when accepted."""
    outcome = decide(ctx, device)
    if outcome != ACCEPTED:
        return outcome
    if device not in ctx.live.devices:
        ctx.live.devices.append(device)
    device.expires_at = int(time.time()) + device.expires_in
    if device not in ctx.live.contacts:
        ctx.live.add_contact(device)
    return outcome


def refresh(ctx: SimContext, aor: str) -> str:
    """Every phone on `aor` refreshes its registration; the last answer."""
    outcome = NOT_FOUND
    for device in [d for d in ctx.live.devices if d.aor == aor]:
        outcome = register(ctx, device)
    return outcome


def unregister(ctx: SimContext, aor: str) -> str:
    """Every phone on `aor` sends REGISTER with Expires: 0 (accepted even in maintenance)."""
    devices = [d for d in ctx.live.devices if d.aor == aor]
    for device in devices:
        ctx.live.devices.remove(device)
        if device in ctx.live.contacts:
            ctx.live.remove_contact(device)
    return ACCEPTED if devices else NOT_FOUND
