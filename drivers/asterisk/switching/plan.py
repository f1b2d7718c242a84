"""Which switches turn each subscription feature off on this Asterisk, chosen per PBX:

- `softphone_app` (the apps' own endpoints) and `add_extensions` (endpoints added during the
  lapse) must stop entirely: maintenance mode where the PBX has it (res_pjsip_maintenance,
  Asterisk 20.20 / 22.10 / 23.4+: refuses their REGISTERs and every call at once, facts
  36-37), else an ACL denying every address (needs the config files); then their live
  registrations are cut (DBDel, facts 39-41), so an app stops ringing now, not when its
  registration expires.
- `offsite_devices`: an ACL on the phone endpoints keeping only the site's networks (the
  customer's own rules kept, `acl.on_site_only`), then the off-site registrations cut.
- `integrations`: an ACL denying every address on the CRM/API manager users. Asterisk keeps
  a session that is already logged in (fact 49): a connected account is reported by name.
- A seat whose app registers on the same endpoint (AOR) as its desk phone cannot be told apart
  by Asterisk: reported by name, never silently skipped.
- `remote_portal` and `software_updates`: Asterisk has no such thing to switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from drivers.asterisk.ami import AmiClient
from drivers.asterisk.switching import acl, blocks, live
from drivers.asterisk.switching.layout import Place, place_for
from drivers.config_files import ConfigFiles
from drivers.errors import UnsafeChange
from drivers.models import (
    FeaturePolicy,
    Switch,
    SwitchKind,
    SwitchPlan,
    Unswitchable,
)

MAINTENANCE = "maintenance"
REGISTRAR = "registrar"
NOT_ON_ASTERISK = {
    "remote_portal": "Asterisk has no remote portal of its own: nothing to switch",
    "software_updates": "Asterisk gets no vendor software updates through the PBX: nothing to "
    "switch",
}
NO_FILES = (
    'the agent has no access to the PBX\'s config files: configure [backup] source = "local" '
    "(agent on the PBX host) or [backup.ssh] (SFTP)"
)
NO_MAINTENANCE = (
    "this Asterisk has no maintenance mode (res_pjsip_maintenance: Asterisk 20.20, 22.10, 23.4 "
    "or later, not `noload`ed in modules.conf)"
)


@dataclass
class Planner:
    ami: AmiClient
    files: ConfigFiles | None
    own_user: str  # the agent's own AMI login: never switched off

    async def plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        if feature in NOT_ON_ASTERISK:
            return SwitchPlan(feature, NOT_ON_ASTERISK[feature], applicable=False)
        try:
            if feature in ("softphone_app", "add_extensions", "offsite_devices"):
                policy, peers = await self.pjsip_only(policy)
            if feature == "softphone_app":
                shared = tuple(
                    Unswitchable(
                        f"seat {seat.label()}",
                        f"its app registers on endpoint {endpoint} together with a phone: "
                        "Asterisk cannot tell them apart; give the app its own endpoint "
                        "(and AOR) to have it switched off",
                    )
                    for seat, endpoint in policy.shared_app_seats
                )
                plan = await self.stop_entirely(feature, policy.app_endpoints, shared)
                return _with(plan, peers("app"))
            if feature == "add_extensions":
                plan = await self.stop_entirely(feature, policy.new_endpoints, ())
                return _with(plan, peers("new"))
            if feature == "offsite_devices":
                return _with(await self.on_site_only(policy), peers("phone"))
            if feature == "integrations":
                return await self.integrations(policy)
        except UnsafeChange as exc:
            return SwitchPlan(feature, "", refused=str(exc))
        return SwitchPlan(feature, "", refused=f"the Asterisk driver has no switch for {feature}")

    async def pjsip_only(
        self, policy: FeaturePolicy
    ) -> tuple[FeaturePolicy, Callable[..., tuple[Unswitchable, ...]]]:
        """The policy narrowed to PJSIP endpoints, and a function naming the others (IAX2 or
        chan_sip phones, which counting includes) as not switchable: the agent switches PJSIP
        endpoints only, and a `(+)` block or maintenance mode for a name PJSIP does not know
        would break the file's load or be refused."""
        known = {
            name
            for name, kind, _ in await live.effective(self.ami, "pjsip.conf")
            if kind == "endpoint"
        }
        lists = {
            "app": policy.app_endpoints,
            "phone": policy.phone_endpoints,
            "new": policy.new_endpoints,
        }

        def others(*which: str) -> tuple[Unswitchable, ...]:
            return tuple(
                Unswitchable(
                    f"endpoint {name}",
                    "not a PJSIP endpoint (an IAX2 or chan_sip phone): the agent switches "
                    "PJSIP endpoints only; deny it in iax.conf/sip.conf by hand or move the "
                    "device to PJSIP",
                )
                for kind in which
                for name in lists[kind]
                if name not in known
            )

        narrowed = replace(
            policy,
            app_endpoints=tuple(e for e in policy.app_endpoints if e in known),
            phone_endpoints=tuple(e for e in policy.phone_endpoints if e in known),
            new_endpoints=tuple(e for e in policy.new_endpoints if e in known),
        )
        return narrowed, others

    async def maintenance_available(self) -> bool:
        return "PJSIPSetMaintenance" in await live.actions(self.ami)

    async def place(self, top: str, section_type: str) -> Place:
        if self.files is None:
            raise UnsafeChange(NO_FILES)
        return await place_for(self.files, top, section_type)

    async def cuts(
        self, feature: str, endpoints: set[str], keep: Callable[[str, str], bool] | None = None
    ) -> list[Switch]:
        """CUT switches for the live registrations of `endpoints` (except those `keep`
        accepts, given the endpoint and the contact's source address)."""
        found = []
        for contact in await live.contacts(self.ami):
            if contact.endpoint not in endpoints:
                continue
            if keep is not None and keep(contact.endpoint, contact.via_addr):
                continue
            found.append(
                Switch(feature, SwitchKind.CUT, f"contact {contact.name}", REGISTRAR, contact.key)
            )
        return found

    async def stop_entirely(
        self, feature: str, endpoints: Sequence[str], unswitchable: tuple[Unswitchable, ...]
    ) -> SwitchPlan:
        if await self.maintenance_available():
            switches = [
                Switch(feature, SwitchKind.RUNTIME, f"endpoint {e}", MAINTENANCE, "enabled")
                for e in endpoints
            ]
            how = (
                "maintenance mode on the endpoints (their registrations and calls refused at "
                "once; set again after every Asterisk restart), live registrations cut"
            )
        else:
            if self.files is None:
                raise UnsafeChange(f"{NO_MAINTENANCE} and {NO_FILES}")
            place = await self.place("pjsip.conf", "endpoint")
            switches = [
                Switch(
                    feature,
                    SwitchKind.CONFIG,
                    f"endpoint {e}",
                    place.file,
                    blocks.block(feature, e, "endpoint", acl.DENY_ALL),
                )
                for e in endpoints
            ]
            how = (
                f"ACL denying every address, in {place.file} ({NO_MAINTENANCE}), "
                "live registrations cut"
            )
        switches += await self.cuts(feature, set(endpoints))
        return SwitchPlan(feature, how, tuple(switches), unswitchable)

    async def on_site_only(self, policy: FeaturePolicy) -> SwitchPlan:
        feature = "offsite_devices"
        if not policy.lan_subnets:
            raise UnsafeChange(
                "licence.lan_subnets is empty: the agent does not know the site's networks; "
                "list them in agent.toml"
            )
        place = await self.place("pjsip.conf", "endpoint")
        assert self.files is not None
        own_text = await asyncio.to_thread(self.files.read_text, place.file)
        options = {
            name: opts
            for name, kind, opts in await live.effective(self.ami, "pjsip.conf")
            if kind == "endpoint"
        }
        switches: list[Switch] = []
        unswitchable: list[Unswitchable] = []
        rules_of: dict[str, list[tuple[str, str]]] = {}
        for endpoint in policy.phone_endpoints:
            if endpoint not in options:
                continue
            existing = _without_agent_blocks(list(options[endpoint]), own_text, endpoint)
            customer = [(k, v) for k, v in existing if k in ("deny", "permit")]
            try:
                rules = acl.on_site_only(customer, policy.lan_subnets)
            except ValueError as exc:
                unswitchable.append(
                    Unswitchable(f"endpoint {endpoint}", f"its ACL cannot be read ({exc})")
                )
                continue
            rules_of[endpoint] = customer + rules
            switches.append(
                Switch(
                    feature,
                    SwitchKind.CONFIG,
                    f"endpoint {endpoint}",
                    place.file,
                    blocks.block(feature, endpoint, "endpoint", rules),
                )
            )

        def on_site(endpoint: str, address: str) -> bool:
            try:
                return acl.allows(rules_of[endpoint], address)
            except ValueError:
                return True  # an address we cannot read is left alone

        switches += await self.cuts(feature, set(rules_of), on_site)
        nets = ", ".join(policy.lan_subnets)
        how = (
            f"ACL on the phone endpoints: only {nets} and the PBX host may register, in "
            f"{place.file}; off-site registrations cut"
        )
        return SwitchPlan(feature, how, tuple(switches), tuple(unswitchable))

    async def integrations(self, policy: FeaturePolicy) -> SwitchPlan:
        feature = "integrations"
        place = await self.place("manager.conf", "")
        manager = await live.effective(self.ami, "manager.conf")
        users = [name for name, _, _ in manager if name != "general"]
        setvar = [name for name, _, opts in manager if any(k == "setvar" for k, _ in opts)]
        if setvar:
            raise UnsafeChange(
                f"manager.conf user(s) {', '.join(setvar)} have setvar: `manager reload` crashes "
                "Asterisk 22 while such a user exists, so the agent does not reload the manager; "
                "remove setvar, or switch the integration accounts off by hand"
            )
        accounts = list(policy.integration_accounts)
        if not accounts:
            others = [u for u in users if u != self.own_user]
            if others:
                raise UnsafeChange(
                    "licence.integration_accounts is empty but manager.conf has other accounts "
                    f"({', '.join(others)}): list the CRM/API ones in agent.toml"
                )
            return SwitchPlan(feature, "no manager accounts besides the agent's own")
        unswitchable = []
        switches = []
        for account in accounts:
            if account == self.own_user:
                unswitchable.append(
                    Unswitchable(f"manager user {account}", "it is the agent's own login")
                )
            elif account not in users:
                unswitchable.append(
                    Unswitchable(f"manager user {account}", "no such user in manager.conf")
                )
            else:
                value = blocks.block(feature, account, "", acl.DENY_ALL)
                switches.append(
                    Switch(feature, SwitchKind.CONFIG, f"manager user {account}", place.file, value)
                )
        wanted = {s.target.removeprefix("manager user ") for s in switches}
        for user, address in await live.manager_sessions(self.ami):
            if user in wanted:
                unswitchable.append(
                    Unswitchable(
                        f"manager user {user}",
                        f"logged in now from {address}: Asterisk keeps a session that is "
                        "already logged in until it logs off; restart the CRM connector (or "
                        "Asterisk) to end it",
                    )
                )
        how = f"ACL denying every address on the manager users, in {place.file}"
        return SwitchPlan(feature, how, tuple(switches), tuple(unswitchable))


def _without_agent_blocks(
    options: list[tuple[str, str]], own_text: str, category: str
) -> list[tuple[str, str]]:
    """The category's options without what the agent's own blocks (in `own_text`) add at its
    end: the customer's configuration as it is without the agent."""
    own = [text for _, name, text in blocks.find(own_text) if name == category]
    for block_text in reversed(own):
        added = blocks.options(block_text)
        if added and options[-len(added) :] == added:
            options = options[: -len(added)]
    return options


def _with(plan: SwitchPlan, more: tuple[Unswitchable, ...]) -> SwitchPlan:
    """`plan` with `more` named as not switchable."""
    return replace(plan, unswitchable=(*plan.unswitchable, *more)) if more else plan
