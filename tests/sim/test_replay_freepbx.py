"""Acceptance: every AMI exchange of capture 2 (the Northwind office in FreePBX 17's file
layout, with maintenance mode, contact removal, IAX2 peers and ACL tests) replayed in capture
order against the simulator serving that office gets the captured answer, byte for byte, with
only clock-like values masked (replay.MASKED_HEADERS and MASKED_PATTERNS).

What the capture did outside AMI between two exchanges (restoring files after UpdateConfig,
loading the README's extras, a phone registering or refreshing, an Asterisk restart) is done
here by the `setup` hooks, through the simulator's own model: a refused refresh is refused by
the simulated registrar because of maintenance or an ACL, not by the test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from drivers.asterisk import wire
from drivers.asterisk.sim.live import Contact
from tests.conftest import FIXTURES
from tests.sim.replay import Capture, Exchange, Replayer, mask, split

FOLDER = FIXTURES / "asterisk-ami-freepbx"
EXTRAS = FOLDER / "pbx-config-extras"


def _restore(*names: str) -> Callable[[Replayer], None]:
    """The capture put the named files (all when none are named) back byte for byte."""

    def restore(replayer: Replayer) -> None:
        original = replayer.simulator.office.config_dir
        for name in names or [p.name for p in original.iterdir()]:
            shutil.copyfile(original / name, replayer.etc / name)

    return restore


def _extra(*pairs: tuple[str, str]) -> Callable[[Replayer], None]:
    """The capture replaced live files with the README's extras (pbx-config-extras/)."""

    def load(replayer: Replayer) -> None:
        for extra, target in pairs:
            shutil.copyfile(EXTRAS / extra, replayer.etc / target)

    return load


def _refresh(aor: str, outcome: str) -> Callable[[Replayer], None]:
    """The phone on `aor` sent a REGISTER refresh; the simulated registrar decides."""

    def refresh(replayer: Replayer) -> None:
        assert replayer.run(lambda: replayer.simulator.refresh(aor)) == outcome

    return refresh


def _restart_for_boot_session(replayer: Replayer) -> None:
    """`core stop now`, then a fresh start; by the boot session's login (Uptime 4) the PBX was
    fully booted and had qualified 102 (answered) and 108 (never answers), the others not yet."""
    replayer.retire_all()
    replayer.call(replayer.simulator.restart(booting=True))
    replayer.call(replayer.simulator.qualify("102"))
    replayer.call(replayer.simulator.qualify("108"))
    replayer.run(replayer.simulator.ctx.live.fully_booted)


def _fresh_start_without_phones(replayer: Replayer) -> None:
    """`upd3 ran last, on a fresh start without phones`: every device is gone; the contacts
    come back from the internal database, not yet qualified."""
    replayer.retire_all()
    replayer.run(replayer.simulator.ctx.live.unplug_all)
    replayer.call(replayer.simulator.restart(booting=True))
    replayer.run(replayer.simulator.ctx.live.fully_booted)


def _settled_after_restart(replayer: Replayer) -> None:
    """Before part C (41 s after the start) every contact had been qualified and both trunk
    registrations attempted."""
    replayer.call(replayer.simulator.settle())


def _register_105_from_the_namespace(replayer: Replayer) -> None:
    """Part E: 105's desk phone registered from 198.18.5.2 through transport-ns."""
    phone = Contact(
        aor="105",
        uri="sip:105@198.18.5.2:5060",
        user_agent="Yealink SIP-T46U 108.86.0.90",
        status="Reachable",
        rtt_usec=1,
        call_id="1-12131@198.18.5.2",
    )
    assert replayer.run(lambda: replayer.simulator.register(phone)) == "200"
    replayer.call(replayer.simulator.qualify("105"))


def _unregister_105(replayer: Replayer) -> None:
    assert replayer.run(lambda: replayer.simulator.unregister("105")) == "200"


def _qualify(aor: str) -> Callable[[Replayer], None]:
    def qualify(replayer: Replayer) -> None:
        replayer.call(replayer.simulator.qualify(aor))

    return qualify


def _registration_retry(name: str) -> Callable[[Replayer], None]:
    def retry(replayer: Replayer) -> None:
        replayer.call(replayer.simulator.retry_registration(name))

    return retry


def _cdr_after_hangup(messages: list[wire.Message]) -> list[wire.Message]:
    """The Cdr event comes from the CDR engine's own thread: the capture has it before the
    Hangup in some calls and after it in others. Compared with the Cdr last."""
    return [m for m in messages if wire.get(m, "Event") != "Cdr"] + [
        m for m in messages if wire.get(m, "Event") == "Cdr"
    ]


ORIGINATES = [
    "maint_crm_originate_102-app_before",
    "contact_crm_originate_100_after_refresh",
    "acl_crm_originate_105_baseline",
    "acl_crm_originate_105_deny_permit",
    "acl_crm_originate_105_contact_acl",
]
PART_E_FILES = ("pjsip_custom.conf", "pjsip.endpoint_custom_post.conf")

CAPTURE = Capture(
    folder=FOLDER,
    office=FIXTURES / "offices" / "northwind-freepbx.toml",
    setup={
        "fp_update_config_pjsip_conf_append_104": _restore(),
        "fp_upd_get_config_pjsip_category_104_restored": _restore(),
        "fp_u3b_reload_res_pjsip_after_restore": _restore(),
        "fp_u3c_reload_res_pjsip_after_restore": _restore(),
        "maint_pjsip_show_contacts_after_refused_refresh": _refresh("102-app", "503"),
        "maint_boot_banner": _restart_for_boot_session,
        "events_dbdel.banner": _settled_after_restart,
        "contact_pjsip_show_contacts_after_refresh": _refresh("100", "200"),
        "iax2_reload_chan_iax2": _extra(("iax.conf", "iax.conf")),
        "acl_reload_res_pjsip_add_transport": _extra(
            ("pjsip_custom.conf.part-E", "pjsip_custom.conf"),
            ("pjsip.endpoint_custom_post.conf.part-E1-transport", PART_E_FILES[1]),
        ),
        "acl_reload_manager_add_secmon": _extra(
            ("manager_custom.conf.part-E", "manager_custom.conf")
        ),
        "acl_pjsip_show_endpoint_105_registered": _register_105_from_the_namespace,
        "acl_reload_res_pjsip_deny_permit": _extra(
            ("pjsip.endpoint_custom_post.conf.part-E2-deny-permit", PART_E_FILES[1])
        ),
        "acl_pjsip_show_contacts_deny_permit": _refresh("105", "401"),
        "acl_reload_res_pjsip_contact_acl": _extra(
            ("pjsip.endpoint_custom_post.conf.part-E3-contact-acl", PART_E_FILES[1])
        ),
        "acl_pjsip_show_contacts_contact_acl": _refresh("105", "401"),
        "acl_reload_res_pjsip_acl_removed": _extra(
            ("pjsip.endpoint_custom_post.conf.part-E1-transport", PART_E_FILES[1])
        ),
        "acl_cleanup_pjsip_show_contacts_after_unregister": _unregister_105,
        "acl_cleanup_reload_res_pjsip": _restore(*PART_E_FILES),
        "acl_cleanup_reload_manager": _restore("manager_custom.conf"),
        "fp_upd3_banner": _fresh_start_without_phones,
    },
    during={
        # Events the PBX sent on its own right after these logins (a qualify that timed out,
        # a trunk registration retry): they landed in the capture's grace window.
        "fp_upd3_login": (2, _qualify("100")),
        "contact_login": (2, _registration_retry("trunk-provider-reg")),
    },
    event_sessions=frozenset({"ev", "evsec"}),
    normalise=dict.fromkeys(ORIGINATES, _cdr_after_hangup),
)
EXCHANGES = CAPTURE.exchanges()


@pytest.mark.parametrize("exchange", EXCHANGES, ids=[e.name for e in EXCHANGES])
def test_replay(replayer: Replayer, exchange: Exchange) -> None:
    replayer.replay(exchange)


def test_every_exchange_of_the_capture_is_replayed() -> None:
    """Nothing of capture 2 is skipped: every request file has its exchange."""
    requests = {p.name for p in (FOLDER / "transcripts").glob("*.request.txt")}
    replayed = {f"{e.name}.request.txt" for e in EXCHANGES if e.request is not None}
    assert requests == replayed
    assert len(replayed) == 167


def test_maintenance_events_reach_a_second_session_once_per_real_change(
    replayer: Replayer,
) -> None:
    """Fact 34, seen from the `ev` listener: the PJSIPMaintenanceStatus events the simulator
    sent it during part B are the captured ones (no event for a repeated on/off)."""
    captured = (FOLDER / "transcripts" / "events_maintenance.txt").read_bytes()
    wanted = [
        mask(m)
        for m in (wire.decode(b[:-4]) for b in split(captured))
        if wire.get(m, "Event") == "PJSIPMaintenanceStatus"
    ]
    seen = [
        mask(m)
        for label, messages in replayer.retired
        if label == "ev"
        for m in messages
        if wire.get(m, "Event") == "PJSIPMaintenanceStatus"
    ]
    assert seen == wanted
