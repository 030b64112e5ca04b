"""One function computes the race statistics of a real race and of a simulated one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from data.ingest import ingest
from data.race_stats import FLAG_GAP_S, _clusters, race_stats, session_ids
from engine.baselines import make_strategy
from engine.export import write_lap_store
from engine.race import simulate
from engine.scenario import load_scenario


def test_real_race_statistics_match_the_published_counts(tmp_path: Path, shared_data: Path) -> None:
    db = tmp_path / "real.sqlite"
    ingest([str(shared_data / "wec" / "wec_2024_lemans_24h_race_analysis.csv")], db)
    with sqlite3.connect(db) as conn:
        (sid,) = session_ids(conn, "wec_2024_lemans_24h")
        stats = race_stats(conn, sid)
        stops, changes = conn.execute(
            "SELECT COUNT(*), SUM(driver_change) FROM pit_stops WHERE session_id = ?", (sid,)
        ).fetchone()
    # The counts the issue quotes for Le Mans 2024 (1,548 stops, 528 driver changes, 5 FCY).
    assert stats["pit_stops"] == stops == 1548
    assert stats["driver_changes"] == changes == 528
    assert stats["fcy_periods"] == 5
    assert stats["winner_laps"] == 311
    assert stats["green_lap_q10_s/HYPERCAR"] < stats["green_lap_q50_s/HYPERCAR"]
    assert {"median_laps/LMP2", "pit_stops_per_car/LMGT3", "retirements"} <= set(stats)


def test_simulated_race_statistics_match_the_result(tmp_path: Path) -> None:
    scenario = load_scenario("test_race")
    result = simulate(scenario, make_strategy("double-stint"), 3, 5, record_laps=True)
    db = tmp_path / "sim.sqlite"
    write_lap_store(result, scenario, db, "stats-test")
    with sqlite3.connect(db) as conn:
        ids = session_ids(conn, "stats-test/")
        assert len(ids) == 3
        for r, sid in enumerate(ids):
            stats = race_stats(conn, sid)
            assert stats["pit_stops"] == result.pit_stops[r].sum()
            assert stats["winner_laps"] == result.laps_completed[r].max()
            assert stats["retirements"] == result.retired[r].sum()
            fp = result.flag_periods
            mine = fp["replica"] == r
            # Every simulated FCY period that a car crossed the line in shows as one period
            # (the engine's periods here are far more than 6 minutes apart or merged).
            assert stats["fcy_periods"] <= int((fp["kind"][mine] == 2).sum())
            for cls in {e.car_class for e in scenario.entries}:
                assert f"median_laps/{cls}" in stats


def test_flag_crossings_cluster_with_a_six_minute_gap() -> None:
    t = np.array([0.0, 100.0, 100.0 + FLAG_GAP_S, 1000.0 + 2 * FLAG_GAP_S, 1010.0 + 2 * FLAG_GAP_S])
    assert _clusters(t) == [
        (0.0, 100.0 + FLAG_GAP_S),
        (1000.0 + 2 * FLAG_GAP_S, 1010.0 + 2 * FLAG_GAP_S),
    ]
    assert _clusters(np.array([])) == []


def test_a_session_without_known_classes_is_an_error(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE cars (car_id INT, session_id INT, class TEXT, finish_status TEXT);"
        "INSERT INTO cars VALUES (1, 1, 'KART', 'finished');"
    )
    with pytest.raises(ValueError, match="no car of a known class"):
        race_stats(conn, 1)
