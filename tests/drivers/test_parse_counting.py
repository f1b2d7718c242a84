"""Parsers behind the count, fed recorded transcripts (both captures) and small crafted
answers: live endpoint lists, effective options, IAX2 peers, hints, dialplan objects."""

from __future__ import annotations

from pathlib import Path

from drivers.asterisk import wire
from drivers.asterisk.parse import (
    effective_options,
    hint_devices,
    parse_contacts,
    parse_dialplan,
    parse_endpoints,
    parse_get_config,
    parse_hints,
)
from drivers.asterisk.parse.dialplan import parse_peer_dials
from drivers.asterisk.parse.getconfig import ConfigReader
from drivers.asterisk.parse.live import (
    LiveEndpoint,
    parse_endpoint_detail,
    parse_live_endpoints,
    reconcile,
)
from drivers.asterisk.parse.peers import (
    keep_peer_option,
    parse_live_peers,
    parse_peers,
    parse_register,
)
from drivers.models import Endpoint
from tests.conftest import FIXTURES, TRANSCRIPTS

CAPTURE2 = FIXTURES / "asterisk-ami-freepbx" / "transcripts"


def messages(name: str, folder: Path = TRANSCRIPTS) -> list[wire.Message]:
    data = (folder / f"{name}.txt").read_bytes()
    return [wire.decode(block) for block in data.split(b"\r\n\r\n") if block.strip()]


def dialplan(*steps: tuple[str, str, str, str, str]) -> list[wire.Message]:
    return [
        [
            ("Event", "ListDialplan"),
            ("Context", context),
            ("Extension", exten),
            ("Priority", priority),
            ("Application", app),
            ("AppData", data),
        ]
        for context, exten, priority, app, data in steps
    ]


# -- live endpoints ---------------------------------------------------------------------------


def test_live_endpoints_from_the_list_in_both_captures() -> None:
    for found in (
        parse_live_endpoints(messages("pjsip_show_endpoints")),
        parse_live_endpoints(messages("fp_pjsip_show_endpoints", CAPTURE2)),
    ):
        by_name = {e.name: e for e in found}
        assert len(found) == 16, "fact 26: the include layout changes nothing in the list"
        assert by_name["102-app"].aors == ("102-app",)
        assert by_name["trunk-provider"].outbound_auths == ("trunk-provider-auth",)
        assert by_name["100"].auths == ("100",)


def test_reconcile_lets_the_live_list_win_and_reports_both_views() -> None:
    live = [
        LiveEndpoint("100", ("100",), ("100",), ()),
        LiveEndpoint("101", ("101",), ("101",), ()),
        LiveEndpoint("200", ("200",), ("200",), ()),
    ]
    configured = [
        Endpoint("100", aors=("100",), inbound_auth=True, options=(("auth", "100"),)),
        Endpoint("101", aors=("101-new",), inbound_auth=True, options=(("auth", "101"),)),
        Endpoint("130", aors=("130",), inbound_auth=True, options=(("auth", "130"),)),
    ]
    result = reconcile(live, configured)
    assert [e.name for e in result.endpoints] == ["100", "101"]
    assert result.endpoints[1].aors == ("101",), "Asterisk runs the old AOR until a reload"
    assert result.only_live == ("200",)
    text = "\n".join(result.warnings)
    assert "endpoint 101: aors 101 in Asterisk, 101-new in the file" in text
    assert "endpoint 130 is in pjsip.conf but not loaded in Asterisk" in text


def test_endpoint_detail_for_an_endpoint_the_files_lost() -> None:
    trunk, aors = parse_endpoint_detail(messages("pjsip_show_endpoint_trunk"))
    assert trunk.name == "trunk-provider" and trunk.identify and trunk.outbound_auth
    assert trunk.callerid_number is None, "<unknown> is no caller ID"
    assert [(a.name, a.static_contacts) for a in aors] == [
        ("trunk-provider", ("sip:127.0.0.2:5060",))
    ]
    alice, aors = parse_endpoint_detail(
        messages("pjsip_show_endpoint_registered_two_contacts_same_aor")
    )
    assert (alice.callerid_name, alice.callerid_number) == ("Alice Nguyen", "101")
    assert aors[0].static_contacts == (), "registered contacts are not configured ones"


# -- effective options -----------------------------------------------------------------------


def test_a_plus_addition_is_the_effective_last_option() -> None:
    sections = parse_get_config(messages("fp_get_config_pjsip_category_104", CAPTURE2)[0])
    endpoint = next(s for s in sections if s.get("type") == "endpoint")
    options = dict(effective_options(endpoint))
    assert options["rtp_keepalive"] == "15", "fact 21: [104](+type=endpoint) merged last"
    assert options["context"] == "from-internal"
    answer = messages("fp_pjsip_show_endpoint_104_plus_section", CAPTURE2)
    detail = next(dict(m) for m in answer if wire.get(m, "Event") == "EndpointDetail")
    assert detail["RtpKeepalive"] == options["rtp_keepalive"], "the value Asterisk applies"
    assert detail["DeviceStateBusyAt"] == options["device_state_busy_at"]


def test_the_endpoint_filter_reads_across_the_include_files() -> None:
    """Fact 20: `Filter: type=endpoint` finds the endpoints of every included file, so the
    file view of the FreePBX office matches its live list and nothing is reported."""
    sections = parse_get_config(
        messages("fp_get_config_pjsip_filter_type_endpoint", CAPTURE2)[0]
    )
    configured = parse_endpoints(sections)
    live = parse_live_endpoints(messages("fp_pjsip_show_endpoints", CAPTURE2))
    result = reconcile(live, configured)
    assert len(result.endpoints) == 16 and result.only_live == ()
    assert result.warnings == ()


def test_effective_options_keep_accumulating_ones_and_drop_secrets() -> None:
    sections = parse_get_config(messages("get_config_pjsip")[0])
    (endpoint,) = parse_endpoints([s for s in sections if s.name == "107" and s.get("aors")])
    allow = [v for k, v in endpoint.options if k == "allow"]
    assert len(allow) >= 1 and ("disallow", "all") in endpoint.options
    auth = next(s for s in sections if s.name == "107" and s.get("type") == "auth")
    assert "password" not in dict(effective_options(auth)), "secrets are never kept"


# -- IAX2 peers ------------------------------------------------------------------------------


def test_iax2_phone_and_trunk_from_the_live_list_and_iax_conf() -> None:
    live = parse_live_peers(messages("iax2_iaxpeerlist", CAPTURE2))
    assert [p.name for p in live] == ["120", "branch-office"]
    assert parse_live_peers(messages("iax2_iaxpeers", CAPTURE2)) == live, "name/username split"
    raw = messages("iax2_get_config_iax", CAPTURE2)[0]
    reader = ConfigReader(keep=keep_peer_option)
    reader.feed_pairs(raw)
    reader.end_message()
    kept = [value for section in reader.sections for _, value in section.options]
    assert kept and not any("nwT3st" in v for v in kept), "the secrets are never kept"
    peers = parse_peers("IAX2", reader.sections, live, {})
    by_name = {e.name: e for e in peers.endpoints}
    phone, trunk = by_name["120"], by_name["branch-office"]
    assert (phone.technology, phone.callerid_number, phone.peer and phone.peer.dynamic) == (
        "IAX2",
        "120",
        True,
    )
    assert trunk.callerid_number is None and trunk.peer and trunk.peer.dynamic
    assert peers.contacts == (), "neither is registered (fact 43)"
    assert peers.warnings == ()


def test_a_peer_missing_on_one_side_is_reported_with_both_views() -> None:
    live = parse_live_peers(messages("iax2_iaxpeerlist", CAPTURE2))
    config = [s for s in parse_get_config(messages("iax2_get_config_iax", CAPTURE2)[0])]
    peers = parse_peers("IAX2", [s for s in config if s.name != "120"], live, {})
    assert any("IAX2 peer 120 is loaded in Asterisk but not in" in w for w in peers.warnings)
    peers = parse_peers("IAX2", config, live[1:], {})
    not_loaded = "IAX2 peer 120 is in its configuration file but not loaded"
    assert any(not_loaded in w for w in peers.warnings)
    assert [e.name for e in peers.endpoints] == ["branch-office"], "the live list counts"


def test_register_lines_and_the_dialplan_mark_trunks_and_phones() -> None:
    assert parse_register("branch:s3cret@pbx2.example.com:4569/1000") == (
        "branch",
        "pbx2.example.com",
    )
    dials = parse_peer_dials(
        dialplan(
            ("internal-extensions", "120", "hint", "IAX2/120", ""),
            ("internal-extensions", "120", "1", "Dial", "IAX2/120,20"),
            ("outbound-calls", "_8XXX", "1", "Dial", "IAX2/branch-office/${EXTEN:1},60"),
            ("outbound-calls", "_9X.", "1", "Dial", "SIP/${EXTEN:1}@provider,60"),
            ("internal-extensions", "300", "1", "Dial", "IAX2/${PEER}"),
        )
    )
    assert dials[("IAX2", "120")].extensions == {"120"}
    assert dials[("IAX2", "branch-office")].with_number
    assert not dials[("IAX2", "branch-office")].extensions
    assert dials[("SIP", "provider")].with_number
    assert not any(name.startswith("$") for _, name in dials)


# -- contacts, hints, dialplan objects -------------------------------------------------------


def test_contacts_are_ordered_by_address_numerically() -> None:
    def contact(uri: str, addr: str) -> wire.Message:
        return [
            ("Event", "ContactList"),
            ("ObjectName", "101;@x" + addr),
            ("Uri", uri),
            ("ViaAddr", addr),
            ("ViaPort", "5060"),
        ]

    found = parse_contacts(
        [contact("sip:101@127.0.1.113", "127.0.1.113"), contact("sip:101@127.0.1.13", "127.0.1.13")]
    )
    assert [c.source for c in found] == ["127.0.1.13:5060", "127.0.1.113:5060"]


def test_hints_split_on_ampersand_and_drop_presence() -> None:
    assert hint_devices("PJSIP/301&Custom:DND301,CustomPresence:301") == (
        "PJSIP/301",
        "Custom:DND301",
    )
    (hint,) = parse_hints(
        dialplan(("ext-local", "301", "hint", "PJSIP/301&Custom:DND301,CustomPresence:301", ""))
    )
    assert hint.devices == ("PJSIP/301", "Custom:DND301")


def test_inbound_routes_into_a_phone_tree_and_feature_codes() -> None:
    objects = parse_dialplan(
        dialplan(
            ("ivr-main", "s", "1", "Background", "custom/menu"),
            ("from-trunk", "_X.", "1", "Goto", "ivr-main,s,1"),
            ("ext-did-0002", "5551234", "1", "Goto", "ivr-main,s,1"),
            ("my-trunk-context", "s", "1", "Goto", "ivr-main,s,1"),
            ("internal-extensions", "900", "1", "Goto", "ivr-main,s,1"),
            ("app-vmmain", "*97", "1", "Answer", ""),
            ("app-vmmain", "*97", "2", "VoiceMailMain", "${AMPUSER}@default"),
            ("app-daynight", "*28", "1", "Set", "DEVICE_STATE(Custom:DAYNIGHT)=INUSE"),
            ("internal-features", "_*80XXX", "1", "Dial", "PJSIP/${EXTEN:3},15,b(sub-autoanswer)"),
        ),
        inbound_contexts={"my-trunk-context"},
    )
    kinds = {f"{o.extension}@{o.context}": o.kind for o in objects}
    assert kinds["_X.@from-trunk"] == "route"
    assert kinds["5551234@ext-did-0002"] == "route"
    assert kinds["s@my-trunk-context"] == "route"
    assert kinds["900@internal-extensions"] == "ivr", "dialling the tree from inside stays an IVR"
    assert kinds["*97@app-vmmain"] == "feature" and kinds["*28@app-daynight"] == "feature"
    assert kinds["_*80XXX@internal-features"] == "intercom"
