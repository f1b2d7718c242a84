"""Property tests of the seat rules over generated offices."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.schema import CountingConfig
from agent.counting.rules import History, count
from drivers.models import (
    Aor,
    Contact,
    DialplanObject,
    Endpoint,
    Inventory,
    Mailbox,
    PbxFacts,
    Queue,
    Registration,
)

NOW = datetime(2026, 11, 25, tzinfo=UTC)
FACTS = PbxFacts(vendor="asterisk", version="22.10.1")
DESK = ["Yealink SIP-T46S 66.86.0.15", "PolycomVVX-VVX_411-UA/6.4", "snomD785/10.1", ""]
APPS = ["Zoiper rv2.10.20.2", "Bria iOS release 6.5.4", "Linphone-Desktop/5.0"]


def phone(ext: str, ua: str | None) -> tuple[Endpoint, Aor, list[Contact]]:
    endpoint = Endpoint(
        name=ext,
        callerid_name=f"User {ext}",
        callerid_number=ext,
        aors=(ext,),
        mailboxes=(f"{ext}@default",),
        inbound_auth=True,
    )
    contacts = [Contact(aor=ext, uri=f"sip:{ext}@10.0.0.1:5060", user_agent=ua)] if ua else []
    return endpoint, Aor(ext, 1), contacts


def app(ext: str, style: str, ua: str | None) -> tuple[Endpoint, Aor, list[Contact]]:
    name = {"suffix": f"{ext}-app", "prefix": f"app{ext}", "numeric": f"8{ext}"}[style]
    endpoint = Endpoint(
        name=name, callerid_name=f"User {ext}", callerid_number=ext, aors=(name,), inbound_auth=True
    )
    contacts = [Contact(aor=name, uri=f"sip:{name}@10.0.0.9:5060", user_agent=ua)] if ua else []
    return endpoint, Aor(name, 1), contacts


@st.composite
def offices(draw: st.DrawFn) -> Inventory:
    count_ = draw(st.integers(min_value=1, max_value=25))
    exts = [str(200 + i) for i in range(count_)]
    endpoints, aors, contacts = [], [], []
    for ext in exts:
        for part in [phone(ext, draw(st.sampled_from([*DESK, None])))] + (
            [
                app(
                    ext,
                    draw(st.sampled_from(["suffix", "prefix", "numeric"])),
                    draw(st.sampled_from([*APPS, None])),
                )
            ]
            if draw(st.booleans())
            else []
        ):
            endpoints.append(part[0])
            aors.append(part[1])
            contacts += part[2]
    return Inventory(
        facts=FACTS,
        endpoints=tuple(endpoints),
        aors=tuple(aors),
        contacts=tuple(contacts),
        mailboxes=tuple(Mailbox("default", e) for e in exts),
    )


def billable(inventory: Inventory) -> int:
    history = History(observing_since=NOW, last_registered={})
    return count(inventory, CountingConfig(), history, site_id="t", now=NOW).billable


@settings(max_examples=60, deadline=None)
@given(offices())
def test_each_phone_extension_is_one_seat(inventory: Inventory) -> None:
    phones = {e.name for e in inventory.endpoints if e.callerid_number == e.name}
    assert billable(inventory) == len(phones)


@settings(max_examples=60, deadline=None)
@given(offices(), st.sampled_from(["mailbox", "ivr", "queue", "trunk"]))
def test_non_user_objects_never_change_the_count(inventory: Inventory, kind: str) -> None:
    before = billable(inventory)
    if kind == "mailbox":
        extra = replace(inventory, mailboxes=(*inventory.mailboxes, Mailbox("default", "999")))
    elif kind == "ivr":
        ivr = DialplanObject("ivr-main", "s", "ivr", "phone tree")
        extra = replace(inventory, dialplan=(*inventory.dialplan, ivr))
    elif kind == "queue":
        extra = replace(inventory, queues=(*inventory.queues, Queue("support")))
    else:
        trunk = Endpoint(
            name="trunk-x",
            aors=("trunk-x",),
            outbound_auth=True,
            identify=True,
            outbound_registration=True,
        )
        extra = replace(
            inventory,
            endpoints=(*inventory.endpoints, trunk),
            aors=(*inventory.aors, Aor("trunk-x", 0, ("sip:192.0.2.1:5060",))),
            registrations=(
                Registration(
                    "trunk-x-reg", "trunk-x", "sip:192.0.2.1", "sip:x@192.0.2.1", "Registered"
                ),
            ),
        )
    assert billable(extra) == before


@settings(max_examples=60, deadline=None)
@given(offices(), st.data())
def test_an_app_for_an_existing_extension_never_changes_the_count(
    inventory: Inventory, data: st.DataObject
) -> None:
    phones = sorted(e.name for e in inventory.endpoints if e.callerid_number == e.name)
    ext = data.draw(st.sampled_from(phones))
    names = {e.name for e in inventory.endpoints}
    style = data.draw(
        st.sampled_from(
            [s for s in ("suffix", "prefix", "numeric") if app(ext, s, None)[0].name not in names]
            or ["suffix"]
        )
    )
    endpoint, aor, contacts = app(ext, style, data.draw(st.sampled_from(APPS)))
    if endpoint.name in names:
        return
    before = billable(inventory)
    extra = replace(
        inventory,
        endpoints=(*inventory.endpoints, endpoint),
        aors=(*inventory.aors, aor),
        contacts=(*inventory.contacts, *contacts),
    )
    assert billable(extra) == before


@settings(max_examples=60, deadline=None)
@given(offices(), st.sampled_from([*DESK, None]))
def test_adding_a_phone_extension_adds_exactly_one(inventory: Inventory, ua: str | None) -> None:
    endpoint, aor, contacts = phone("7777", ua)
    extra = replace(
        inventory,
        endpoints=(*inventory.endpoints, endpoint),
        aors=(*inventory.aors, aor),
        contacts=(*inventory.contacts, *contacts),
    )
    assert billable(extra) == billable(inventory) + 1


@settings(max_examples=60, deadline=None)
@given(offices(), st.randoms(use_true_random=False))
def test_the_report_never_depends_on_listing_order(inventory: Inventory, rnd) -> None:  # type: ignore[no-untyped-def]
    def shuffled(items: tuple) -> tuple:  # type: ignore[type-arg]
        out = list(items)
        rnd.shuffle(out)
        return tuple(out)

    mixed = replace(
        inventory,
        endpoints=shuffled(inventory.endpoints),
        aors=shuffled(inventory.aors),
        contacts=shuffled(inventory.contacts),
        mailboxes=shuffled(inventory.mailboxes),
    )
    history = History(observing_since=NOW, last_registered={})
    first = count(inventory, CountingConfig(), history, site_id="t", now=NOW).to_json()
    second = count(mixed, CountingConfig(), history, site_id="t", now=NOW).to_json()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


APP_AGENTS = [
    *APPS,
    "Z 5.6.6 v2.10.20.5",
    "Bria 3 release 3.5.0b stamp 69410",
    "LinphoneAndroid/4.0.1 (belle-sip/1.6.3)",
    "MicroSIP/3.19.8",
]


@settings(max_examples=80, deadline=None)
@given(offices(), st.data())
def test_adding_an_app_device_to_an_existing_seat_never_changes_the_count(
    inventory: Inventory, data: st.DataObject
) -> None:
    history = History(observing_since=NOW, last_registered={})
    before = count(inventory, CountingConfig(), history, site_id="t", now=NOW)
    seat = data.draw(st.sampled_from(before.seats))
    member = data.draw(st.sampled_from([m.endpoint for m in seat.endpoints]))
    aor = next(e for e in inventory.endpoints if e.name == member).aors[0]
    octets = [data.draw(st.integers(0, 255)), data.draw(st.integers(0, 255))]
    address = f"10.{octets[0]}.{octets[1]}.{data.draw(st.integers(1, 254))}"
    port = data.draw(st.integers(1024, 65535))
    app_device = Contact(
        aor=aor,
        uri=f"sip:{aor}@{address}:{port}",
        user_agent=data.draw(st.sampled_from(APP_AGENTS)),
        source=f"{address}:{port}",
    )
    after = count(
        replace(inventory, contacts=(*inventory.contacts, app_device)),
        CountingConfig(),
        history,
        site_id="t",
        now=NOW,
    )
    assert after.billable == before.billable
    assert [s.extension for s in after.seats] == [s.extension for s in before.seats]
    changed = {s.extension: s for s in after.seats}[seat.extension]
    physical = [d for d in changed.devices if d.kind not in ("app", "unknown")]
    if physical:
        assert changed.devices[0].kind not in ("app", "unknown"), "a phone stays the primary"
