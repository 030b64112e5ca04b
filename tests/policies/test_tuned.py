"""The tuned fixed plan: a sound grid, and the search picks the best candidate it measured."""

from __future__ import annotations

import math

from engine.baselines import make_strategy
from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario
from policies.tuned import fixed_plan, stint_grid, tune_fixed_plan


def test_stint_grid_ends_at_the_longest_legal_stint() -> None:
    sc = load_scenario("test_race")
    grid = stint_grid(sc, "1")
    e = sc.entries[sc.entry_index("1")]
    use = max(e.ref_fuel_per_lap, e.ref_energy_per_lap)
    longest = grid[-1]
    # After `longest - 1` laps the car may stay out; after `longest` laps it may not.
    assert 1.0 - (longest - 1) * use >= sc.rules.fuel_margin * use
    assert 1.0 - longest * use < sc.rules.fuel_margin * use
    assert list(grid) == [longest - i for i in range(len(grid) - 1, -1, -1)]


def test_tuned_plan_name_is_a_strategy_spec_that_rebuilds_it() -> None:
    """engine.train prints the tuned plan by name; ``engine.evaluate --strategy NAME`` must
    rebuild the same plan, tyre interval included."""
    for laps, tyres in ((27.0, 3.0), (12.5, 1.0)):
        plan = fixed_plan(laps, tyres)
        rebuilt = make_strategy(plan.name)
        assert (rebuilt.stint_laps, rebuilt.tyre_stints) == (laps, tyres)  # type: ignore[attr-defined]


def test_fixed_plan_stops_every_n_laps_on_a_clean_race() -> None:
    sc = load_scenario("test_race")
    from policies.dp import single_car_scenario

    solo = single_car_scenario(sc, laps=20)
    r = simulate(solo, StrategyAssignment(per_car={"1": fixed_plan(4.0, 2.0)}), 1, 0)
    assert int(r.pit_stops[0, 0]) == math.ceil(20 / 4) - 1


def test_search_returns_the_best_candidate() -> None:
    sc = load_scenario("test_race")
    tuned = tune_fixed_plan(sc, "1", 16, 99, stints=(5.0, 6.0), tyre_stints=(1.0, 2.0))
    assert len(tuned.table) == 4
    best = min(tuned.table, key=lambda row: row[1])
    assert tuned.best.name == best[0]
