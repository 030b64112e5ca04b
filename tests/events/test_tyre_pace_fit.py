"""The lap-time cost of worn tread measured from sim logs (the carried-set pace's data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.scenario import Scenario
from events.tyre_pace_fit import fit_rows, main


def test_fit_recovers_a_known_tread_and_fuel_slope() -> None:
    """Synthetic cars, own pace offsets, tread lost 0-0.4, fuel 0.1-0.9, lap noise 0.2 %:
    the within-car fit finds the slopes within a few standard errors (here ~0.001)."""
    rng = np.random.default_rng(0)
    rows = []
    for car in range(40):
        base = 100.0 * (1.0 + 0.02 * rng.random())
        lost = np.linspace(0.0, 0.4, 30) % 0.25 + 0.1 * rng.random()
        fuel = np.linspace(0.9, 0.1, 30)
        lap = base * (1.0 + 0.03 * lost + 0.02 * fuel + 0.002 * rng.standard_normal(30))
        rows += [
            (str(car), float(t), float(w), float(f))
            for t, w, f in zip(lap, lost, fuel, strict=True)
        ]
    fit = fit_rows(rows, "synthetic")
    assert fit is not None and fit.cars == 40
    assert abs(fit.tread_time - 0.03) < 0.004
    assert abs(fit.fuel_time - 0.02) < 0.004
    assert fit_rows(rows[:3], "too few") is None


@pytest.mark.shared_data
def test_istanbul_log_tread_pace_is_positive_and_near_the_default(shared_data, capsys) -> None:
    path = shared_data / "rfactor2" / "rf2_2019_gpvwc_istanbul_race.xml"
    assert main([str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (fit,) = out["fits"]
    assert fit["cars"] > 20 and fit["laps"] > 800
    assert fit["tread_time"] > 0.0 and fit["fuel_time"] > 0.0  # worn and heavy are slower
    # The shipped default is the median of three logs; one log sits within a factor 2 of it.
    default = Scenario.__dataclass_fields__["lap_model_carried_wear_time"].default
    assert default / 2 < fit["tread_time"] < default * 2


def test_missing_file_is_a_clear_error(tmp_path, capsys) -> None:
    assert main([str(tmp_path / "none.xml")]) == 2
    assert "no such file" in capsys.readouterr().err
