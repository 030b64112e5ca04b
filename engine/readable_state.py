"""A race state as a strategist reads it: the readable block of a saved race state.

``stintsim whatif ... --save-state FILE`` writes the engine's state (every tensor of the one
race, for the engine to run on from) and, beside it under ``"readable"``, this block::

    {"scenario": "test_race", "race_time_s": 810.2, "race_time": "0:13:30",
     "time_left_s": 989.8, "flag": "safety_car",          # green, yellow, fcy, safety_car, ...
     "cars": [{"number": "1", "class": "HYPERCAR", "laps": 7, "position": 2,
               "gap_laps": 0, "gap_s": 1.531,             # to the leader (gap_s on the same lap)
               "fuel": 0.896, "energy": 0.8997,           # fractions of tank / allocation
               "tread": [0.9909, 0.9931, 0.9927, 0.9923], # FL FR RL RR, 1 = new
               "compound": "medium", "tyre_age_laps": 1,
               "driver": "A. Two", "driver_times_s": {"A. One": 601.8, "A. Two": 209.0},
               "stint_drive_s": 209.0, "tyre_sets_left": 4.0, "damage": 0.0, "out": false},
              ...]}

The engine reads only its own state; the readable block is for people and tools.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.result import RaceSnapshot
from engine.scenario import Scenario
from world_model.interface import Compound, FlagState


def hms(seconds: float) -> str:
    """``h:mm:ss`` of a race time [s] (rounded to the second)."""
    s = round(float(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def readable_state(snapshot: RaceSnapshot, scenario: Scenario) -> dict[str, Any]:
    """The race state as a strategist reads it: race time (s and h:mm:ss), time left, the
    flag, and per car its number, class, laps, position and gap to the leader (by laps and
    the time its current lap began), fuel and energy left (fractions), tread per wheel,
    compound and tyre age, the driver in the car with each driver's driving time so far
    [s], the current stint's driving time [s], tyre sets left, damage and whether it is
    out of the race."""
    st = snapshot.state
    t = snapshot.race_time_s
    kind, start, end = st["neut_kind"][0], st["neut_start_s"][0], st["neut_end_s"][0]
    flag = FlagState(int(kind)) if start <= t < end else FlagState.GREEN
    laps = np.array(st["lap"][0], dtype=float)
    began = np.array(st["lap_start_s"][0], dtype=float)
    order = np.lexsort((began, -laps))
    leader = order[0]
    position = np.empty_like(order)
    position[order] = np.arange(1, len(order) + 1)
    cars = []
    for c, e in enumerate(scenario.entries):
        driver = int(st["driver"][0][c])
        cars.append(
            {
                "number": e.number,
                "class": e.car_class,
                "laps": int(laps[c]),
                "position": int(position[c]),
                "gap_laps": int(laps[leader] - laps[c]),
                "gap_s": round(float(began[c] - began[leader]), 3)
                if laps[c] == laps[leader]
                else None,
                "fuel": round(float(st["fuel"][0][c]), 4),
                "energy": round(float(st["energy"][0][c]), 4),
                "tread": [round(float(x), 4) for x in st["tread"][0][c]],
                "compound": Compound(int(st["compound"][0][c])).name.lower(),
                "tyre_age_laps": int(st["tyre_age"][0][c]),
                "driver": e.drivers[driver].name,
                "driver_times_s": {
                    d.name: round(float(st["drive_total_s"][0][c][i]), 1)
                    for i, d in enumerate(e.drivers)
                },
                "stint_drive_s": round(float(st["stint_drive_s"][0][c]), 1),
                "tyre_sets_left": float(st["tyre_sets_left"][0][c]),
                "damage": round(float(st["damage"][0][c]), 4),
                "out": bool(st["retired"][0][c]),
            }
        )
    left = None if scenario.race.duration_s is None else scenario.race.duration_s - t
    return {
        "scenario": scenario.name,
        "race_time_s": round(t, 3),
        "race_time": hms(t),
        "time_left_s": None if left is None else round(left, 3),
        "flag": flag.name.lower(),
        "cars": cars,
    }
