"""UpdateConfig rewrites files exactly as Asterisk 22 did, with the same traps (facts 17-19)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.base import Reply, Session, SimContext
from drivers.asterisk.sim.conffile import ConfigStore
from drivers.asterisk.sim.config_actions import get_config, update_config
from drivers.asterisk.sim.live import LiveState
from tests.conftest import FIXTURES, TRANSCRIPTS

AFTER = FIXTURES / "asterisk-ami" / "pbx-config-after-updateconfig"
DATE = re.compile(rb";! Creation Date: .*\n")


@pytest.fixture
def ctx(tmp_path: Path) -> SimContext:
    etc = tmp_path / "etc"
    shutil.copytree(FIXTURES / "asterisk-ami" / "pbx-config", etc)
    return SimContext(config=ConfigStore(etc), live=LiveState(), system_name="nw-pbx01")


AGENT = Session(username="agent", read=frozenset({"system", "config"}), write=frozenset({"config"}))


def request(name: str) -> wire.Message:
    return wire.decode((TRANSCRIPTS / f"{name}.request.txt").read_bytes()[:-4])


def encoded(reply: Reply) -> bytes:
    return b"".join(wire.encode(m) for m in reply.messages)


def same_file(written: Path, captured: Path) -> None:
    assert DATE.sub(b"", written.read_bytes()) == DATE.sub(b"", captured.read_bytes())


def test_acl_with_catfilter_rewrites_pjsip_conf_like_asterisk(ctx: SimContext) -> None:
    reply = update_config(ctx, AGENT, request("update_config_pjsip_102-app_acl"))
    assert encoded(reply) == (TRANSCRIPTS / "update_config_pjsip_102-app_acl.txt").read_bytes()
    same_file(ctx.config.root / "pjsip.conf", AFTER / "pjsip.conf")
    after = get_config(ctx, AGENT, request("get_config_pjsip_102-app_after_acl"))
    assert encoded(after) == (TRANSCRIPTS / "get_config_pjsip_102-app_after_acl.txt").read_bytes()


def test_a_bare_category_name_hits_every_section_of_that_name(ctx: SimContext) -> None:
    scratch = ctx.config.root / "pjsip-naive-updateconfig-test.conf"
    shutil.copyfile(ctx.config.root / "pjsip.conf", scratch)
    update_config(ctx, AGENT, request("update_config_naive_all_sections_named_102-app"))
    same_file(scratch, AFTER / "pjsip-naive-updateconfig-test.conf")


def test_template_equal_values_are_dropped_changing_behaviour(ctx: SimContext) -> None:
    """Fact 18: [107] loses its own `disallow = all`, so it now also offers alaw."""
    before = ctx.config.read("pjsip.conf")
    update_config(ctx, AGENT, request("update_config_pjsip_102-app_acl"))
    after = ctx.config.read("pjsip.conf")
    endpoint = after.find("107", "endpoint")
    assert endpoint is not None and endpoint.get("disallow") is None
    assert before.find("107", "endpoint").get("disallow") == "all"  # type: ignore[union-attr]


def test_manager_update_with_reload_broadcasts_and_rewrites(ctx: SimContext) -> None:
    reply = update_config(ctx, AGENT, request("update_config_manager_crm_read"))
    assert [wire.get(m, "Module") for m in reply.broadcast] == ["manager"]
    same_file(ctx.config.root / "manager.conf", AFTER / "manager.conf")
    assert not ctx.crashed


def test_manager_reload_with_setvar_crashes_on_the_second_changed_reload(ctx: SimContext) -> None:
    manager = ctx.config.root / "manager.conf"
    manager.write_text(manager.read_text().replace("writetimeout = 5000", "setvar = X=1"))
    ctx.loaded("manager.conf")
    update_config(ctx, AGENT, request("update_config_manager_crm_read"))
    assert not ctx.crashed, "the first reload survives"
    again = [
        (k, "call,cdr" if k == "Value-000000" else v)
        for k, v in request("update_config_manager_crm_read")
    ]
    update_config(ctx, AGENT, again)
    assert ctx.crashed, "Asterisk 22.10.1 aborts with a double free here (fact 19)"


def test_missing_destination_and_source(ctx: SimContext) -> None:
    reply = update_config(ctx, AGENT, request("update_config_dst_missing_file"))
    assert encoded(reply) == (TRANSCRIPTS / "update_config_dst_missing_file.txt").read_bytes()
    # manager.c checks both names with realpath() first: a missing source fails the same way
    bad = [("Action", "UpdateConfig"), ("SrcFilename", "nope.conf"), ("DstFilename", "x.conf")]
    assert wire.get(update_config(ctx, AGENT, bad).messages[0], "Message") == (
        "File requires escalated privileges"
    )
