"""The recovery figures of a seeded scenario equal those the test computes from its own events, by
kecamatan and kind, month by month; and equal them again after a rebuild from the streams."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import nats
import pytest

from kumkm_monitoring.rebuild import Rebuilt, rebuild
from tests.integration.monitoring.conftest import BEKASI, JABAR, Monitoring, definition
from tests.integration.monitoring.scenario import seeded

if TYPE_CHECKING:
    from tests.integration.monitoring.conftest import Scenario

pytestmark = pytest.mark.integration

MONTHS = [(2020, 12), (2021, 1), (2021, 2), (2021, 3), (2021, 4), (2021, 5), (2021, 6), (2021, 7)]
VIEWER = "it-viewer-bekasi"


async def publish(harness: Monitoring, scenario: Scenario) -> None:
    for event in scenario.events:
        await harness.publish(event)
    await harness.settle()


def _share(productive: int, registered: int) -> str | None:
    return (
        None
        if not registered
        else f"{(Decimal(productive) / Decimal(registered)).quantize(Decimal('0.0001'))}"
    )


async def figures(harness: Monitoring) -> dict[str, Any]:
    """What the dashboard shows a Kota Bekasi viewer, for every month of the scenario."""
    out: dict[str, Any] = {}
    for year, month in MONTHS:
        label = f"{year:04d}-{month:02d}"
        out[label] = await harness.get("/recovery", VIEWER, month=label, level="district")
    out["trend"] = await harness.get("/recovery/trend", VIEWER, months=8, until="2021-07")
    return out


def check(scenario: Scenario, shown: dict[str, Any]) -> None:
    for year, month in MONTHS:
        label = f"{year:04d}-{month:02d}"
        answer = shown[label]
        assert answer["month"] == label
        assert answer["level"] == "district"
        rows = {(r["district"], r["kind"]): r for r in answer["rows"]}
        expected = scenario.expected(year, month, province=JABAR, city=BEKASI)
        assert {k: (r["registered"], r["productive"]) for k, r in rows.items()} == expected, label
        for row in rows.values():
            assert (row["province"], row["city"]) == (JABAR, BEKASI)
            assert row["share"] == _share(row["productive"], row["registered"])
            assert row["target_share"] == "0.6500"
    points = {p["month"]: p for p in shown["trend"]["points"]}
    assert shown["trend"]["target_share"] == "0.6500"
    for year, month in MONTHS:
        label = f"{year:04d}-{month:02d}"
        expected = scenario.expected(year, month, province=JABAR, city=BEKASI)
        registered = sum(v[0] for v in expected.values())
        productive = sum(v[1] for v in expected.values())
        assert (points[label]["registered"], points[label]["productive"]) == (registered, productive), label
        assert points[label]["share"] == _share(productive, registered)


async def test_recovery_equals_the_events_and_again_after_a_rebuild(nats_url: str, database_url: str) -> None:
    scenario = seeded()
    async with Monitoring.start(definition(), nats_url, database_url, consumer_batch=16) as harness:
        await publish(harness, scenario)
        before = await figures(harness)
        check(scenario, before)
        # The scenario is not trivial: some months rise and fall, some parties are left out.
        assert before["2021-03"]["rows"]
        assert before["2021-02"] != before["2021-05"]
        city = await harness.get("/recovery", VIEWER, month="2021-03")
        assert city["level"] == "district"  # a city viewer asking nothing gets their city by kecamatan
        by_city = await harness.get(
            "/recovery", VIEWER, month="2021-03", level="city", province=JABAR, city=BEKASI
        )
        coops = next(r for r in by_city["rows"] if r["kind"] == "cooperative")
        assert (coops["target_population"], coops["target_count"]) == (647, 421)  # ceil(0.65 * 647)
        umkm = next(r for r in by_city["rows"] if r["kind"] == "umkm")
        assert (umkm["target_population"], umkm["target_count"]) == (203_000, 131_950)
    # The service is stopped; the read models are dropped and the durables re-read the streams.
    rebuilt = await rebuild_from_streams(nats_url, database_url)
    assert set(rebuilt.durables) == {"monitoring-registry", "monitoring-loans", "monitoring-catalog"}
    async with Monitoring.start(definition(), nats_url, database_url, consumer_batch=16) as harness:
        await harness.settle()
        after = await figures(harness)
    assert after == before
    check(scenario, after)


async def rebuild_from_streams(nats_url: str, database_url: str) -> Rebuilt:
    """What ``python -m kumkm_monitoring rebuild`` does, on the test's servers."""
    nc = await nats.connect(nats_url)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "monitoring, public"})
    try:
        rebuilt = await rebuild(conn, nc.jetstream())
        assert await conn.fetchval("SELECT count(*) FROM parties") == 0
        assert await conn.fetchval("SELECT count(*) FROM counts") == 0
    finally:
        await conn.close()
        await nc.drain()
    return rebuilt


async def test_the_scenario_figures_by_hand(monitoring: Monitoring) -> None:
    """The same scenario, a few figures written out: what a reader can check against the rules page."""
    await publish(monitoring, seeded())
    march = await monitoring.get("/recovery", VIEWER, month="2021-03", level="district")
    rows = {(r["district"], r["kind"]): (r["registered"], r["productive"], r["share"]) for r in march["rows"]}
    # C1 (loan downgraded on 1 March: its February window ended), C2 (operating), C3 dissolved in February,
    # C4 nothing: 1 of 3. U1 (sale), U2 (operating from 31 March), U4 (sale paid in April): 2 of 3 in March;
    # U3 registers in April.
    assert rows == {
        ("Jatisampurna", "cooperative"): (3, 1, "0.3333"),
        ("Bekasi Timur", "umkm"): (3, 2, "0.6667"),
    }
    feb = await monitoring.get("/recovery", VIEWER, month="2021-02", level="district")
    rows = {(r["district"], r["kind"]): (r["registered"], r["productive"]) for r in feb["rows"]}
    assert rows[("Jatisampurna", "cooperative")] == (
        4,
        3,
    )  # C1 (loan), C2 (from 15 Feb), C3 (until dissolved)
