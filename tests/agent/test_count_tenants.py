"""Counting a multi-tenant PBX: the seat rules run per tenant and the report shows each tenant
and the total; names that repeat across tenants stay apart; history, overrides and objects
shared by every tenant are handled per tenant; a single-tenant PBX counts as before."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import jsonschema

from agent.config.schema import CountingConfig, EndpointOverride
from agent.counting.explain import explain
from agent.counting.model import CountReport
from agent.counting.rules import History, count
from agent.counting.tenants import count_inventory
from drivers.models import Aor, Contact, Endpoint, Inventory, PbxFacts, Queue, Registration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FACTS = PbxFacts(vendor="freeswitch", version="1.10.12-release", system_name="pbx")
YEALINK = "Yealink SIP-T46U 108.86.0.90"


def _phone(name: str, number: str | None = None) -> Endpoint:
    return Endpoint(name, "SIP", callerid_number=number or name, aors=(name,), inbound_auth=True)


def _tenant(domain: str, *names: str, registered: tuple[str, ...] = ()) -> Inventory:
    return Inventory(
        facts=FACTS,
        endpoints=tuple(_phone(n) for n in names),
        aors=tuple(Aor(n, 10) for n in names),
        contacts=tuple(
            Contact(n, f"sip:{n}@10.0.0.{i}", YEALINK) for i, n in enumerate(registered)
        ),
        tenant=domain,
    )


def _run(
    inventory: Inventory, config: CountingConfig | None = None, history: History | None = None
) -> CountReport:
    return count_inventory(
        inventory,
        config or CountingConfig(),
        history or History(NOW, {}),
        site_id="site",
        now=NOW,
    )


def test_each_tenant_and_the_total_with_repeated_numbers_kept_apart() -> None:
    inventory = Inventory(
        facts=FACTS,
        registrations=(Registration("gw", None, "sip:gw@1.2.3.4", "sip:gw@1.2.3.4", "REGED"),),
        queues=(Queue("manual_calls"),),
        tenants=(
            _tenant("a.example", "1001", "1002", registered=("1001",)),
            _tenant("b.example", "1001", registered=("1001",)),
        ),
    )
    report = _run(inventory)
    assert report.billable == 3
    assert [(t.tenant, t.billable) for t in report.tenants] == [("a.example", 2), ("b.example", 1)]
    assert sorted(s.extension for s in report.seats) == [
        "1001@a.example",
        "1001@b.example",
        "1002@a.example",
    ]
    assert {s.tenant for s in report.seats} == {"a.example", "b.example"}
    devices = [d.endpoint for s in report.seats for d in s.devices]
    assert sorted(devices) == ["1001@a.example", "1001@b.example"]
    shared = {(x.kind, x.name): x.tenant for x in report.excluded}
    assert shared == {("registration", "gw"): None, ("queue", "manual_calls"): None}
    assert report.totals["seats"] == 3 and report.totals["excluded"] == 2
    schema = json.loads(
        resources.files("agent").joinpath("schemas/count-report.schema.json").read_text()
    )
    jsonschema.validate(json.loads(json.dumps(report.to_json())), schema)
    assert report.to_json() == dataclasses.asdict(report), "the plain form asdict would give"
    text = explain(report.to_json())
    assert "Billable users (seats): 3 (a.example 2, b.example 1)" in text
    assert "Tenant b.example: 1 seats" in text and "Shared by every tenant:" in text


def test_an_endpoint_the_pbx_cannot_register_is_listed_with_the_pbx_reason() -> None:
    blocked = Endpoint("1006", "SIP", aors=("1006",), cannot_register="sip-forbid-register=true")
    tenant = _tenant("a.example", "1001", registered=("1001",))
    tenant = Inventory(
        facts=FACTS,
        endpoints=(*tenant.endpoints, blocked),
        aors=(*tenant.aors, Aor("1006", 10)),
        contacts=tenant.contacts,
        tenant="a.example",
    )
    report = _run(Inventory(facts=FACTS, tenants=(tenant,)))
    assert report.billable == 1
    assert [(x.name, x.reason) for x in report.excluded] == [
        ("1006@a.example", "sip-forbid-register=true")
    ]
    # a config exclusion says it first
    config = CountingConfig(endpoints={"1006@a.example": EndpointOverride(exclude="left in 2025")})
    report = _run(Inventory(facts=FACTS, tenants=(tenant,)), config)
    assert [x.reason for x in report.excluded] == ["excluded in config: left in 2025"]


def test_overrides_name_a_tenant_or_every_tenant() -> None:
    inventory = Inventory(
        facts=FACTS,
        tenants=(_tenant("a.example", "1001", "1002"), _tenant("b.example", "1001", "1002")),
    )
    config = CountingConfig(
        endpoints={
            "1002@a.example": EndpointOverride(seat="1001"),
            "1001": EndpointOverride(kind="cordless"),
        }
    )
    report = _run(inventory, config)
    assert [(t.tenant, t.billable) for t in report.tenants] == [("a.example", 1), ("b.example", 2)]
    merged = next(s for s in report.seats if s.extension == "1001@a.example")
    assert [(e.endpoint, e.rule) for e in merged.endpoints] == [
        ("1001@a.example", "extension"),
        ("1002@a.example", "config_mapping"),
    ]
    assert {s.kind for s in report.seats if s.extension.startswith("1001@")} == {"cordless"}


def test_history_is_per_tenant() -> None:
    inventory = Inventory(
        facts=FACTS, tenants=(_tenant("a.example", "1001"), _tenant("b.example", "1001"))
    )
    old = NOW - timedelta(days=90)
    history = History(
        observing_since=old, last_registered={"1001@b.example": NOW - timedelta(days=1)}
    )
    report = _run(inventory, history=history)
    assert report.stale == ("1001@a.example",), "b.example's 1001 was seen yesterday"


def test_a_single_tenant_pbx_counts_exactly_as_the_rules_do() -> None:
    inventory = _tenant("", "100", "101", registered=("100",))
    inventory = Inventory(
        facts=FACTS,
        endpoints=inventory.endpoints,
        aors=inventory.aors,
        contacts=inventory.contacts,
    )
    history = History(NOW, {})
    expected = count(inventory, CountingConfig(), history, site_id="site", now=NOW)
    assert _run(inventory, history=history) == expected
    assert expected.tenants == ()
