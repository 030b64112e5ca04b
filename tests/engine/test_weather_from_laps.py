"""Reading a race's wet spells from its laps, and built scenarios replaying them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from data.ingest import ingest
from engine.baselines import WET_TRACK
from engine.scenario import parse_scenario
from engine.scenario_builder import build_table
from engine.weather_from_laps import BIN_S, intensity_for_slowdown, wet_spells
from tests.engine.test_scenario_builder import add_car, open_race_store
from world_model.interface import Compound
from world_model.parametric import EffectTables, ParametricLapParams

PRIOR = ParametricLapParams()
RACE_S = 7200.0
RAIN = (2400.0, 4200.0)
"""Every sector 12 % slow."""
SLOW_ZONE = (5400.0, 6000.0)
"""The middle sector 60 % slow: a slow zone, not rain."""
SAFETY_CAR = (4800.0, 5100.0)


def _store(path: Path, cars: int = 20, rain_slowdown: float = 0.12) -> None:
    rng = np.random.default_rng(3)
    conn = open_race_store(path, RACE_S)
    for car in range(1, cars + 1):
        add_car(conn, car, str(car), "HYPERCAR")
        t, lap, pace = 0.0, 0, 100.0 + 0.3 * car
        while t < RACE_S:
            lap += 1
            sectors = pace / 3.0 * (1.0 + 0.004 * rng.standard_normal(3))
            flag = 0
            if RAIN[0] <= t < RAIN[1]:
                sectors = sectors * (1.0 + rain_slowdown)
            if SLOW_ZONE[0] <= t < SLOW_ZONE[1]:
                sectors[1] *= 1.6
            if SAFETY_CAR[0] <= t < SAFETY_CAR[1]:
                sectors, flag = sectors * 1.6, 3
            pit_in = int(lap % 15 == 0)
            pit_out = int(lap % 15 == 1 and lap > 1)
            t += float(sectors.sum())
            conn.execute(
                "INSERT INTO laps (session_id, car_id, driver_id, lap, lap_time_s, s1_s, s2_s, "
                "s3_s, race_time_s, position, pit_in, pit_out, pit_time_s, flag) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    car,
                    car,
                    lap,
                    float(sectors.sum()),
                    *map(float, sectors),
                    t,
                    car,
                    pit_in,
                    pit_out,
                    60.0 if pit_out else None,
                    flag,
                ),
            )
    conn.execute("COMMIT")
    conn.close()


def _spells(db: Path) -> list[dict]:
    with sqlite3.connect(db) as conn:
        return wet_spells(conn, 1, RACE_S, PRIOR.wet_penalty, PRIOR.compound_pace, WET_TRACK)


@pytest.mark.parametrize("slowdown", [0.02, 0.05, 0.08, 0.12, 0.2])
def test_intensity_inverts_the_wet_pace_on_the_tyres_the_rules_run(slowdown: float) -> None:
    w = intensity_for_slowdown(slowdown, PRIOR.wet_penalty, PRIOR.compound_pace, WET_TRACK)
    compound = Compound.WET if w >= WET_TRACK else Compound.MEDIUM
    pace = EffectTables(PRIOR).grip(torch.tensor([int(compound)]), torch.tensor([w]))
    assert float(pace) == pytest.approx(slowdown, abs=1e-6)


def test_rain_is_read_from_every_sector_and_a_slow_zone_is_not(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    _store(db)
    spells = _spells(db)
    assert spells, "a 30-minute spell of every sector 12 % slow reads wet"
    start, end = spells[0]["start_s"], spells[-1]["end_s"]
    # The spell's bins: a lap ends up to one lap after the rain it ran in.
    assert RAIN[0] - BIN_S <= start <= RAIN[0] + BIN_S
    assert RAIN[1] - BIN_S <= end <= RAIN[1] + BIN_S
    assert all(s["end_s"] <= SLOW_ZONE[0] for s in spells), "one slow sector is not rain"
    mid = 0.5 * (RAIN[0] + RAIN[1])
    middle = [s for s in spells if s["start_s"] <= mid < s["end_s"]]
    expected = intensity_for_slowdown(0.12, PRIOR.wet_penalty, PRIOR.compound_pace, WET_TRACK)
    assert middle and all(abs(s["intensity"] - expected) <= 0.06 for s in middle)


def test_a_dry_race_reads_dry(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    _store(db, rain_slowdown=0.0)
    assert _spells(db) == []


def test_built_scenario_replays_the_observed_weather_or_draws_it(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    _store(db)
    table = build_table(db, "race", "wet")
    assert table["events"]["weather"] is True
    scenario = parse_scenario(table, "wet")
    rain = [e for e in scenario.forced_events if e.kind.value == "wet"]
    assert rain and all(0.0 < e.intensity <= 1.0 for e in rain)
    drawn = build_table(db, "race", "wet", weather="drawn")
    assert drawn["events"]["weather"] is True and "forced_events" not in drawn
    with pytest.raises(ValueError, match="weather must be one of"):
        build_table(db, "race", "wet", weather="sunny")


def test_real_races_wet_and_dry(tmp_path: Path, shared_data: Path) -> None:
    """Le Mans 2024 (a wet night and a wet finish) reads wet for hours; Le Mans 2026 (dry)
    reads dry."""
    db = tmp_path / "real.sqlite"
    wec = shared_data / "wec"
    ingest([str(wec / f"wec_{y}_lemans_24h_race_analysis.csv") for y in (2024, 2026)], db)
    with sqlite3.connect(db) as conn:
        wet_hours = {}
        for name, sid in conn.execute("SELECT name, session_id FROM sessions"):
            spells = wet_spells(
                conn, sid, 86400.0, PRIOR.wet_penalty, PRIOR.compound_pace, WET_TRACK
            )
            wet_hours[name[:8]] = sum(s["end_s"] - s["start_s"] for s in spells) / 3600.0
    assert wet_hours["wec_2026"] == 0.0
    assert wet_hours["wec_2024"] >= 4.0
