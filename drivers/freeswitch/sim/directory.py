"""Questions asked of the loaded directory (the ``directory`` section of the XML tree), the
way FreeSWITCH answers them: domains in order, users per group, a user's merged parameters
and variables (switch_xml_merge_user: user first, then group, then domain)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from drivers.freeswitch.sim.xmldoc import Element

TRUE = ("true", "yes", "on", "enabled", "active", "allow")


def is_true(value: str | None) -> bool:
    """switch_true: the words above, or a number other than 0."""
    if value is None:
        return False
    lowered = value.strip().lower()
    return lowered in TRUE or (lowered.isdigit() and int(lowered) != 0)


def pairs(element: Element | None, container: str, tag: str) -> list[tuple[str, str]]:
    """(name, value) of every `tag` in `element`'s `container` (e.g. params/param)."""
    if element is None:
        return []
    box = element.child(container)
    if box is None:
        return []
    return [(c.attr("name") or "", c.attr("value") or "") for c in box.all(tag)]


def pairs_direct(element: Element, tag: str = "param") -> list[tuple[str, str]]:
    """(name, value) of `element`'s own `tag` children (a queue's or a gateway's params)."""
    return [(c.attr("name") or "", c.attr("value") or "") for c in element.all(tag)]


@dataclass(frozen=True)
class User:
    """A directory user in its domain and group."""

    element: Element
    domain: Element
    group: Element | None

    @property
    def id(self) -> str:
        return self.element.attr("id") or ""

    @property
    def domain_name(self) -> str:
        return self.domain.attr("name") or ""

    def params(self) -> list[tuple[str, str]]:
        """Merged as switch_xml_merge_user does: the user's own (every one, repeats kept),
        then each of the group's and the domain's whose name is not there yet."""
        return _merge(
            pairs(self.element, "params", "param"),
            pairs(self.group, "params", "param"),
            pairs(self.domain, "params", "param"),
        )

    def param(self, name: str) -> str | None:
        """The value sofia and ``user_data`` use: the last of that name (sofia_reg.c and
        mod_commands.c read every param and keep the last)."""
        lowered = name.lower()
        found = None
        for key, value in self.params():
            if key.lower() == lowered:
                found = value
        return found

    def flag(self, name: str) -> bool:
        """Any param of that name true (sofia refuses at the first true
        ``sip-forbid-register``, whatever comes after it)."""
        lowered = name.lower()
        return any(k.lower() == lowered and is_true(v) for k, v in self.params())

    def own_variables(self) -> list[tuple[str, str]]:
        return pairs(self.element, "variables", "variable")

    def variables(self) -> list[tuple[str, str]]:
        return _merge(
            self.own_variables(),
            pairs(self.group, "variables", "variable"),
            pairs(self.domain, "variables", "variable"),
        )

    def variable(self, name: str) -> str | None:
        lowered = name.lower()
        found = None
        for key, value in self.variables():
            if key.lower() == lowered:
                found = value
        return found

    def registration_variables(self, realm: str) -> list[tuple[str, str]]:
        """The variables a sofia::register event carries for this user: who authenticated,
        then the domain's, the group's and the user's own (fact 33)."""
        uid = self.id
        head = [
            ("sip_number_alias", self.element.attr("number-alias") or uid),
            ("sip_auth_username", uid),
            ("sip_auth_realm", realm),
            ("number_alias", self.element.attr("number-alias") or uid),
            ("user_name", uid),
        ]
        return (
            head
            + pairs(self.domain, "variables", "variable")
            + pairs(self.group, "variables", "variable")
            + self.own_variables()
        )


def _merge(
    own: list[tuple[str, str]], *sources: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """switch_xml.c do_merge: `own` as it is, then each source's entries whose name is not
    there yet (so a source's first entry of a name wins)."""
    merged = list(own)
    seen = {name.lower() for name, _ in own}
    for source in sources:
        for name, value in source:
            if name.lower() not in seen:
                seen.add(name.lower())
                merged.append((name, value))
    return merged


def section(root: Element, name: str) -> Element | None:
    return root.find("section", "name", name)


def domains(root: Element) -> list[Element]:
    directory = section(root, "directory")
    return list(directory.all("domain")) if directory is not None else []


def domain(root: Element, name: str) -> Element | None:
    return next((d for d in domains(root) if (d.attr("name") or "").lower() == name.lower()), None)


def users(domain_element: Element) -> Iterator[User]:
    """Every user of a domain in directory order, with its group (list_users' walk)."""
    groups = domain_element.child("groups")
    if groups is not None:
        for group in groups.all("group"):
            for box in group.all("users"):
                for user in box.all("user"):
                    yield User(user, domain_element, group)
        return
    for box in domain_element.all("users"):
        for user in box.all("user"):
            yield User(user, domain_element, None)


