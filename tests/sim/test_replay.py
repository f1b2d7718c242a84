"""Acceptance: every request captured from a real Asterisk 22 (capture 1, a single-file
office), replayed in capture order against the simulator serving the fixture office, gets the
captured answer (varying values masked: see replay.MASKED_HEADERS). The simulator is faithful
by test, not by claim. Capture 2 (the FreePBX layout) is replayed by test_replay_freepbx.py."""

from __future__ import annotations

import shutil

import pytest

from drivers.asterisk import wire
from tests.conftest import AGENT_SECRET, FIXTURES
from tests.sim.replay import Capture, Exchange, Replayer, mask, split


def _copy_scratch_pjsip(replayer: Replayer) -> None:
    """The capture wrote its naive UpdateConfig to a scratch copy of pjsip.conf that it had
    made beforehand (UpdateConfig cannot create files)."""
    shutil.copyfile(
        replayer.etc / "pjsip.conf", replayer.etc / "pjsip-naive-updateconfig-test.conf"
    )


def _restore_original_config(replayer: Replayer) -> None:
    """Between the main session and the second one, the capture put the original config files
    back (its later GetConfig shows no trace of the first session's UpdateConfig edits)."""
    shutil.copytree(replayer.simulator.office.config_dir, replayer.etc, dirs_exist_ok=True)


def _restart_booting(replayer: Replayer) -> None:
    """The capture shut Asterisk down (events_shutdown) and connected while it started."""
    replayer.sessions.clear()
    replayer.call(replayer.simulator.restart(booting=True))


def _finish_booting(replayer: Replayer) -> None:
    """Between these exchanges the contacts were qualified and the registrations attempted
    (events_after_restart): those events reach the boot session and are set aside here."""
    replayer.call(replayer.simulator.settle())
    got = [mask(wire.decode(b[:-4])) for b in replayer.sessions["boot"].read_messages(0, grace=0.2)]
    captured = (FIXTURES / "asterisk-ami" / "transcripts" / "events_after_restart.txt").read_bytes()
    expected = [mask(wire.decode(b[:-4])) for b in split(captured)]
    # The same events; their order follows qualify timing, which is not simulated.
    assert sorted(got) == sorted(expected)


CAPTURE = Capture(
    folder=FIXTURES / "asterisk-ami",
    office=FIXTURES / "offices" / "northwind.toml",
    setup={
        "update_config_naive_all_sections_named_102-app": _copy_scratch_pjsip,
        "banner_second_session": _restore_original_config,
        "boot_banner": _restart_booting,
        "boot_pjsip_show_registrations_outbound_later": _finish_booting,
    },
    event_sessions=frozenset({"ev", "ev2", "sd"}),
    hash_ordered=frozenset({"device_state_list", "extension_state_list"}),
    secrets={"agent": AGENT_SECRET},
)
EXCHANGES = CAPTURE.exchanges()


@pytest.mark.parametrize("exchange", EXCHANGES, ids=[e.name for e in EXCHANGES])
def test_replay(replayer: Replayer, exchange: Exchange) -> None:
    replayer.replay(exchange)
