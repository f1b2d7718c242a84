"""The pure parts of Asterisk feature switching: the captured answers parsed (maintenance list,
AstDB contacts), the agent's blocks found and removed exactly, and the on-site ACL that never
allows what the customer's own rules deny (property-tested)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from drivers.asterisk import wire
from drivers.asterisk.switching import acl, blocks, live
from tests.conftest import FIXTURES

TRANSCRIPTS = FIXTURES / "asterisk-ami-freepbx" / "transcripts"


def answer(name: str) -> list[wire.Message]:
    data = (TRANSCRIPTS / f"{name}.txt").read_bytes()
    return [wire.decode(b) for b in data.split(b"\r\n\r\n") if b]


def test_maintenance_lists_parse() -> None:
    assert live.parse_maintenance(answer("maint_show_maintenance_none")) == set()
    assert live.parse_maintenance(answer("maint_show_maintenance_list")) == {"102-app"}
    assert len(live.parse_maintenance(answer("maint_show_maintenance_all_on"))) == 16
    assert live.parse_maintenance(answer("maint_show_maintenance_104_not_in_maintenance")) == set()


def test_registrar_contacts_parse_with_their_exact_values() -> None:
    contacts = live.parse_contacts(answer("contact_dbgettree_registrar"))
    assert len(contacts) == 8
    app = next(c for c in contacts if c.endpoint == "102-app")
    assert app.key == "contact/102-app;@24ff485eb5d4cb8dd3a07bfb833567cf"
    assert app.via_addr == "127.0.5.14" and app.user_agent.startswith("Bria iOS")
    assert app.value.startswith('{"via_addr":"127.0.5.14"')


def test_manager_cli_output_parses() -> None:
    lines = [
        "",
        "          username: crm",
        "ACL: (unnamed)",
        "---------------------------------------------",
        "  0:  deny - 0.0.0.0/0.0.0.0",
        "  1: allow - 127.0.0.0/255.0.0.0",
    ]
    assert live.parse_manager_user(lines) == [
        ("deny", "0.0.0.0/0.0.0.0"),
        ("allow", "127.0.0.0/255.0.0.0"),
    ]
    assert live.parse_manager_user(["There is no manager called x"]) is None
    assert live.ha_rule("::/0") == "::/::"


def test_blocks_are_found_and_removed_exactly() -> None:
    customer = "[104]\ntype=endpoint\n; no newline at the end"
    one = blocks.block("offsite_devices", "104", "endpoint", acl.DENY_ALL)
    two = blocks.block("integrations", "crm", "", acl.DENY_ALL)
    text = blocks.add(blocks.add(customer, one), two)
    assert blocks.add(text, one) == text, "never twice"
    assert [(f, c) for f, c, _ in blocks.find(text)] == [
        ("offsite_devices", "104"),
        ("integrations", "crm"),
    ]
    without, found = blocks.remove(text, one)
    assert found == "removed" and blocks.remove(without, two) == (customer, "removed")
    edited = text.replace(one, one.replace("::/0", "10.0.0.0/8"))
    assert blocks.remove(edited, one) == (edited, "edited")
    assert blocks.remove(customer, one) == (customer, "absent")


NETWORKS = st.builds(
    lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
RULES = st.lists(st.tuples(st.sampled_from(["deny", "permit"]), NETWORKS), max_size=5)
ADDRESSES = st.builds(lambda n: str(ipaddress.ip_address(n)), st.integers(0, 2**32 - 1))


@given(RULES, st.lists(NETWORKS, min_size=1, max_size=3), ADDRESSES)
def test_on_site_acl_allows_exactly_what_the_customer_allows_on_site(
    customer: list[tuple[str, str]], site: list[str], address: str
) -> None:
    ours = acl.on_site_only(customer, site)
    on_site = any(
        ipaddress.ip_address(address) in ipaddress.ip_network(n)
        for n in (*site, *acl.LOOPBACK)
        if ipaddress.ip_network(n).version == 4
    )
    assert acl.allows(customer + ours, address) == (acl.allows(customer, address) and on_site)
