"""mod_sofia's registrar, as the devices of an office meet it: each REGISTER answered from the
loaded directory (``sip-forbid-register``, an empty password with
``allow-empty-password=false``, ``auth-acl``; fact 22: read at every REGISTER, so a
``reloadxml`` takes effect at the next one and never drops existing rows), rows kept one per
Contact (``multiple-registrations=contact``) and the core's one per user (fact 24), rows that
expire or are flushed (fact 33), OPTIONS ping outcomes (fact 27) and gateway states (fact 36),
each with the events FreeSWITCH fires."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from drivers.freeswitch.sim import directory as d
from drivers.freeswitch.sim.model import Gateway, Registration

SOFIA_REG = "sofia_reg.c"
Calling = tuple[str, str, int]


class Registrar:
    """The registration side of `SimState` (a mixin: the state holds the tables)."""

    registrations: dict[str, Registration]
    core_rows: dict[tuple[str, str], Registration]
    custom: Callable[[str, list[tuple[str, str]], Calling], None]
    user: Callable[[str, str], d.User | None]
    acl_allows: Callable[[str, str], bool]
    gateway: Callable[[str], Gateway | None]
    now: Callable[[], float]

    def find_registration(self, call_id: str) -> Registration | None:
        return next((r for r in self.registrations.values() if r.call_id == call_id), None)

    def register(
        self,
        *,
        user: str,
        domain: str,
        uri: str,
        call_id: str,
        agent: str,
        expires: int,
        ip: str,
        port: str,
        profile: str = "internal",
    ) -> int:
        """A REGISTER with the right credentials from a device; FreeSWITCH's SIP answer."""
        common = [
            ("contact", f'"" <{uri}>'),
            ("call-id", call_id),
            ("rpid", "unknown"),
            ("status", "Registered(UDP)"),
            ("expires", str(expires)),
            ("to-user", user),
            ("to-host", domain),
            ("network-ip", ip),
            ("network-port", port),
        ]
        sender = [("profile-name", profile), ("from-user", user), ("from-host", domain)]
        base = [*sender, *common]
        where = "sofia_reg_handle_register_token"
        self.custom("sofia::pre_register", [*base, ("user-agent", agent)], (SOFIA_REG, where, 1810))
        found = self.user(user, domain)
        refusal = self._refusal(found, ip)
        if refusal is not None:
            self.custom(
                "sofia::register_failure",
                [
                    ("profile-name", profile),
                    ("to-user", user),
                    ("to-host", domain),
                    ("network-ip", ip),
                    ("user-agent", agent),
                    ("profile-name", profile),  # FreeSWITCH adds it twice (fact 34)
                    ("network-port", port),
                    ("registration-type", "REGISTER"),
                ],
                (SOFIA_REG, where, 1792),
            )
            return 403
        assert found is not None
        auth = [("username", user), ("realm", domain), ("user-agent", agent)]
        self.custom(
            "sofia::register_attempt",
            [*base, *auth, ("auth-result", "RENEWED")],
            (SOFIA_REG, where, 1606),
        )
        existing = self.registrations.get(uri)
        variables = found.registration_variables(domain)
        if expires == 0:
            if existing is not None:
                del self.registrations[uri]
                self._drop_core(existing)
            self.custom(
                "sofia::unregister",
                [
                    ("profile-name", profile),
                    ("username", user),
                    ("from-user", user),
                    ("from-host", domain),
                    ("contact", f'"" <{uri}>'),
                    ("call-id", call_id),
                    ("rpid", "unknown"),
                    ("realm", domain),
                    ("network-ip", ip),
                    ("network-port", port),
                    ("user-agent", agent),
                    ("expires", "0"),
                    *variables,
                ],
                (SOFIA_REG, where, 2213),
            )
            return 200
        update = existing is not None and existing.call_id == call_id
        row = existing or Registration(
            profile, user, domain, uri, call_id, agent, expires, 0, ip, port
        )
        row.call_id, row.agent, row.expires, row.ip, row.port = call_id, agent, expires, ip, port
        row.registered_at = self.now()
        self.registrations[uri] = row
        self.core_rows.pop((user, domain), None)
        self.core_rows[(user, domain)] = replace(row)  # the core keeps its own copy
        headers = [*sender, ("presence-hosts", "n/a"), *common, *auth]
        if update:
            headers.append(("update-reg", "true"))
        self.custom("sofia::register", headers + variables, (SOFIA_REG, where, 2059))
        return 200

    def _refusal(self, user: d.User | None, ip: str) -> str | None:
        if user is None:
            return "no such user"
        if user.flag("sip-forbid-register"):
            return "sip-forbid-register"
        acl = user.param("auth-acl")
        if acl and not self.acl_allows(ip, acl):
            return f"auth-acl {acl}"
        no_secret = not user.param("password") and not user.param("a1-hash")
        if no_secret and not d.is_true(user.param("allow-empty-password") or "true"):
            return "empty password"
        return None

    def _drop_core(self, row: Registration) -> None:
        """The core deletes by user, realm and Call-ID (switch_core_del_registration)."""
        key = (row.user, row.realm)
        found = self.core_rows.get(key)
        if found is not None and found.call_id == row.call_id:
            del self.core_rows[key]

    def expire(self, call_id: str, *, function: str = "sofia_reg_del_callback") -> bool:
        """A row removed without an unregister: it aged out, or was flushed (fact 33)."""
        row = self.find_registration(call_id)
        if row is None:
            return False
        del self.registrations[row.uri]
        self._drop_core(row)
        self.custom(
            "sofia::expire",
            [
                ("profile-name", row.profile),
                ("call-id", row.call_id),
                ("user", row.user),
                ("username", row.user),
                ("host", row.realm),
                ("contact", row.contact),
                ("expires", str(row.expiry)),
                ("user-agent", row.agent),
                ("realm", row.realm),
                ("network-ip", row.ip),
                ("network-port", row.port),
            ],
            (SOFIA_REG, function, 726),
        )
        return True

    def flush(self, profile: str, target: str) -> None:
        """``flush_inbound_reg``: rows whose Call-ID is `target`, or whose user and host are
        its two halves around ``@`` (every device of user@domain), or, with no ``@``, whose
        host is `target` (sofia_reg.c sofia_reg_expire_call_id)."""
        user, at, domain = target.partition("@")
        for row in list(self.registrations.values()):
            if row.profile != profile:
                continue
            by_user = row.user == user and row.realm == domain if at else row.realm == target
            if row.call_id == target or by_user:
                self.expire(row.call_id)

    def ping_status(
        self, call_id: str, reachable: bool, status: int = 503, phrase: str = ""
    ) -> None:
        """The outcome of an OPTIONS ping that changed a device's state (fact 27)."""
        row = self.find_registration(call_id)
        if row is None:
            return
        row.ping_status = "Reachable" if reachable else "Unreachable"
        self.custom(
            "sofia::sip_user_state",
            [
                ("sip_contact", row.contact),
                ("profile-name", row.profile),
                ("sip_user", f"{row.user}@{row.realm}"),
                ("from-user", row.user),
                ("from-host", row.realm),
                ("call-id", row.call_id),
                ("Ping-Status", "REACHABLE" if reachable else "UNREACHABLE"),
                ("Status", str(status)),
                ("Phrase", phrase),
            ],
            (SOFIA_REG, "sofia_reg_fire_custom_sip_user_state_event", 179),
        )

    def gateway_state(self, name: str, state: str, status: int = 0, phrase: str = "") -> None:
        """A gateway changed state; a failed REGISTER carries the SIP answer (or, with no
        answer at all, what FreeSWITCH made of it: 503 for an ICMP refusal)."""
        gateway = self.gateway(name)
        if gateway is None:
            raise KeyError(name)
        gateway.state = state
        if state in ("FAILED", "FAIL_WAIT", "TRYING"):
            gateway.retry_at = self.now() + float(gateway.param("retry-seconds", "30") or 30)
        headers = [("Gateway", name), ("State", state), ("Ping-Status", gateway.status)]
        if status:
            headers += [("Phrase", phrase), ("Status", str(status))]
        self.custom(
            "sofia::gateway_state",
            headers,
            (SOFIA_REG, "sofia_reg_fire_custom_gateway_state_event", 156),
        )
