"""UpdateConfig against FreePBX's include layout damages it exactly as Asterisk 22.10.1 did
(facts 27-30): the simulator's rewrite of every touched file equals the captured one, byte for
byte but for the creation date, and nothing else is touched."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.base import Reply, Session, SimContext
from drivers.asterisk.sim.conffile import ConfigStore
from drivers.asterisk.sim.config_actions import get_config, update_config
from drivers.asterisk.sim.live import LiveState
from tests.conftest import FIXTURES

FOLDER = FIXTURES / "asterisk-ami-freepbx"
TRANSCRIPTS = FOLDER / "transcripts"
AFTER = FOLDER / "pbx-config-freepbx-after-updateconfig"
DATE = re.compile(rb";! Creation Date: .*\n")
AGENT = Session(username="agent", read=frozenset({"config"}), write=frozenset({"config"}))
TOUCHED = json.loads((AFTER / "touched-files.json").read_text())


@pytest.fixture
def ctx(tmp_path: Path) -> SimContext:
    etc = tmp_path / "etc"
    shutil.copytree(FOLDER / "pbx-config-freepbx", etc)
    return SimContext(config=ConfigStore(etc), live=LiveState(), system_name="nw-pbx01")


def request(path: str) -> wire.Message:
    return wire.decode((FOLDER / path).read_bytes()[:-4])


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def encoded(reply: Reply) -> bytes:
    return b"".join(wire.encode(m) for m in reply.messages)


@pytest.mark.parametrize(
    "variant",
    ["u2-src-pjsip-dst-endpoint-custom-post", "u3-src-dst-pjsip", "u3b-src-dst-pjsip-repeat"],
)
def test_every_file_is_rewritten_as_asterisk_rewrote_it(ctx: SimContext, variant: str) -> None:
    before = digests(ctx.config.root)
    reply = update_config(ctx, AGENT, request(TOUCHED[variant]["request"]))
    assert wire.get(reply.messages[0], "Response") == "Success"
    changed = {n for n, d in digests(ctx.config.root).items() if before[n] != d}
    assert changed == {name for name, _ in TOUCHED[variant]["files_touched"]}
    for name in changed:
        written = DATE.sub(b"", (ctx.config.root / name).read_bytes())
        assert written == DATE.sub(b"", (AFTER / variant / name).read_bytes()), name


def test_a_file_of_only_additions_cannot_be_updated(ctx: SimContext) -> None:
    """Fact 27: Src=Dst=pjsip.endpoint_custom_post.conf is refused, nothing is touched."""
    before = digests(ctx.config.root)
    name = "fp_update_config_endpoint_custom_post_append_104"
    reply = update_config(ctx, AGENT, request(f"transcripts/{name}.request.txt"))
    assert encoded(reply) == (TRANSCRIPTS / f"{name}.txt").read_bytes()
    assert digests(ctx.config.root) == before


def test_after_the_damage_pjsip_conf_cannot_be_read(ctx: SimContext) -> None:
    """Fact 30: the bare lines before any section make the whole include tree invalid."""
    update_config(ctx, AGENT, request(TOUCHED["u3-src-dst-pjsip"]["request"]))
    name = "fp_u3b_get_config_pjsip_after"
    reply = get_config(ctx, AGENT, request(f"transcripts/{name}.request.txt"))
    assert encoded(reply) == (TRANSCRIPTS / f"{name}.txt").read_bytes()
