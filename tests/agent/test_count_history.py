"""Counting history: every count stored, the daily peak, seats added and removed (prorating),
and registration sightings that make a seat stale only after enough days."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.config.schema import CountingConfig
from agent.counting import history
from agent.counting.rules import count
from agent.state import StateStore
from drivers.models import Aor, Contact, Endpoint, Inventory, PbxFacts

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def office(*exts: str, registered: tuple[str, ...] = ()) -> Inventory:
    return Inventory(
        facts=PbxFacts(vendor="asterisk", version="22.10.1"),
        endpoints=tuple(Endpoint(e, callerid_number=e, aors=(e,), inbound_auth=True) for e in exts),
        aors=tuple(Aor(e, 1) for e in exts),
        contacts=tuple(Contact(e, f"sip:{e}@10.0.0.1", "Yealink SIP-T46S") for e in registered),
    )


async def run(store: StateStore, inventory: Inventory, now: datetime) -> tuple[object, dict]:  # type: ignore[type-arg]
    seen = await store.call(history.load_history, now)
    report = count(inventory, CountingConfig(stale_days=30), seen, site_id="s", now=now)
    changes = await store.call(history.record_count, report, now)
    return report, changes


async def test_added_removed_peak_and_first_seen(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    try:
        _, first = await run(store, office("100", "101", "102"), T0)
        assert first["added"] == ["100", "101", "102"] and first["removed"] == []
        _, second = await run(store, office("100", "101"), T0 + timedelta(hours=1))
        assert second["added"] == [] and second["removed"] == ["102"]
        assert second["daily_peak"] == 3, "the day's peak survives a lower count"
        later = T0 + timedelta(days=3)
        _, third = await run(store, office("100", "101", "102", "103"), later)
        assert third["added"] == ["102", "103"]
        assert third["first_seen"]["100"] == T0.isoformat()
        assert third["first_seen"]["103"] == later.isoformat()
        assert third["daily_peak"] == 4
        counts = await store.call(lambda c: c.execute("SELECT COUNT(*) FROM counts").fetchone()[0])
        assert counts == 3
    finally:
        await store.close()


async def test_a_seat_goes_stale_after_n_days_without_registration(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    try:
        report, _ = await run(store, office("100", "101", registered=("100", "101")), T0)
        assert report.stale == ()  # type: ignore[attr-defined]
        quiet = office("100", "101", registered=("100",))
        report, _ = await run(store, quiet, T0 + timedelta(days=29))
        assert report.stale == ()  # type: ignore[attr-defined]
        report, _ = await run(store, quiet, T0 + timedelta(days=31))
        assert report.stale == ("101",)  # type: ignore[attr-defined]
        assert report.billable == 2  # type: ignore[attr-defined]
        seat = {s.extension: s for s in report.seats}["101"]  # type: ignore[attr-defined]
        assert seat.last_registered == T0.isoformat()
        never = replace(
            quiet,
            endpoints=(*quiet.endpoints, Endpoint("102", aors=("102",), inbound_auth=True)),
            aors=(*quiet.aors, Aor("102", 1)),
        )
        report, _ = await run(store, never, T0 + timedelta(days=32))
        assert "102" in report.stale, "never registered in 32 days of watching"  # type: ignore[attr-defined]
    finally:
        await store.close()
