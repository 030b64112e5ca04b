"""Reports a strategist reads: finish times as h:mm:ss, and the Gantt's stops with their lap,
time in the pit lane, fill level and new tyres (a change on the same compound too)."""

from __future__ import annotations

import numpy as np

from engine.montecarlo import Interval
from engine.plots.gantt import stops
from engine.report import format_interval


def test_finish_times_read_as_race_clock_and_differences_stay_seconds() -> None:
    iv = Interval(3725.4, 3700.0, 3751.0)
    assert format_interval("finish_time_s", iv) == "1:02:05 [1:01:40, 1:02:31]"
    assert format_interval("finish_time_s", iv, signed=True) == "+3725.4 [+3700.0, +3751.0]"


def test_gantt_stops_name_lap_lane_time_fill_and_new_tyres() -> None:
    # laps 1-6; stops at the end of lap 2 (fill to 100 %, new tyres of the same compound)
    # and lap 4 (fill to 40 %, tyres kept)
    laps = {
        "lap": np.array([1, 2, 3, 4, 5, 6]),
        "race_time_s": np.array([100.0, 200.0, 330.0, 430.0, 560.0, 660.0]),
        "pit_in": np.array([0, 1, 0, 1, 0, 0]),
        "pit_time_s": np.array([np.nan, np.nan, 31.0, np.nan, 28.5, np.nan]),
        "fuel_start": np.array([1.0, 0.8, 1.0, 0.8, 0.4, 0.2]),
        "tyre_age_laps": np.array([1, 2, 1, 2, 3, 4]),
        "compound": np.array([1, 1, 1, 1, 1, 1]),
    }
    assert stops(laps) == [(200.0, 2, 31.0, 1.0, True), (430.0, 4, 28.5, 0.4, False)]
