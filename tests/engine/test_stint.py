"""Stint-level decisions: one step per stint, rewards that telescope, and a constant option
that drives the race exactly as the double-stint rule it stands for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.evaluate import evaluate
from engine.scenario import load_scenario
from engine.stint import (
    N_STINT_OPTIONS,
    STINT_OPTIONS,
    StintAgentStrategy,
    StintVecEnv,
)
from engine.vec_env import RewardSpec
from world_model.interface import PaceMode


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


def _constant(option: int) -> StintAgentStrategy:
    def score(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((x.shape[0],), option), N_STINT_OPTIONS)

    return StintAgentStrategy(f"stint-option{option}", lambda obs: torch.zeros(obs.size, 1), score)


def test_options_cover_pace_and_fuel_reserve() -> None:
    assert {o.pace for o in STINT_OPTIONS} == {PaceMode.NORMAL, PaceMode.PUSH}
    assert len({o.reserve_laps for o in STINT_OPTIONS}) == 2


@pytest.mark.parametrize("option", [0, 3])
def test_a_constant_option_races_as_its_double_stint_rule(scenario, option: int) -> None:
    """The controller adds nothing of its own: always choosing one option gives the same races,
    bit for bit, as the rule with that reserve and pace."""
    o = STINT_OPTIONS[option]
    rule = f"double-stint:laps={o.reserve_laps:g},pace={o.pace.name.lower()}"
    agent = _constant(option)
    ev = evaluate(scenario, [rule, agent], 24, seed=3, chunk_replicas=12)
    a, b = ev.outcomes[rule], ev.outcomes[agent.name]
    np.testing.assert_array_equal(a.finish_time_s, b.finish_time_s)
    np.testing.assert_array_equal(a.pit_stops, b.pit_stops)
    # One choice at each race's first crossing and one at each stop, over both chunks.
    assert int(agent.option_counts.sum()) == int(b.pit_stops.sum()) + 24
    assert int(agent.option_counts[option]) == int(agent.option_counts.sum())


def test_one_step_per_stint_and_the_shaping_telescopes(scenario) -> None:
    """Each replica decides at its first crossing and at every stop, and its stint rewards sum
    to the finishing reward minus the potential at its first decision."""
    reward = RewardSpec(gamma=1.0)
    env = StintVecEnv(scenario, 16, reward=reward)
    rng = np.random.default_rng(0)
    dec = env.reset(7)
    phi0 = np.full(16, np.nan)
    decisions = np.zeros(16, int)
    returns = np.zeros(16)
    ends = 0
    while dec is not None:
        assert dec.mask.shape == (len(dec.ids), N_STINT_OPTIONS) and dec.mask.all()
        new = np.isnan(phi0[dec.ids])
        phi0[dec.ids[new]] = reward.potential(dec.raw, env.encoder.class_size)[new]
        decisions[dec.ids] += 1
        trans, dec = env.step(rng.integers(0, N_STINT_OPTIONS, len(dec.ids)))
        np.add.at(returns, trans.ids, trans.rew)
        ends += int(trans.terminated.sum())
    assert ends == 16
    result = env.lap_env.sim.result()
    car = env.lap_env._car_index
    stops = np.asarray(result.pit_stops[:, car])
    np.testing.assert_array_equal(decisions, stops + 1)
    terminal = reward.terminal(np.asarray(result.class_position[:, car]), env.encoder.class_size)
    np.testing.assert_allclose(returns, terminal - phi0, atol=1e-9)
    assert sorted(env.episodes_finished) == sorted(result.class_position[:, car].tolist())


def test_a_discounted_reward_is_refused(scenario) -> None:
    with pytest.raises(ValueError, match="gamma must be 1"):
        StintVecEnv(scenario, 2, reward=RewardSpec(gamma=0.99))
