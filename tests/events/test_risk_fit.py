"""The fuel-use spreads measured from sim logs (the fuel risk's data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from events.risk_fit import main, spread


def test_spread_recovers_a_known_stint_factor() -> None:
    """Synthetic cars: 4 stints of 20 laps, stint factors of CV 3 %, lap noise 5 %."""
    rng = np.random.default_rng(0)
    cars = {}
    for car in range(300):
        stints = []
        for _ in range(4):
            factor = 1.0 + 0.03 * rng.standard_normal()
            laps = 0.08 * factor * (1.0 + 0.05 * rng.standard_normal(20))
            stints.append([(float(v), math.nan) for v in laps])
        cars[str(car)] = stints
    s = spread(cars, 0, "fuel")
    assert s.cars == 300 and s.laps == 300 * 80 and s.stint_pairs == 1200
    assert abs(s.lap_cv - 0.05) < 0.003
    assert abs(s.stint_cv - 0.03) < 0.004
    assert spread(cars, 1, "energy").cars == 0


@pytest.mark.shared_data
def test_lmu_paul_ricard_fuel_spread(shared_data, capsys) -> None:
    path = shared_data / "lmu" / "lmu_2025_paulricard_4h_event_60min_race.xml"
    assert main([str(path), "--json"]) == 0
    out = {s["channel"]: s for s in json.loads(capsys.readouterr().out)["spreads"]}
    fuel = out["fuel"]
    assert fuel["cars"] > 30 and fuel["stint_pairs"] >= 10
    assert 0.01 < fuel["lap_cv"] < 0.2
    assert 0.0 <= fuel["stint_cv"] < 0.05  # the prior's 2 % lies in what the data allow
