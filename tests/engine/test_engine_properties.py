"""Invariants of simulated races over random scenarios and strategies (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.baselines import make_strategy
from engine.race import StrategyAssignment, simulate
from engine.scenario import Scenario, load_scenario, scenario_with, validate

SPECS = (
    "fixed:laps=4",
    "fixed:laps=7",
    "fuel-reserve",
    "double-stint",
    "triple-stint",
    "opportunistic",
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Scenario, str, int]:
    s = load_scenario("test_race")
    entries = []
    for e in s.entries:
        entries.append(
            dataclasses.replace(
                e,
                ref_lap_time_s=draw(st.floats(80.0, 130.0)),
                ref_fuel_per_lap=draw(st.floats(0.08, 0.3)),
                ref_energy_per_lap=draw(st.floats(0.08, 0.3)),
                ref_wear_per_lap=draw(st.floats(0.0, 0.08)),
                strategy=draw(st.sampled_from(SPECS)),
            )
        )
    rules = dataclasses.replace(
        s.rules,
        max_stint_driving_s=draw(st.floats(700.0, 1500.0)),
        min_pit_time_s=draw(st.floats(0.0, 40.0)),
        refuel_with_tyres=draw(st.booleans()),
    )
    race = dataclasses.replace(s.race, duration_h=draw(st.floats(0.2, 0.4)))
    s = validate(dataclasses.replace(s, entries=tuple(entries), rules=rules, race=race), "drawn")
    s = scenario_with(s, **{"events.incidents": draw(st.booleans())})
    return s, draw(st.sampled_from(SPECS)), draw(st.integers(0, 2**16))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_race_invariants(case: tuple[Scenario, str, int]) -> None:
    s, focus_spec, seed = case
    strategies = StrategyAssignment(per_car={"1": make_strategy(focus_spec)})
    r = simulate(s, strategies, 2, seed, record_laps=True)
    laps = r.laps
    assert laps is not None
    # Fuel and energy never below zero; tread in [0, 1].
    assert (laps["fuel_end"] >= 0).all() and (laps["energy_end"] >= 0).all()
    for w in ("tread_fl", "tread_fr", "tread_rl", "tread_rr"):
        assert ((laps[w] >= 0) & (laps[w] <= 1)).all()
    for rep in range(2):
        for c in range(r.n_cars):
            m = (laps["replica"] == rep) & (laps["car"] == c)
            if not m.any():
                continue
            lt, rt = laps["lap_time_s"][m], laps["race_time_s"][m]
            # Laps are numbered 1..n and their times add up to the race time at the line.
            assert list(laps["lap"][m]) == list(range(1, int(m.sum()) + 1))
            assert np.isclose(lt.sum(), rt[-1], rtol=0, atol=1e-6)
            assert np.isclose(rt[-1], r.finish_time_s[rep, c], rtol=0, atol=1e-9)
            assert r.laps_completed[rep, c] == m.sum()
            # Wear only rises (tread only falls) between tyre changes: a rise needs a stop
            # at the end of the previous lap.
            tread = np.stack([laps[w][m] for w in ("tread_fl", "tread_fr", "tread_rl", "tread_rr")])
            rises = (np.diff(tread, axis=1) > 1e-7).any(axis=0)
            pit_before = laps["pit_in"][m][:-1] == 1
            assert not (rises & ~pit_before).any()
            # Fuel only rises at a stop too.
            fuel_up = np.diff(laps["fuel_end"][m]) > 1e-7
            assert not (fuel_up & ~pit_before).any()
    assert (r.finish_position >= 1).all() and (r.finish_position <= r.n_cars).all()
    for rep in range(2):
        assert sorted(r.finish_position[rep]) == list(range(1, r.n_cars + 1))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_driving_time_rules_never_broken(case: tuple[Scenario, str, int]) -> None:
    s, focus_spec, seed = case
    s = scenario_with(s, **{"events.incidents": False})
    r = simulate(
        s, StrategyAssignment(per_car={"1": make_strategy(focus_spec)}), 1, seed, record_laps=True
    )
    laps = r.laps
    assert laps is not None
    for c, e in enumerate(s.entries):
        m = laps["car"] == c
        lap_time, driver = laps["lap_time_s"][m], laps["driver"][m]
        change = laps["driver_change"][m] == 1
        stint, total = 0.0, np.zeros(len(e.drivers))
        for t, d, ch in zip(lap_time, driver, change, strict=True):
            stint = t if ch else stint + t
            total[d] += t
            assert stint <= s.rules.max_stint_driving_s + 1e-6
        assert (total <= s.rules.max_total_driving_s + 1e-6).all()
