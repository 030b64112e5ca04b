"""``stintsim car``: hand-computed figures of a built session, and the real LMU race log's own
per-lap fuel and energy (parsed here independently of the reader)."""

from __future__ import annotations

import json
import math
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from data.records import ReadResult, SessionRecord
from data.store import open_store, write_result
from engine.car_report import main, report_store

LMU_LOG = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "lmu"
    / "lmu_2025_paulricard_4h_event_60min_race.xml"
)
needs_log = pytest.mark.skipif(not LMU_LOG.is_file(), reason="../shared/data/lmu is absent")


def _built_store(tmp_path: Path) -> Path:
    """One car, 12 laps: 100 s green laps (lap 6 at 104 s), 5 % fuel and 6 % energy a lap,
    0.01 tread a lap on mediums; lap 1 and the pit laps 7/8 are not green."""
    s = SessionRecord(name="built_race", session_type="race", track="T", duration_s=3600.0)
    car = s.car("7")
    car.car_class, car.team, car.fuel_capacity_l = "GT3", "Team", 100.0
    car.add_driver("Ann", 1)
    fuel, energy, tread = 1.0, 1.0, 1.0
    for lap in range(1, 13):
        start_fuel, start_energy = fuel, energy
        fuel, energy, tread = fuel - 0.05, energy - 0.06, tread - 0.01
        row = {
            "car": "7",
            "driver": "Ann",
            "lap": lap,
            "lap_time_s": 104.0 if lap == 6 else 100.0,
            "race_time_s": 100.0 * lap,
            "pit_in": int(lap == 7),
            "pit_out": int(lap == 8),
            "compound_name": "Medium",
            "fuel_start": start_fuel,
            "fuel_end": fuel,
            "energy_start": start_energy,
            "energy_end": energy,
            **{f"tread_{w}": tread for w in ("fl", "fr", "rl", "rr")},
        }
        s.laps.append(row)
        if lap == 7:  # the in-lap: refuelled, recharged and new tyres in the pits
            fuel, energy, tread = 1.0, 1.0, 1.0
    src = tmp_path / "built.log"
    src.write_text("built")
    db = tmp_path / "store.sqlite"
    conn = open_store(db)
    write_result(conn, src, ReadResult(reader="test", sessions=[s]))
    conn.close()
    return db


def test_built_session_figures_are_the_hand_computed_ones(tmp_path: Path) -> None:
    rep = report_store(_built_store(tmp_path), "built.log")
    c = rep.car("7")
    assert (c.session_class, c.engine_class) == ("GT3", "LMGT3")
    # green laps: 2-6 and 9-12 (lap 1, the in-lap 7 and the out-lap 8 are not)
    assert c.pace is not None and c.pace.laps == 9
    assert c.pace.median_s == pytest.approx(100.0)
    assert c.fuel_per_lap == pytest.approx(0.05)
    assert c.fuel_per_lap_l == pytest.approx(5.0)
    assert c.energy_per_lap == pytest.approx(0.06)
    assert c.tread_per_lap == {"Medium": pytest.approx(0.01)}
    # a full tank lasts 20 laps, a full allocation 16: energy limits the stint
    assert (c.fuel_stint_laps, c.energy_stint_laps) == (20, 16)
    assert (c.max_stint_laps, c.limited_by) == (16, "energy")
    with pytest.raises(ValueError, match="no car '9'"):
        rep.car("9")


@needs_log
def test_real_log_fuel_and_energy_match_the_logs_own_per_lap_use() -> None:
    """Acceptance: per car, within 3 % of the medians of the log's ``fuelUsed`` / ``veUsed``
    over green laps (a timed lap after the first, neither an in-lap nor an out-lap)."""
    race = ET.parse(LMU_LOG).getroot().find("RaceResults/Race")
    assert race is not None
    logged: dict[str, tuple[list[float], list[float]]] = {}
    for d in race.findall("Driver"):
        laps = d.findall("Lap")
        pit = {int(lap.get("num", 0)) for lap in laps if lap.get("pit") == "1"}
        fuel, energy = [], []
        for lap in laps:
            n = int(lap.get("num", 0))
            if n <= 1 or n in pit or n - 1 in pit or not lap.text or "-" in lap.text:
                continue
            if float(lap.get("fuelUsed", "0")) > 0:
                fuel.append(float(lap.get("fuelUsed", "0")))
            if float(lap.get("veUsed", "0")) > 0:
                energy.append(float(lap.get("veUsed", "0")))
        logged[d.findtext("CarNumber", "")] = (fuel, energy)
    rep = report_store_of_log()
    checked = 0
    for c in rep.cars:
        fuel, energy = logged[c.number]
        if len(fuel) < 5 or len(energy) < 5:
            continue
        checked += 1
        assert c.fuel_per_lap == pytest.approx(statistics.median(fuel), rel=0.03), c.number
        assert c.energy_per_lap == pytest.approx(statistics.median(energy), rel=0.03), c.number
        # the longest stint is what the mean use allows, and the smaller of the two
        assert c.fuel_stint_laps == math.floor(1 / c.fuel_per_lap_mean + 1e-6)
        assert c.energy_stint_laps == math.floor(1 / c.energy_per_lap_mean + 1e-6)
        assert c.max_stint_laps == min(c.fuel_stint_laps, c.energy_stint_laps)
        # consistent with the medians too: within one lap of what they give
        by_median = math.floor(1 / max(c.fuel_per_lap, c.energy_per_lap))
        assert abs(c.max_stint_laps - by_median) <= max(3, 0.15 * by_median), c.number
    assert checked >= 30


def report_store_of_log():
    from engine.car_report import report_log

    return report_log(LMU_LOG)


@needs_log
def test_cli_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(LMU_LOG), "--car", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (car,) = out["cars"]
    for key in (
        "number",
        "class",
        "lap_time_s",
        "fuel_per_lap",
        "energy_per_lap",
        "tread_per_lap",
        "max_stint_laps",
        "limited_by",
        "fuel_mult",
    ):
        assert key in car
    assert car["number"] == "5" and car["class"] == "Hyper" and car["engine_class"] == "HYPERCAR"
    assert 100.0 < car["lap_time_s"] < 120.0


def test_cli_refuses_bad_input_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "missing.xml")]) == 2
    assert "missing.xml: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.xml"
    bad.write_text("<rFactorXML><RaceResults><Race>")
    assert main([str(bad)]) == 2
    assert "bad.xml" in capsys.readouterr().err


@needs_log
def test_cli_names_the_cars_when_the_car_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(LMU_LOG), "--car", "999"]) == 2
    err = capsys.readouterr().err
    assert "no car '999'" in err and "cars: 5, 2" in err
