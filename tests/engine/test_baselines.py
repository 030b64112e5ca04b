"""Rule baselines and the strategy registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.actions import ACTIONS, N_ACTIONS, Tyres, action_index
from engine.baselines import PlanStrategy, RuleStrategy, first_legal, make_strategy
from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario, scenario_with
from world_model.interface import PaceMode


def make_fixed_five() -> RuleStrategy:
    """A factory for the importlib path of make_strategy."""
    return RuleStrategy(name="five", stint_laps=5.0)


def test_registry_builds_every_builtin_and_rejects_unknown() -> None:
    assert make_strategy("fixed:laps=12").stint_laps == 12.0  # type: ignore[attr-defined]
    assert make_strategy("fuel-reserve:laps=1.5").reserve_laps == 1.5  # type: ignore[attr-defined]
    assert make_strategy("triple-stint").tyre_stints == 3.0  # type: ignore[attr-defined]
    assert make_strategy("opportunistic").opportunistic  # type: ignore[attr-defined]
    assert make_strategy("tests.engine.test_baselines:make_fixed_five").name == "five"
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("sometimes")
    with pytest.raises(ValueError, match="unknown argument"):
        make_strategy("fixed:lap=3")
    with pytest.raises(ValueError, match="unknown argument"):
        make_strategy("double-stint:tyres=3")


def test_fixed_plans_take_a_tyre_interval() -> None:
    plan = make_strategy("fixed:laps=27,tyres=3")
    assert isinstance(plan, RuleStrategy)
    assert (plan.stint_laps, plan.tyre_stints) == (27.0, 3.0)
    assert make_strategy("fixed:laps=27").tyre_stints == 2.0  # type: ignore[attr-defined]


def test_first_legal_picks_in_order_and_falls_back() -> None:
    legal = torch.zeros(2, N_ACTIONS, dtype=torch.bool)
    legal[0, [3, 7]] = True
    legal[1, 9] = True
    prefs = torch.tensor([[5, 7, 3], [1, 2, 4]])
    assert first_legal(prefs, legal).tolist() == [7, 9]


def test_fixed_stints_stop_every_n_laps() -> None:
    s = scenario_with(load_scenario("test_race"), **{"events.incidents": False})
    r = simulate(
        s, StrategyAssignment(per_car={"1": make_strategy("fixed:laps=4")}), 1, 3, record_laps=True
    )
    laps = r.laps
    assert laps is not None
    m = laps["car"] == 0
    stops = laps["lap"][m][laps["pit_in"][m] == 1]
    assert list(stops[:3]) == [4, 8, 12]


def test_plan_file_stops_where_scripted(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[stop]]\nlap = 5\ntyres = "four_hard"\ndriver_change = true\n')
    strat = PlanStrategy.from_file(plan)
    act = ACTIONS[strat.stops[5]]
    assert act.pit and act.tyres == Tyres.FOUR_HARD and act.driver_change
    assert strat.stops[5] == action_index(
        PaceMode.NORMAL, True, tyres=Tyres.FOUR_HARD, driver_change=True
    )
    plan.write_text("[[stop]]\nlap = 5\nwhen = 3\n")
    with pytest.raises(ValueError, match="unknown key 'when'"):
        PlanStrategy.from_file(plan)
