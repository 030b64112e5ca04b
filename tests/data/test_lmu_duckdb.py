"""LMU DuckDB reader on generated sessions in the real layout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.lmu_fixture import FixtureTruth, write_lmu_session
from data.errors import IngestError
from data.readers.lmu_duckdb import read_lmu_duckdb
from data.records import ReadResult

SESSION_S = 1700.0  # long enough for a pit stop (every 3 laps here), short enough to be quick


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[FixtureTruth, ReadResult]:
    path = tmp_path_factory.mktemp("lmu") / "Circuit_R_2025-06-14T14_00_00Z.duckdb"
    truth = write_lmu_session(
        path, duration_s=SESSION_S, seed=3, pit_every_laps=3, untimed_laps=(2,)
    )
    return truth, read_lmu_duckdb(path)


def test_layout_matches_lmu(session: tuple[FixtureTruth, ReadResult]) -> None:
    truth, _ = session
    con = duckdb.connect(str(truth.path), read_only=True)
    try:
        rates = dict(con.execute('SELECT "channelName", frequency FROM "channelsList"').fetchall())
        assert rates["Fuel Level"] == 20 and rates["Tyres Wear"] == 10 and rates["GPS Time"] == 100
        cols = [r[0] for r in con.execute('DESCRIBE "Tyres Wear"').fetchall()]
        assert cols == ["value1", "value2", "value3", "value4"]
        assert [r[0] for r in con.execute('DESCRIBE "Lap Time"').fetchall()] == ["ts", "value"]
        n_fuel = con.execute('SELECT count(*) FROM "Fuel Level"').fetchone()[0]
        n_gps = con.execute('SELECT count(*) FROM "GPS Time"').fetchone()[0]
        assert abs(n_fuel / 20 - n_gps / 100) < 0.5  # same span, different rates
        version = con.execute("SELECT value FROM metadata WHERE key = 'Version'").fetchone()[0]
        assert version == "1"
    finally:
        con.close()


def test_lap_segmentation_and_untimed_laps(session: tuple[FixtureTruth, ReadResult]) -> None:
    truth, result = session
    (s,) = result.sessions
    assert [r["lap"] for r in s.laps] == [lap.lap for lap in truth.laps]
    for row, lap in zip(s.laps, truth.laps, strict=True):
        if lap.timed:
            assert row["timed"] == 1 and row["lap_time_s"] == pytest.approx(
                lap.lap_time_s, abs=1e-6
            )
            assert row["s1_s"] + row["s2_s"] + row["s3_s"] == pytest.approx(lap.lap_time_s)
        else:
            assert row["timed"] == 0 and row["lap_time_s"] is None
        assert row["fuel_start"] == pytest.approx(lap.fuel_start_l / 110.0, abs=0.002)
        assert row["fuel_end"] == pytest.approx(lap.fuel_end_l / 110.0, abs=0.002)
        for w, name in enumerate(("fl", "fr", "rl", "rr")):
            assert row[f"tread_{name}"] == pytest.approx(lap.wear_end_pct[w] / 100.0, abs=1e-3)
    assert s.cars["50"].fuel_capacity_l == 110.0
    assert s.track == "Circuit de la Sarthe" and s.session_type == "race"


def test_lap_boundary_follows_lap_dist_not_the_offset_lap_event(
    session: tuple[FixtureTruth, ReadResult],
) -> None:
    # The fixture writes each Lap event one 10 Hz sample before the crossing; the boundary
    # must be the first Lap Dist sample after the true crossing.
    truth, result = session
    for row, lap in zip(result.sessions[0].laps, truth.laps, strict=True):
        assert lap.end_s <= row["race_time_s"] < lap.end_s + 0.1 + 1e-9


def test_pit_detection(session: tuple[FixtureTruth, ReadResult]) -> None:
    truth, result = session
    (s,) = result.sessions
    assert [p["lap"] for p in s.pit_stops] == [stop.in_lap for stop in truth.stops]
    assert len(truth.stops) >= 2
    for p, stop in zip(s.pit_stops, truth.stops, strict=True):
        assert p["pit_time_s"] == pytest.approx(stop.exit_s - stop.enter_s, abs=0.01)
        assert p["refuel"] == 1 and p["tyres_changed"] == 4
        assert p["fuel_added"] == pytest.approx(stop.fuel_added_l / 110.0, abs=0.01)
    laps = {r["lap"]: r for r in s.laps}
    for stop in truth.stops:
        assert laps[stop.in_lap]["pit_in"] == 1
        assert laps[stop.in_lap + 1]["pit_out"] == 1 and laps[stop.in_lap + 1]["tyre_age_laps"] == 0
    assert laps[1]["pit_out"] == 1  # the recording starts in the pit lane
    # Fuel used counts consumption only, not the refuel.
    out_lap = laps[truth.stops[0].in_lap + 1]
    assert 0.0 < out_lap["fuel_used_l"] < 10.0


def test_flags_impacts_and_temperatures(session: tuple[FixtureTruth, ReadResult]) -> None:
    truth, result = session
    (s,) = result.sessions
    (fcy,) = truth.fcy
    assert [(p["kind"], p["start_s"], p["end_s"]) for p in s.flag_periods] == [(2, *fcy)]
    fcy_laps = {r["lap"] for r in s.laps if r["flag"] == 2}
    expected = {lap.lap for lap in truth.laps if lap.start_s < fcy[1] and lap.end_s > fcy[0]}
    assert fcy_laps == expected
    (t_imp, mag) = truth.impacts[0]
    (inc,) = s.incidents
    assert inc["kind"] == "impact" and inc["magnitude"] == mag and inc["race_time_s"] == t_imp
    assert sum(r["impacts"] for r in s.laps) == 1
    assert all(80.0 < r["tyre_temp_c"] < 92.0 for r in s.laps)
    assert all(15.0 < r["air_temp_c"] < 25.0 for r in s.laps)


def test_event_clock_drift_is_reported_and_corrected(tmp_path: Path) -> None:
    truth = write_lmu_session(
        tmp_path / "d.duckdb", duration_s=900.0, event_clock_drift_s_per_h=30.0
    )
    result = read_lmu_duckdb(truth.path)
    assert any("clock" in w and "drift" in w for w in result.warnings)
    timed = [
        (r, lap) for r, lap in zip(result.sessions[0].laps, truth.laps, strict=True) if lap.timed
    ]
    assert timed and all(r["lap_time_s"] == pytest.approx(lap.lap_time_s) for r, lap in timed)
    plain = read_lmu_duckdb(write_lmu_session(tmp_path / "p.duckdb", duration_s=900.0).path)
    assert not any("clock" in w for w in plain.warnings)


def test_unknown_version_and_missing_channels(tmp_path: Path) -> None:
    v2 = write_lmu_session(tmp_path / "v2.duckdb", duration_s=300.0, version="2")
    with pytest.raises(IngestError, match=r"metadata, key Version.*'2'"):
        read_lmu_duckdb(v2.path)
    no_lapdist = write_lmu_session(
        tmp_path / "nld.duckdb", duration_s=300.0, omit_channels=("Lap Dist",)
    )
    with pytest.raises(IngestError, match='"Lap Dist"'):
        read_lmu_duckdb(no_lapdist.path)
    no_wear = write_lmu_session(
        tmp_path / "nw.duckdb", duration_s=500.0, omit_channels=("Tyres Wear",)
    )
    result = read_lmu_duckdb(no_wear.path)
    assert all(r["tread_fl"] is None for r in result.sessions[0].laps)
    assert result.sessions[0].laps and all(
        r["fuel_end"] is not None for r in result.sessions[0].laps
    )


def test_leftover_wal_and_locked_file(tmp_path: Path) -> None:
    truth = write_lmu_session(tmp_path / "w.duckdb", duration_s=300.0)
    wal = Path(str(truth.path) + ".wal")
    wal.write_bytes(b"partial")
    with pytest.raises(IngestError, match="write-ahead log"):
        read_lmu_duckdb(truth.path)
    wal.unlink()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(truth.path)!r});"
         " print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(IngestError, match="locked"):
            read_lmu_duckdb(truth.path)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert read_lmu_duckdb(truth.path).sessions[0].laps


def test_bad_lap_times_duplicates_and_out_of_order_events(tmp_path: Path) -> None:
    truth = write_lmu_session(tmp_path / "bad.duckdb", duration_s=900.0, untimed_laps=())
    con = duckdb.connect(str(truth.path))
    try:
        lap2_end = truth.laps[1].end_s + 0.02
        con.execute(
            "UPDATE \"Lap Time\" SET value = 'NaN'::DOUBLE WHERE abs(ts - ?) < 1e-6", [lap2_end]
        )
        lap3_end = truth.laps[2].end_s + 0.02
        con.execute('UPDATE "Lap Time" SET value = -5.0 WHERE abs(ts - ?) < 1e-6', [lap3_end])
        # A second time for lap 1, and the Lap table written out of order.
        con.execute('INSERT INTO "Lap Time" VALUES (?, 999.0)', [truth.laps[0].end_s + 0.5])
        con.execute('CREATE TABLE lap_copy AS SELECT * FROM "Lap" ORDER BY ts DESC')
        con.execute('DROP TABLE "Lap"')
        con.execute('ALTER TABLE lap_copy RENAME TO "Lap"')
    finally:
        con.close()
    result = read_lmu_duckdb(truth.path)
    laps = {r["lap"]: r for r in result.sessions[0].laps}
    assert sorted(laps) == [lap.lap for lap in truth.laps]  # numbering survives the shuffle
    assert laps[1]["lap_time_s"] == pytest.approx(truth.laps[0].lap_time_s)  # first time kept
    assert laps[2]["timed"] == 0 and laps[3]["timed"] == 0
    text = " | ".join(result.warnings)
    assert "duplicate time for lap 1" in text and "not positive" in text
    assert 'table "Lap", row' in text and "earlier than the row before" in text


def test_tables_of_another_shape_are_reported_not_fatal(tmp_path: Path) -> None:
    truth = write_lmu_session(tmp_path / "shape.duckdb", duration_s=700.0)
    con = duckdb.connect(str(truth.path))
    try:
        con.execute('DROP TABLE "Tyres Wear"')
        con.execute('CREATE TABLE "Tyres Wear" AS SELECT 99.0 AS value FROM range(7000)')
        con.execute('DROP TABLE "In Pits"')
        con.execute('CREATE TABLE "In Pits" (t DOUBLE, state DOUBLE)')
    finally:
        con.close()
    result = read_lmu_duckdb(truth.path)
    laps = result.sessions[0].laps
    assert len(laps) == len(truth.laps) and all(r["tread_fl"] is None for r in laps)
    text = " | ".join(result.warnings)
    assert 'channel "Tyres Wear": no column value1' in text and 'event table "In Pits"' in text


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    lap_time=st.floats(90.0, 200.0),
    pit_every=st.integers(2, 4),
    untimed=st.sets(st.integers(1, 6), max_size=2),
    offset=st.sampled_from([-1, 0, 1]),
)
def test_generated_sessions_read_back_their_truth(
    tmp_path: Path, seed: int, lap_time: float, pit_every: int, untimed: set[int], offset: int
) -> None:
    path = tmp_path / f"g{seed}_{offset}.duckdb"
    truth = write_lmu_session(
        path, duration_s=600.0, seed=seed, lap_time_s=lap_time, pit_every_laps=pit_every,
        untimed_laps=tuple(untimed), lap_event_offset_samples=offset, fcy=(), impacts=(),
    )  # fmt: skip
    (s,) = read_lmu_duckdb(path).sessions
    assert [r["lap"] for r in s.laps] == [lap.lap for lap in truth.laps]
    assert {r["lap"] for r in s.laps if not r["timed"]} == {
        lap.lap for lap in truth.laps if not lap.timed
    }
    assert [p["lap"] for p in s.pit_stops] == [stop.in_lap for stop in truth.stops]
    for row, lap in zip(s.laps, truth.laps, strict=True):
        assert lap.end_s <= row["race_time_s"] < lap.end_s + 0.1 + 1e-9
