"""Which switches turn each subscription feature off on this FreeSWITCH, chosen per PBX from
its configuration files and what it serves now:

- `offsite_devices`: ``auth-acl`` on each domain, listing the site's networks as CIDRs (a
  literal list needs no ``reloadacl``, fact 22 and switch_core.c), then the off-site devices'
  registrations flushed (``reloadxml`` never drops them: lapse_03/04). It goes in a file of
  the agent's own where the domain's ``<params>`` include a folder that only domains of this
  customer include (the fixture's ``directory/lockdown/``), else as one line in the domain's
  own ``<params>``, first (the first of a name wins when domain params are merged into a
  user: switch_xml.c do_merge). A domain or user with an ``auth-acl`` of its own is left as
  the customer set it: already on-site only, or reported by name (the agent never widens or
  replaces a customer's ACL).
- `softphone_app` (the apps' own directory users) and `add_extensions` (users added during
  the lapse): ``auth-acl`` naming an ACL list that does not exist (REFUSE_ALL) as the last
  line of each user's ``<params>``: a name that is not loaded matches no address (fact 22,
  switch_core.c), IPv4 or IPv6, and sofia takes a user's last ``auth-acl`` (sofia_reg.c), so
  every REGISTER and call of that user is refused; then its devices are flushed. Not
  ``sip-forbid-register``: the count reads that as "this user cannot register", so the
  switch would take the user out of the very count that decided to switch it. A user's own
  params live only in its own element: there is no other place for them.
- A directory served by a binding (FusionPBX's Lua ``xml_handler`` from its database,
  ``mod_xml_curl``) is not the files: a domain or user found only there is reported with the
  fix, never claimed. `integrations` cannot be switched on FreeSWITCH (see INTEGRATIONS);
  `remote_portal` is FusionPBX's web server, not FreeSWITCH; `software_updates` does not
  exist here.

Captured (fixtures README): a domain-level ``auth-acl`` plus ``reloadxml`` refuses the next
REGISTER with 403 and keeps existing rows; ``flush_inbound_reg`` by Call-ID or user@domain
removes them. Not captured, read in the 1.10 source instead (and so only as sure as that
reading): how params merge (switch_xml.c do_merge: the user's own first, a group's or domain's
only under a new name), that sofia and ``user_data`` keep the last ``auth-acl``, that a literal
CIDR list needs no ``reloadacl`` and an unknown list name matches nothing (switch_core.c), and
how ``flush_inbound_reg`` matches a Call-ID (sofia_reg.c). FusionPBX's Lua handler and its cache
were not captured at all: only its configuration is recognised.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.config_files import ConfigAccessError, ConfigFiles
from drivers.freeswitch.esl import EslClient
from drivers.freeswitch.settings import EslSettings
from drivers.freeswitch.switching import lines, live
from drivers.freeswitch.switching.cuts import plan_cuts
from drivers.freeswitch.switching.lines import AUTH_ACL, REFUSE_ALL
from drivers.freeswitch.switching.source import DomainSource, Outline, SourceError
from drivers.models import FeaturePolicy, Switch, SwitchKind, SwitchPlan, Unswitchable

NO_FILES = (
    "the agent has no access to FreeSWITCH's config files: configure [backup] source = "
    '"local" (agent on the PBX host, unit with ReadWritePaths=-/etc/freeswitch) or '
    "[backup.ssh] (SFTP)"
)
INTEGRATIONS = (
    "FreeSWITCH's event socket has one password for every client, the agent's included, and "
    "reads its listener settings (password, apply-inbound-acl) only when mod_event_socket "
    "loads (fact 22): the agent cannot refuse another ESL client without locking itself out "
    "or reloading the module, which drops every connection"
)
API_MODULES = ("mod_xml_rpc", "mod_erlang_event", "mod_rayo", "mod_event_zmq")
NO_SOFTWARE_UPDATES = (
    "FreeSWITCH gets no vendor software updates through the PBX: nothing to switch"
)
NO_PORTAL = "FreeSWITCH has no remote portal of its own: nothing to switch"
FUSIONPBX_PORTAL = (
    "FusionPBX's web portal is served by its web server (nginx and PHP), not by FreeSWITCH: "
    "the agent does not change the web server; allow it from the site's networks only by hand "
    "(nginx allow/deny) while the subscription is lapsed"
)


def served_elsewhere(outline: Outline, what: str) -> str:
    """Why `what` (a domain or user) cannot be switched in the files, and the fix."""
    if outline.fusionpbx:
        return (
            f"{what} is served from FusionPBX's database (mod_lua xml_handler), not from files "
            "the agent can change; fix: set it in FusionPBX (the domain's or extension's "
            "auth-acl, or disable the extension) and flush its cache, or serve it from "
            "/etc/freeswitch/directory"
        )
    if outline.directory_bindings:
        return (
            f"{what} is not in FreeSWITCH's directory files: it is served by "
            f"{', '.join(outline.directory_bindings)}; fix: switch it where that binding reads it"
        )
    notes = f" ({'; '.join(outline.notes)})" if outline.notes else ""
    return (
        f"{what} is not in the directory files the agent reads from freeswitch.xml's includes"
        f"{notes}; fix: give the agent access to the folder it is defined in"
    )


def networks(subnets: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(s, strict=False) for s in subnets]


def within(value: str, lan: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether a literal CIDR list `value` allows only addresses inside `lan` (a named ACL
    list cannot be read from here: False)."""
    if "/" not in value:
        return False
    try:
        own = [ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",")]
    except ValueError:
        return False
    return all(
        any(n.version == w.version and n.subnet_of(w) for w in lan)  # type: ignore[arg-type]
        for n in own
    )


@dataclass
class Planner:
    esl: EslClient
    files: ConfigFiles | None
    settings: EslSettings
    conf_dir: str

    async def plan(self, feature: str, policy: FeaturePolicy) -> SwitchPlan:
        if feature == "software_updates":
            return SwitchPlan(feature, NO_SOFTWARE_UPDATES, applicable=False)
        if feature == "integrations":
            return await self.integrations(policy)
        if self.files is None:
            return SwitchPlan(feature, "", refused=NO_FILES)
        try:
            outline = await live.outline(self.esl, self.files, self.conf_dir)
        except (SourceError, ConfigAccessError) as exc:
            return SwitchPlan(feature, "", refused=f"cannot read FreeSWITCH's config files: {exc}")
        if feature == "remote_portal":
            if outline.fusionpbx:
                return SwitchPlan(feature, "", refused=FUSIONPBX_PORTAL)
            return SwitchPlan(feature, NO_PORTAL, applicable=False)
        if feature == "softphone_app":
            shared = tuple(
                Unswitchable(
                    f"seat {seat.label()}",
                    f"its app registers as directory user {endpoint} together with a phone: "
                    "the agent refuses apps by directory user, not by User-Agent (anyone can "
                    "set one, and a wrong filter would refuse the desk phone); give the app a "
                    "user of its own (FusionPBX: its own extension) to have it switched off",
                )
                for seat, endpoint in policy.shared_app_seats
            )
            return await self.stop_users(feature, outline, policy.app_endpoints, shared)
        if feature == "add_extensions":
            return await self.stop_users(feature, outline, policy.new_endpoints, ())
        if feature == "offsite_devices":
            return await self.on_site_only(outline, policy)
        return SwitchPlan(feature, "", refused=f"the FreeSWITCH driver has no switch for {feature}")

    # -- integrations ----------------------------------------------------------------------

    async def integrations(self, policy: FeaturePolicy) -> SwitchPlan:
        loaded = [m for m in API_MODULES if await live.module_loaded(self.esl, m)]
        reason = INTEGRATIONS
        if loaded:
            reason += f"; {', '.join(loaded)} also serve(s) API clients"
        if policy.integration_accounts:
            reason += f" (licence.integration_accounts: {', '.join(policy.integration_accounts)})"
        reason += (
            "; fix: while the subscription is lapsed, stop the CRM/API connectors by hand, or "
            "narrow the event socket's apply-inbound-acl to the agent's address and reload "
            "mod_event_socket"
        )
        return SwitchPlan("integrations", "", refused=reason)

    # -- users stopped entirely ------------------------------------------------------------

    async def stop_users(
        self,
        feature: str,
        outline: Outline,
        endpoints: Sequence[str],
        unswitchable: tuple[Unswitchable, ...],
    ) -> SwitchPlan:
        assert self.files is not None
        switches: list[Switch] = []
        left_out = list(unswitchable)
        stopped: set[str] = set()
        for endpoint in endpoints:
            target = f"user {endpoint}"
            if not live.safe(endpoint):
                left_out.append(Unswitchable(target, "its name cannot be sent in an api line"))
                continue
            uid, _, domain_name = endpoint.partition("@")
            domain = outline.domain(domain_name)
            user = domain.users.get(uid) if domain is not None else None
            if user is None:
                left_out.append(Unswitchable(target, served_elsewhere(outline, f"user {endpoint}")))
                continue
            params = user.params
            if params is None or params.self_closing:
                left_out.append(
                    Unswitchable(
                        target,
                        f"its <user> in {user.element.file} has no <params> (FreeSWITCH then "
                        "accepts it without any check); the agent does not restructure it: add "
                        "a <params> element with its password",
                    )
                )
                continue
            text = outline.texts[params.close_file]
            line = lines.param(AUTH_ACL, REFUSE_ALL) + lines.comment(feature, target, "line")
            insertion = lines.last_in(text, params, line)
            switches.append(
                Switch(feature, SwitchKind.CONFIG, target, params.close_file, insertion.text)
            )
            stopped.add(endpoint.lower())
        cuts, unsafe = await plan_cuts(
            self.esl, self.settings, feature, lambda d: d.address in stopped
        )
        how = (
            f"auth-acl {REFUSE_ALL} (no such list: no address passes) as the last line of "
            "each user's <params> (reloadxml, proven with user_data and acl), every device of "
            "those users flushed"
        )
        return SwitchPlan(feature, how, (*switches, *cuts), (*left_out, *unsafe))

    # -- on-site only ----------------------------------------------------------------------

    async def on_site_only(self, outline: Outline, policy: FeaturePolicy) -> SwitchPlan:
        feature = "offsite_devices"
        if not policy.lan_subnets:
            return SwitchPlan(
                feature,
                "",
                refused="licence.lan_subnets is empty: the agent does not know the site's "
                "networks; list them in agent.toml",
            )
        lan = networks(policy.lan_subnets)
        if len({n.version for n in lan}) > 1:
            return SwitchPlan(
                feature,
                "",
                refused="licence.lan_subnets mixes IPv4 and IPv6: FreeSWITCH tests a literal "
                "auth-acl list with the device's address family only (switch_core.c), so the "
                "agent does not write one; list one family, or switch by hand with a named "
                "list in acl.conf.xml",
            )
        value = ",".join(str(n) for n in lan)
        scope = sorted(
            {
                e.partition("@")[2].lower()
                for e in (*policy.phone_endpoints, *policy.app_endpoints, *policy.new_endpoints)
                if "@" in e
            }
        )
        left_out: list[Unswitchable] = []
        covered: list[DomainSource] = []
        restricted: set[str] = set()  # user@domain the customer's own ACL keeps on site
        for name in scope:
            domain = outline.domain(name)
            if not live.safe(name):
                left_out.append(
                    Unswitchable(f"domain {name}", "its name cannot be sent in an api line")
                )
                continue
            if domain is None:
                left_out.append(
                    Unswitchable(f"domain {name}", served_elsewhere(outline, f"domain {name}"))
                )
                continue
            if domain.params is None or domain.params.self_closing:
                left_out.append(
                    Unswitchable(
                        f"domain {name}",
                        f"its <domain> in {domain.element.file} has no <params>: the agent "
                        "does not restructure it; add an empty <params></params>",
                    )
                )
                continue
            own = [v for k, v in domain.params.params() if k.lower() == AUTH_ACL]
            users = await live.users_of(self.esl, domain.name)
            addresses = [f"{u}@{domain.name}" for u in users if live.safe(u)]
            current = await live.user_values(self.esl, addresses, "param", AUTH_ACL)
            open_users = 0  # users only a domain-wide auth-acl would restrict
            for address, found in zip(addresses, current, strict=True):
                if not found or found == value:
                    open_users += 1
                    continue
                if found == REFUSE_ALL or within(found, lan):  # refused everywhere, or on site
                    restricted.add(address.lower())
                    continue
                left_out.append(
                    Unswitchable(
                        f"user {address}",
                        f"has an auth-acl of its own ({found[:80]}), which FreeSWITCH applies "
                        "instead of the agent's; the agent never replaces a customer's ACL: "
                        f"narrow it to {value} by hand while the subscription is lapsed",
                    )
                )
            if own and own[0] != value:
                continue  # the domain's own ACL wins over any the agent would add: see users
            if open_users:
                covered.append(domain)
        switches = self.acl_switches(feature, outline, covered, scope, value)
        done = {d.name.lower() for d in covered}
        blocked = {u.target.removeprefix("user ").lower() for u in left_out}

        def off_site(device: live.Device) -> bool:
            address = device.address
            if address in blocked:
                return False
            if address.partition("@")[2] not in done and address not in restricted:
                return False
            try:
                ip = ipaddress.ip_address(device.row.network_ip)
            except ValueError:
                return False  # an address we cannot read is left alone
            return not any(ip.version == n.version and ip in n for n in lan)

        cuts, unsafe = await plan_cuts(self.esl, self.settings, feature, off_site)
        how = (
            f"auth-acl {value} on each domain ({', '.join(s.place for s in switches) or 'none'}; "
            "reloadxml, proven with user_data and acl), off-site registrations flushed"
        )
        return SwitchPlan(feature, how, (*switches, *cuts), (*left_out, *unsafe))

    def acl_switches(
        self,
        feature: str,
        outline: Outline,
        covered: Sequence[DomainSource],
        scope: Sequence[str],
        value: str,
    ) -> list[Switch]:
        """One agent file per shared hook folder, else one line per domain."""
        assert self.files is not None
        hooks: dict[tuple[str, str], list[str]] = {}
        for domain in outline.domains.values():
            for hook in domain.params.includes if domain.params is not None else ():
                hooks.setdefault(hook, []).append(domain.name)
        switches: list[Switch] = []
        by_file: dict[str, list[str]] = {}
        for domain in covered:
            assert domain.params is not None
            usable = [
                hook
                for hook in domain.params.includes
                if self._own_file_fits(hook)
                and all(d.lower() in scope for d in hooks.get(hook, []))
            ]
            if usable:
                folder = usable[0][0]
                by_file.setdefault(lines.own_file_name(folder, feature), []).append(domain.name)
                continue
            target = f"domain {domain.name}"
            text = outline.texts[domain.params.file]
            line = lines.param(AUTH_ACL, value) + lines.comment(feature, target, "line")
            insertion = lines.first_in(text, domain.params, line)
            switches.append(
                Switch(feature, SwitchKind.CONFIG, target, domain.params.file, insertion.text)
            )
        for place, names in by_file.items():
            target = ("domains " if len(names) > 1 else "domain ") + ", ".join(sorted(names))
            content = lines.own_file_text(feature, target, AUTH_ACL, value)
            switches.append(Switch(feature, SwitchKind.CONFIG, target, place, content))
        return switches

    def _own_file_fits(self, hook: tuple[str, str]) -> bool:
        folder, pattern = hook
        if not folder or not fnmatch.fnmatchcase(f"{lines.PREFIX}x.xml", pattern):
            return False
        assert self.files is not None
        parent, name = posixpath.split(folder)
        try:
            return name in self.files.list_names(parent)
        except ConfigAccessError:
            return False
