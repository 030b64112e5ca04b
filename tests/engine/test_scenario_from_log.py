"""``stintsim scenario``: my race from my car in the LMU log, with the session's field or a
shipped one; the file loads with the scenario parser and runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.car_report import report_log
from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario
from engine.scenario_from_log import main

LMU_LOG = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "lmu"
    / "lmu_2025_paulricard_4h_event_60min_race.xml"
)
pytestmark = pytest.mark.skipif(not LMU_LOG.is_file(), reason="../shared/data/lmu is absent")


@pytest.fixture(scope="module")
def report():
    return report_log(LMU_LOG)


def test_session_field_scenario_loads_and_runs(tmp_path: Path, report) -> None:
    out = tmp_path / "my_race.toml"
    argv = [str(LMU_LOG), "--car", "5", "--out", str(out), "--duration-h", "0.5"]
    argv += ["--driver", "A. Me", "--driver", "B. You", "--max-drive-h", "0.4"]
    argv += ["--tyre-sets", "3"]
    assert main(argv) == 0
    s = load_scenario(out)
    mine = s.entries[0]
    car = report.car("5")
    assert s.focus_car == "5" and mine.number == "5" and mine.car_class == "HYPERCAR"
    assert [d.name for d in mine.drivers] == ["A. Me", "B. You"]
    assert mine.ref_lap_time_s == pytest.approx(car.pace.p10_s, abs=1e-3)
    assert mine.ref_fuel_per_lap == pytest.approx(car.fuel_per_lap_mean, abs=1e-5)
    assert s.race.duration_h == 0.5 and s.rules.max_total_driving_s == pytest.approx(1440.0)
    assert all(c.tyre_sets == 3 for c in s.classes)
    # the session's other measurable cars make the field, both classes of the log
    assert len(s.entries) > 30 and set(s.class_names) == {"HYPERCAR", "LMGT3"}
    r = simulate(s, StrategyAssignment(), 2, 1)
    assert r.laps_completed[:, 0].min() > 10  # half an hour of ~110 s laps


def test_multipliers_scale_the_logs_use(tmp_path: Path, report) -> None:
    out = tmp_path / "double.toml"
    assert main([str(LMU_LOG), "--car", "5", "--out", str(out), "--fuel-mult", "2",
                 "--tyre-mult", "3"]) == 0  # fmt: skip
    mine = load_scenario(out).entries[0]
    car = report.car("5")
    # the log ran at x1 (FuelMult / TireMult 1, or not logged): the race uses 2x / 3x
    assert mine.ref_fuel_per_lap == pytest.approx(2 * car.fuel_per_lap_mean, abs=2e-5)
    assert mine.ref_wear_per_lap == pytest.approx(3 * car.tread_per_lap["Medium"], abs=2e-5)


def test_shipped_field_takes_my_car_in(tmp_path: Path) -> None:
    out = tmp_path / "bahrain.toml"
    assert main([str(LMU_LOG), "--car", "5", "--field", "six_hours", "--out", str(out)]) == 0
    s = load_scenario(out)
    base = load_scenario("six_hours")
    assert s.entries[0].number == "5" and s.focus_car == "5"
    assert len(s.entries) == len(base.entries) + (
        0 if "5" in {e.number for e in base.entries} else 1
    )
    assert s.track == base.track and s.race.duration_h == 1.0  # the log's race length


def test_impossible_driving_times_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.toml"
    argv = [str(LMU_LOG), "--car", "5", "--out", str(out), "--driver", "Solo"]
    assert main([*argv, "--max-drive-h", "0.5"]) == 2
    assert "cannot cover a 1 h race" in capsys.readouterr().err
    assert main([*argv, "--car", "999"]) == 2
    assert "no car '999'" in capsys.readouterr().err
    assert not out.exists()
