"""Scenario loading: shipped files load, unknown keys and bad values are named, dotted changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.scenario import ScenarioError, load_scenario, scenario_with


def test_shipped_test_race_loads() -> None:
    s = load_scenario("test_race")
    assert s.race.duration_s == pytest.approx(1800.0)
    assert {e.car_class for e in s.entries} <= set(s.class_names)
    assert s.focus_car == "1"


def test_unknown_key_is_named_with_file(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "engine/scenarios/test_race.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[rules]\n", "[rules]\nrefuel_speed = 3.0\n"))
    with pytest.raises(ScenarioError, match=r"bad\.toml.*rules.*'refuel_speed'"):
        load_scenario(bad)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "engine/scenarios/test_race.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("pit_lane_loss_s = 25.0", 'pit_lane_loss_s = "long"'))
    with pytest.raises(ScenarioError, match="pit_lane_loss_s: expected a number"):
        load_scenario(bad)


def test_unknown_class_of_entry_is_an_error(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "engine/scenarios/test_race.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('class = "LMGT3"\nteam = "Gamma GT"', 'class = "GT4"\nteam = "G"'))
    with pytest.raises(ScenarioError, match="unknown class 'GT4'"):
        load_scenario(bad)


def test_scenario_with_changes_nested_fields_by_path() -> None:
    s = load_scenario("test_race")
    t = scenario_with(s, **{"rules.min_pit_time_s": 40, "entries.91.ref_lap_time_s": 111.0})
    assert t.rules.min_pit_time_s == 40.0
    assert t.entries[s.entry_index("91")].ref_lap_time_s == 111.0
    assert s.rules.min_pit_time_s == 0.0  # the original is untouched
    with pytest.raises(ScenarioError, match="unknown field 'nope'"):
        scenario_with(s, **{"rules.nope": 1})


def test_window_longer_than_neutralisation_delay_is_rejected() -> None:
    s = load_scenario("test_race")
    with pytest.raises(ScenarioError, match="neutralisation_delay_s"):
        scenario_with(s, **{"race.window_s": 60.0})


def test_the_learned_lap_models_fuel_spread_is_the_scenarios() -> None:
    from engine.race import load_lap_model

    s = scenario_with(load_scenario("test_race"), lap_model="default")
    assert s.lap_model_fuel_noise == 0.25 and load_lap_model(s).fuel_noise == 0.25
    fitted = scenario_with(s, lap_model_fuel_noise=1.0)
    assert load_lap_model(fitted).fuel_noise == 1.0
    with pytest.raises(ScenarioError, match="lap_model_fuel_noise must be >= 0"):
        scenario_with(s, lap_model_fuel_noise=-0.1)


def test_the_wet_pace_is_the_scenarios_for_either_lap_model() -> None:
    import torch

    from engine.race import load_lap_model
    from world_model.interface import Compound
    from world_model.parametric import EffectTables, ParametricLapParams

    s = scenario_with(load_scenario("test_race"), lap_model="default")
    assert s.lap_model_wet_penalty == ParametricLapParams().wet_penalty
    mine = [0.5, 0.5, 0.5, 0.2]
    for lap_model in ("default", "parametric"):
        model = load_lap_model(scenario_with(s, lap_model=lap_model, lap_model_wet_penalty=mine))
        physics = getattr(model, "physics", None) or model.params  # type: ignore[attr-defined]
        assert tuple(physics.wet_penalty) == tuple(mine)
    # The learned model's lap on wets at full wetness: 20 % slower.
    learned = load_lap_model(scenario_with(s, lap_model_wet_penalty=mine))
    effects = EffectTables(learned.physics)  # type: ignore[attr-defined]
    grip = effects.grip(torch.tensor([int(Compound.WET)]), torch.tensor([1.0]))
    assert float(grip) == pytest.approx(0.2)
    with pytest.raises(ScenarioError, match="lap_model_wet_penalty must be 4 fractions"):
        scenario_with(s, lap_model_wet_penalty=[0.5, 0.5, 1.5, 0.2])
