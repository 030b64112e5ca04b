"""The scenario builder on a small lap store, and the shipped scenarios built with it."""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path

import numpy as np
import pytest

from data.store import open_store
from engine.scenario import load_scenario
from engine.scenario_builder import build_table, to_toml, write_scenario


def open_race_store(path: Path, duration_s: float = 7200.0) -> sqlite3.Connection:
    """A new lap store holding session 1, 'race' (at 'ring', 15:00, ``duration_s``), in an
    open transaction."""
    conn = open_store(path)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO sources (source_id, path, reader, sha256, size_bytes, ingested_at) "
        "VALUES (1, 'x', 'test', 'x', 0, 'now')"
    )
    conn.execute(
        "INSERT INTO sessions (session_id, source_id, name, track, start_hour_of_day, duration_s, "
        "track_length_m) VALUES (1, 1, 'race', 'ring', 15.0, ?, 5000.0)",
        (duration_s,),
    )
    return conn


def add_car(conn: sqlite3.Connection, car_id: int, number: str, cls: str) -> None:
    """Car ``car_id`` of session 1 with one driver, ``D<number>`` (driver id = car id)."""
    conn.execute(
        "INSERT INTO cars (car_id, session_id, number, class, team) VALUES (?, 1, ?, ?, 'T')",
        (car_id, number, cls),
    )
    conn.execute(
        "INSERT INTO drivers (driver_id, car_id, name, driver_number) VALUES (?, ?, ?, 1)",
        (car_id, car_id, f"D{number}"),
    )


def _store(path: Path) -> None:
    conn = open_race_store(path)
    for car_id, number, cls, pace in ((1, "7", "HYPERCAR", 100.0), (2, "91", "LMGT3", 115.0)):
        add_car(conn, car_id, number, cls)
        t = 0.0
        for lap in range(1, 41):
            lap_time = pace + (lap % 10) * 0.5  # a known spread: the 10th percentile is exact
            pit_in = int(lap in (12, 24, 36))
            pit_out = int(lap in (13, 25, 37))
            t += lap_time
            conn.execute(
                "INSERT INTO laps (session_id, car_id, driver_id, lap, lap_time_s, race_time_s, "
                "position, pit_in, pit_out, pit_time_s, flag) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    car_id,
                    car_id,
                    lap,
                    lap_time,
                    t,
                    car_id,
                    pit_in,
                    pit_out,
                    60.0 if pit_out else None,
                ),
            )
    conn.execute("COMMIT")
    conn.close()


def test_builder_reference_pace_and_stints(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    _store(db)
    table = build_table(db, "race", "mini")
    by_number = {e["number"]: e for e in table["entries"]}
    for number, pace in (("7", 100.0), ("91", 115.0)):
        clean = [
            pace + (lap % 10) * 0.5 for lap in range(2, 41) if lap not in (12, 24, 36, 13, 25, 37)
        ]
        assert by_number[number]["ref_lap_time_s"] == pytest.approx(
            np.percentile(clean, 10), abs=1e-3
        )
    # Stints of 12 laps: a tank lasts a stint plus one lap.
    assert by_number["7"]["ref_energy_per_lap"] == pytest.approx(1 / 13, abs=1e-4)
    assert [c["name"] for c in table["classes"]] == ["HYPERCAR", "LMGT3"]
    assert table["race"]["duration_h"] == pytest.approx(2.0)
    out = tmp_path / "mini.toml"
    write_scenario(table, out)
    s = load_scenario(out)
    assert s.entries[s.entry_index("91")].ref_lap_time_s == by_number["91"]["ref_lap_time_s"]
    assert "[[entries]]" in to_toml(table)


def test_shipped_le_mans_field() -> None:
    s = load_scenario("lemans_24h")
    assert len(s.entries) == 62
    assert s.class_names == ("HYPERCAR", "LMP2", "LMGT3")
    assert s.race.duration_s == pytest.approx(86400.0)
    pace = {
        c: statistics.median(e.ref_lap_time_s for e in s.entries if e.car_class == c)
        for c in s.class_names
    }
    assert pace["HYPERCAR"] < pace["LMP2"] < pace["LMGT3"]
    assert 200.0 < pace["HYPERCAR"] < 220.0
    assert len(load_scenario("six_hours").entries) > 20


def test_driver_ratings_are_centred_on_the_cars_reference_driver(tmp_path: Path) -> None:
    """The reference pace pools a car's drivers, so their lap-weighted mean rating is 0."""
    db = tmp_path / "store.sqlite"
    _store(db)
    conn = open_store(db)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO drivers (driver_id, car_id, name, driver_number) VALUES (3, 1, 'D7b', 2)"
    )
    # The second driver takes over from lap 21 and is a second a lap slower.
    conn.execute(
        "UPDATE laps SET driver_id = 3, lap_time_s = lap_time_s + 1.0 WHERE car_id = 1 AND lap > 20"
    )
    conn.execute("COMMIT")
    conn.close()
    entry = {e["number"]: e for e in build_table(db, "race", "mini")["entries"]}["7"]
    skills = {d["name"]: d["skill"] for d in entry["drivers"]}
    clean = lambda laps: [n for n in laps if n not in (12, 13, 24, 25, 36, 37)]  # noqa: E731
    weights = {"D7": len(clean(range(2, 21))), "D7b": len(clean(range(21, 41)))}
    mean = sum(skills[n] * w for n, w in weights.items()) / sum(weights.values())
    assert mean == pytest.approx(0.0, abs=2e-3)
    assert skills["D7"] > 0.0 > skills["D7b"]


def test_builder_driver_spells_tyre_allocation_and_early_retirements(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    _store(db)
    conn = open_store(db)
    conn.execute("BEGIN")
    # Car 7 changes driver at its 2nd stop only: 4 stints, 2 spells -> double stints.
    conn.execute("UPDATE laps SET driver_change = 1 WHERE car_id = 1 AND lap = 25")
    # A car that retired on lap 3 has no pace of its own: it keeps its class's.
    conn.execute(
        "INSERT INTO cars (car_id, session_id, number, class, team) "
        "VALUES (3, 1, '99', 'Hyper', 'T')"
    )
    for lap in (1, 2, 3):
        conn.execute(
            "INSERT INTO laps (session_id, car_id, lap, lap_time_s, race_time_s, flag) "
            "VALUES (1, 3, ?, 120.0, ?, 0)",
            (lap, 120.0 * lap),
        )
    conn.execute("COMMIT")
    conn.close()
    table = build_table(db, "race", "mini")
    by_number = {e["number"]: e for e in table["entries"]}
    assert by_number["7"]["strategy"] == "fuel-reserve:stints=2"
    # Car 91 never changed driver: 4 stints in one spell (the most the rules plan).
    assert by_number["91"]["strategy"] == "fuel-reserve:stints=4"
    assert by_number["99"]["class"] == "HYPERCAR"  # LMU's class name, through class_names
    assert by_number["99"]["ref_lap_time_s"] == by_number["7"]["ref_lap_time_s"]
    for cls in table["classes"]:
        assert cls["tyre_sets"] > 0  # an allocation, not unlimited (-1)
    assert table["track"]["pit_lane_loss_s"] >= 10.0
    write_scenario(table, tmp_path / "spells.toml")
    s = load_scenario(tmp_path / "spells.toml")
    assert s.entries[s.entry_index("7")].strategy == "fuel-reserve:stints=2"


def test_an_lmu_results_log_builds_a_scenario(tmp_path: Path, shared_data: Path) -> None:
    from data.ingest import ingest

    db = tmp_path / "lmu.sqlite"
    ingest([str(shared_data / "lmu" / "lmu_2025_paulricard_4h_event_60min_race.xml")], db)
    with sqlite3.connect(db) as conn:
        (session,) = conn.execute("SELECT name FROM sessions").fetchone()
        classes = {c for (c,) in conn.execute("SELECT DISTINCT class FROM cars")}
    assert classes >= {"Hyper", "GT3"}  # LMU's own names
    table = build_table(db, session, "lmu")
    write_scenario(table, tmp_path / "lmu.toml")
    s = load_scenario(tmp_path / "lmu.toml")
    assert s.class_names == ("HYPERCAR", "LMGT3")
    assert len(s.entries) >= 40
    assert s.race.duration_s == pytest.approx(3600.0)


def test_builder_reads_race_control_and_pit_opportunism(tmp_path: Path) -> None:
    """An IMSA session gets full-course cautions; a car that pitted under every FCY of its
    race while few of its laps ran under one races the opportunistic rule."""
    db = tmp_path / "store.sqlite"
    _store(db)
    table = build_table(db, "race", "mini")
    assert table["events"]["full_course_cautions"] is False
    assert table["lap_model_recent_pace"] is False
    assert all(e["strategy"].startswith("fuel-reserve:") for e in table["entries"])
    conn = open_store(db)
    conn.execute("BEGIN")
    conn.execute("UPDATE sessions SET series = 'IMSA'")
    # Car 7's stops on laps 12 and 24 fall under FCY (4 of its 40 laps): 2 of 3 stops.
    conn.execute("UPDATE laps SET flag = 2 WHERE car_id = 1 AND lap IN (11, 12, 23, 24)")
    conn.execute("COMMIT")
    conn.close()
    table = build_table(db, "race", "mini")
    assert table["events"]["full_course_cautions"] is True
    by_number = {e["number"]: e for e in table["entries"]}
    assert by_number["7"]["strategy"] == "opportunistic:stints=4"
    assert by_number["91"]["strategy"] == "fuel-reserve:stints=4"
    write_scenario(table, tmp_path / "imsa.toml")
    assert load_scenario(tmp_path / "imsa.toml").events.full_course_cautions
