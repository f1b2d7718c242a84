"""`manager show user NAME` and `manager show connected`, from manager.conf as the manager
module last loaded it and from the open AMI sessions. Their layout is Asterisk 22's
(`main/manager.c` handle_showmanager, handle_showmanconn, `main/acl.c` ast_ha_output); no
capture holds them. A session that logged in stays listed after its user is removed (fact 49).
"""

from __future__ import annotations

import ipaddress
import time

from drivers.asterisk.sim.base import SimContext, cli
from drivers.asterisk.sim.conffile import Category, ConfFile
from drivers.asterisk.sim.core_actions import PRIVILEGE_ORDER

PERMISSIONS = tuple(c for c in PRIVILEGE_ORDER if c != "all")  # Asterisk's perms[] order
YES = {"yes", "true", "y", "t", "1", "on"}


def _authority(value: str | None) -> str:
    """user_authority_to_str: the classes in Asterisk's table order; `all` means every one."""
    classes = {c.strip().lower() for c in (value or "").split(",") if c.strip()}
    if "all" in classes:
        return ",".join(PERMISSIONS) + ",all"
    listed = [p for p in PERMISSIONS if p in classes]
    return ",".join(listed) or "<none>"


def _rules(conf: ConfFile, user: Category) -> list[str]:
    """The user's deny/permit lines as ast_ha_output prints them."""
    lines: list[str] = []
    for key, value in conf.expanded(user):
        if key not in ("deny", "permit"):
            continue
        for item in (v.strip() for v in value.split(",") if v.strip()):
            try:
                net = ipaddress.ip_network(item, strict=False)
            except ValueError:
                try:
                    address, _, mask = item.partition("/")
                    net = ipaddress.ip_network(f"{address}/{mask}", strict=False)
                except ValueError:
                    continue
            sense = "allow" if key == "permit" else " deny"
            lines.append(f"{len(lines):3d}: {sense} - {net.network_address}/{net.netmask}")
    return lines


@cli("manager show user")
def manager_show_user(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 4:
        return None
    conf = ctx.loaded("manager.conf")
    user = next((c for c in conf.sections(words[3]) if c.name != "general"), None)
    if user is None:
        return [f"There is no manager called {words[3]}"]
    general = next(iter(conf.sections("general")), None)

    def flag(key: str, default: str) -> str:
        value = conf.value(user, key) or (conf.value(general, key) if general else None)
        return "yes" if (value or default).lower() in YES else "no"

    rules = _rules(conf, user)
    lines = [
        "",
        f"          username: {user.name}",
        f"            secret: {'<Set>' if conf.value(user, 'secret') else '(N/A)'}",
        f"               ACL: {'yes' if rules else 'no'}",
        f"         read perm: {_authority(conf.value(user, 'read'))}",
        f"        write perm: {_authority(conf.value(user, 'write'))}",
        f"   displayconnects: {flag('displayconnects', 'yes')}",
        f"allowmultiplelogin: {flag('allowmultiplelogin', 'yes')}",
        "         Variables: ",
    ]
    lines += [
        f"                 {v.partition('=')[0]} = {v.partition('=')[2]}"
        for k, v in conf.expanded(user)
        if k == "setvar"
    ]
    if rules:
        lines += ["ACL: (unnamed)", "-" * 45, *rules]
    return lines


@cli("manager show connected")
def manager_show_connected(ctx: SimContext, words: list[str]) -> list[str] | None:
    if len(words) != 3:
        return None
    row = "  {:<15.15}  {:<55.55}  {:<10.10}  {:<10.10}  {:<8.8}  {:<8.8}  {:<10.10}  {:<10.10}"
    lines = [
        row.format(
            "Username",
            "IP Address",
            "Start",
            "Elapsed",
            "FileDes",
            "HttpCnt",
            "ReadPerms",
            "WritePerms",
        )
    ]
    now = int(time.time())
    sessions = [s for s in ctx.sessions if s.logged_in]
    for index, session in enumerate(sessions):
        lines.append(
            row.format(
                session.username or "",
                session.address,
                str(int(session.started)),
                str(now - int(session.started)),
                str(index + 10),
                "1",
                "0",
                "0",
            )
        )
    return [*lines, f"{len(sessions)} users connected."]
