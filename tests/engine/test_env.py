"""The race env: Gymnasium's checker, same-seed determinism, the batched replica env, the
observation encoding and the shaping's telescoping sum."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import engine.env  # noqa: F401  (registers the env id)
from engine.actions import N_ACTIONS, action_index
from engine.env import ENV_ID, RaceEnv
from engine.scenario import load_scenario
from engine.vec_env import (
    FEATURES,
    OBS_BOUND,
    OBS_DIM,
    RaceVecEnv,
    RewardSpec,
    generation_seed,
    legalise,
)
from world_model.interface import PaceMode

STAY = action_index(PaceMode.NORMAL)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


def test_env_passes_gymnasium_checker(scenario) -> None:
    env = RaceEnv(scenario)
    check_env(env, skip_render_check=True)


def test_registered_id_makes_the_env() -> None:
    env = gym.make(ENV_ID, scenario="test_race")
    obs, info = env.reset(seed=1)
    assert obs["obs"].shape == (OBS_DIM,)
    assert obs["mask"].shape == (N_ACTIONS,)
    assert info["action_mask"].any()


def _rollout(env: RaceEnv, seed: int) -> tuple[list[np.ndarray], list[float]]:
    rng = np.random.default_rng(7)
    obs, _ = env.reset(seed=seed)
    seen, rewards = [obs["obs"]], []
    done = False
    while not done:
        legal = np.nonzero(obs["mask"])[0]
        a = STAY if obs["mask"][STAY] and rng.random() < 0.8 else int(rng.choice(legal))
        obs, r, done, truncated, _ = env.step(a)
        assert not truncated
        seen.append(obs["obs"])
        rewards.append(r)
    return seen, rewards


def test_same_seed_same_rollout(scenario) -> None:
    a_obs, a_rew = _rollout(RaceEnv(scenario), 11)
    b_obs, b_rew = _rollout(RaceEnv(scenario), 11)
    assert len(a_obs) == len(b_obs)
    assert all(np.array_equal(x, y) for x, y in zip(a_obs, b_obs, strict=True))
    assert a_rew == b_rew
    c_obs, _ = _rollout(RaceEnv(scenario), 12)
    assert len(c_obs) != len(a_obs) or any(
        not np.array_equal(x, y) for x, y in zip(a_obs, c_obs, strict=False)
    )


def test_illegal_action_is_replaced_and_flagged() -> None:
    mask = np.zeros((2, N_ACTIONS), bool)
    mask[0, STAY] = True
    mask[1, 5] = True
    acts, replaced = legalise(np.array([3, 5]), mask)
    assert acts.tolist() == [STAY, 5]
    assert replaced.tolist() == [True, False]


def test_encoding_is_bounded_and_named(scenario) -> None:
    env = RaceVecEnv(scenario, 8)
    dec = env.reset(3)
    assert dec.obs.shape == (len(dec.ids), OBS_DIM) == (len(dec.ids), len(FEATURES))
    assert np.isfinite(dec.obs).all()
    assert (np.abs(dec.obs) <= OBS_BOUND).all()
    fuel = FEATURES.index("fuel")
    assert np.allclose(dec.obs[:, fuel], dec.raw.fuel.numpy())


def test_shaping_telescopes_to_the_terminal_reward(scenario) -> None:
    """With gamma = 1 an episode's shaped return is the finishing reward minus Phi(s_0)."""
    reward = RewardSpec(objective="position", shaping=0.5, gamma=1.0)
    env = RaceVecEnv(scenario, 16, reward=reward)
    dec = env.reset(5)
    phi0 = np.full(16, np.nan)
    phi0[dec.ids] = reward.potential(dec.raw, env.encoder.class_size)
    returns = np.zeros(16)
    ends = 0
    while dec is not None:
        new = np.isnan(phi0[dec.ids])
        phi0[dec.ids[new]] = reward.potential(dec.raw, env.encoder.class_size)[new]
        trans, dec = env.step(np.full(len(dec.ids), STAY))
        np.add.at(returns, trans.ids, trans.rew)
        ends += int(trans.terminated.sum())
    assert ends == 16
    result = env.sim.result()
    pos = result.class_position[:, env._car_index]
    expected = reward.terminal(pos, env.encoder.class_size) - phi0
    np.testing.assert_allclose(returns, expected, atol=1e-9)


def test_vec_env_transitions_cover_every_decision(scenario) -> None:
    env = RaceVecEnv(scenario, 12)
    dec = env.reset(generation_seed(0, 0))
    decisions = transitions = 0
    while dec is not None:
        decisions += len(dec.ids)
        trans, dec = env.step(np.full(len(dec.ids), STAY))
        transitions += len(trans)
        assert trans.obs.shape[1] == OBS_DIM
    assert transitions == decisions
    assert len(env.episodes_finished) == 12
    assert env.sim is not None and bool(env.sim.done.all())


def test_generation_seeds_are_disjoint_from_evaluation_seeds() -> None:
    seeds = {generation_seed(s, g) for s in range(3) for g in range(50)}
    assert min(seeds) >= 2**30
    assert len(seeds) == 150


def test_time_objective_needs_a_lap_race(scenario) -> None:
    with pytest.raises(ValueError, match="fixed number of laps"):
        RaceVecEnv(scenario, 2, reward=RewardSpec(objective="time"))


def test_vec_env_step_before_reset_raises(scenario) -> None:
    env = RaceVecEnv(scenario, 2)
    with pytest.raises(RuntimeError):
        env.step(torch.zeros(1).numpy())
