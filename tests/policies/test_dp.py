"""The dynamic-programming reference agrees with the engine and beats every fixed plan."""

from __future__ import annotations

import pytest
import torch

from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario
from policies.dp import DPStrategy, Grid, SingleCarDP, single_car_scenario
from policies.tuned import fixed_plan, stint_grid

LAPS = 14


@pytest.fixture(scope="module")
def solved() -> tuple[SingleCarDP, float]:
    sc = single_car_scenario(load_scenario("test_race"), laps=LAPS)
    dp = SingleCarDP(sc, Grid(fuel_step=0.02, wear_step=0.05))
    return dp, dp.solve()


def _race_time(scenario, strategy) -> float:
    r = simulate(scenario, StrategyAssignment(per_car={scenario.focus_car: strategy}), 2, 0)
    assert r.finish_time_s[0, 0] == r.finish_time_s[1, 0]  # deterministic problem
    return float(r.finish_time_s[0, 0])


def test_single_car_problem_is_deterministic_and_alone() -> None:
    sc = single_car_scenario(load_scenario("test_race"), laps=LAPS)
    assert len(sc.entries) == 1 and sc.race.laps == LAPS
    assert sc.noise_scale == 0.0 and not sc.events.incidents and not sc.events.weather
    assert len(sc.entries[0].drivers) == 1 and not sc.classes[0].has_energy


def test_predicted_time_matches_the_engine(solved) -> None:
    """The DP's value is the race time the engine gives its policy (to grid accuracy)."""
    dp, predicted = solved
    engine_s = _race_time(dp.scenario, DPStrategy(dp))
    assert abs(engine_s - predicted) < 1e-3 * predicted


def test_dp_beats_every_fixed_plan(solved) -> None:
    dp, _ = solved
    optimum = _race_time(dp.scenario, DPStrategy(dp))
    car = dp.scenario.focus_car
    assert car is not None
    for laps in stint_grid(dp.scenario, car):
        for tyres in (1.0, 2.0):
            assert optimum <= _race_time(dp.scenario, fixed_plan(laps, tyres)) + 1e-6


def test_grid_backup_equals_the_generic_q_values(solved) -> None:
    dp, _ = solved
    k = LAPS // 2
    fi = torch.tensor([10, 30, 50])
    wi = torch.tensor([0, 4, 9])
    comp = torch.tensor([1, 0, 2])
    q = dp.q_values(k, dp.fuel_pts[fi], dp.wear_pts[wi], dp.wear_pts[wi.flip(0)], comp)
    table = dp.values[k][comp, fi, wi, wi.flip(0)]
    assert torch.allclose(q.min(dim=1).values, table)


def test_night_race_is_refused() -> None:
    with pytest.raises(ValueError, match="night"):
        single_car_scenario(load_scenario("test_race"), laps=400)
