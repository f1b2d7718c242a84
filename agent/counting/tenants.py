"""Counting a PBX whatever its tenancy: the seat rules (`rules.count`, vendor-free, unchanged)
run once per tenant of a multi-tenant PBX (one FreeSWITCH serving several customers'
domains), and the reports are combined into one with each tenant and the total.

On a multi-tenant PBX every name in the combined report is qualified with its tenant
(``1001@bayside.example``), since two tenants may both have a 1001; each seat and object
carries its tenant. Objects no tenant owns (gateways on a shared profile) are listed once,
with no tenant. Endpoints the PBX itself says cannot register (`Endpoint.cannot_register`)
are listed with the PBX's reason before the rules run, on any PBX.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from agent.config.schema import CountingConfig
from agent.counting.model import REPORT_SCHEMA, CountReport, Excluded, TenantCount
from agent.counting.rules import EXCLUDED_ORDER, History, count
from drivers.models import Inventory


def count_inventory(
    inventory: Inventory,
    config: CountingConfig,
    history: History,
    *,
    site_id: str,
    now: datetime,
) -> CountReport:
    """The count report of `inventory`: per tenant and in total when it has tenants."""
    if not inventory.tenants:
        return _count_one(inventory, config, history, site_id, now)
    parts: list[tuple[str, CountReport]] = []
    for tenant in inventory.tenants:
        name = tenant.tenant or "?"
        report = _count_one(
            tenant, _tenant_config(config, name), _tenant_history(history, name), site_id, now
        )
        parts.append((name, _qualified(report, name)))
    shared = _count_one(replace(inventory, tenants=()), config, history, site_id, now)
    return _combined(inventory, shared, parts, site_id, now)


def _count_one(
    inventory: Inventory, config: CountingConfig, history: History, site_id: str, now: datetime
) -> CountReport:
    overrides = config.endpoints
    blocked = [
        e
        for e in inventory.endpoints
        if e.cannot_register and not (e.name in overrides and overrides[e.name].exclude)
    ]
    if not blocked:
        return count(inventory, config, history, site_id=site_id, now=now)
    names = {e.name for e in blocked}
    report = count(
        replace(inventory, endpoints=tuple(e for e in inventory.endpoints if e.name not in names)),
        config,
        history,
        site_id=site_id,
        now=now,
    )
    extra = [Excluded("endpoint", e.name, e.cannot_register or "") for e in blocked]
    excluded = tuple(sorted((*report.excluded, *extra), key=EXCLUDED_ORDER))
    totals = {**report.totals, "excluded": len(excluded)}
    return replace(report, excluded=excluded, totals=totals)


def _tenant_config(config: CountingConfig, tenant: str) -> CountingConfig:
    """Overrides for this tenant: ``"1001@bayside.example"`` entries, then plain ``"1001"``
    ones that apply to every tenant."""
    suffix = f"@{tenant.lower()}"
    endpoints = {k: v for k, v in config.endpoints.items() if "@" not in k}
    for key, value in config.endpoints.items():
        if key.lower().endswith(suffix):
            endpoints[key[: -len(suffix)]] = value
    return config.model_copy(update={"endpoints": endpoints})


def _tenant_history(history: History, tenant: str) -> History:
    suffix = f"@{tenant.lower()}"
    seen = {
        key[: -len(suffix)]: when
        for key, when in history.last_registered.items()
        if key.lower().endswith(suffix)
    }
    return History(observing_since=history.observing_since, last_registered=seen)


def _q(name: str, tenant: str) -> str:
    return name if name.lower().endswith(f"@{tenant.lower()}") else f"{name}@{tenant}"


def _qualified(report: CountReport, tenant: str) -> CountReport:
    seats = tuple(
        replace(
            seat,
            extension=_q(seat.extension, tenant),
            endpoints=tuple(replace(e, endpoint=_q(e.endpoint, tenant)) for e in seat.endpoints),
            devices=tuple(replace(d, endpoint=_q(d.endpoint, tenant)) for d in seat.devices),
            tenant=tenant,
        )
        for seat in report.seats
    )
    excluded = tuple(
        replace(item, name=_q(item.name, tenant), tenant=tenant) for item in report.excluded
    )
    return replace(
        report,
        seats=seats,
        excluded=excluded,
        stale=tuple(_q(s, tenant) for s in report.stale),
        warnings=tuple(f"{tenant}: {w}" for w in report.warnings),
    )


def _combined(
    inventory: Inventory,
    shared: CountReport,
    parts: list[tuple[str, CountReport]],
    site_id: str,
    now: datetime,
) -> CountReport:
    seats = tuple(seat for _, report in parts for seat in report.seats)
    excluded = tuple(
        sorted(
            (*shared.excluded, *(item for _, r in parts for item in r.excluded)),
            key=lambda x: (x.tenant or "", x.kind, x.name, x.reason),
        )
    )
    stale = tuple(name for _, report in parts for name in report.stale)
    warnings = tuple(
        sorted({*shared.warnings, *(w for _, report in parts for w in report.warnings)})
    )
    totals: dict[str, int] = {}
    for _, report in parts:
        for key, value in report.totals.items():
            totals[key] = totals.get(key, 0) + value
    totals["excluded"] = len(excluded)
    tenants = tuple(
        TenantCount(
            tenant=name,
            billable=report.billable,
            excluded=len(report.excluded),
            stale=len(report.stale),
            warnings=len(report.warnings),
            totals=report.totals,
        )
        for name, report in parts
    )
    facts = inventory.facts
    return CountReport(
        schema=REPORT_SCHEMA,
        generated_at=now.isoformat(),
        site_id=site_id,
        pbx={"vendor": facts.vendor, "version": facts.version, "system_name": facts.system_name},
        billable=len(seats),
        seats=seats,
        excluded=excluded,
        stale=stale,
        warnings=warnings,
        totals=totals,
        tenants=tenants,
    )
