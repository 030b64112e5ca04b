"""Training checks (slow): the agent learns the single-car problem to within 1 % of the
dynamic-programming optimum, and training resumes from a checkpoint bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.race import StrategyAssignment, simulate
from engine.scenario import load_scenario
from engine.vec_env import OBS_DIM, RaceVecEnv, RewardSpec
from policies.agents import AgentConfig, AgentStrategy, build_algorithm
from policies.checkpoint import load_checkpoint, restore_rng
from policies.demonstrations import Demonstrations
from policies.dp import DPStrategy, Grid, SingleCarDP, single_car_scenario
from policies.training import Budget, train
from policies.tuned import fixed_plan

pytestmark = pytest.mark.slow


def _race_time(scenario, strategy) -> float:
    r = simulate(scenario, StrategyAssignment(per_car={scenario.focus_car: strategy}), 1, 0)
    return float(r.finish_time_s[0, 0])


def test_ppo_is_within_one_percent_of_the_dp_optimum(global_rng) -> None:
    sc = single_car_scenario(load_scenario("test_race"), laps=14)
    config = AgentConfig(algo="ppo", obs_dim=OBS_DIM, gamma=1.0)
    env = RaceVecEnv(sc, 64, reward=RewardSpec(objective="time", gamma=1.0))
    algo = build_algorithm(config)
    train(env, algo, config, seed=0, budget=Budget(env_steps=30_000))
    agent_s = _race_time(sc, AgentStrategy(algo, config, env.encoder))
    dp = SingleCarDP(sc, Grid(fuel_step=0.02, wear_step=0.05))
    dp_s = _race_time(sc, DPStrategy(dp))
    untrained = _race_time(sc, AgentStrategy(build_algorithm(config), config, env.encoder))
    assert agent_s <= 1.01 * dp_s
    assert untrained > agent_s  # it learned something the untrained net does not do


@pytest.mark.parametrize(("algo", "taught"), [("ppo", 0), ("iqn", 0), ("iqn", 1)])
def test_resumed_training_is_bit_identical(
    algo: str, taught: int, tmp_path: Path, global_rng
) -> None:
    sc = load_scenario("test_race")
    config = AgentConfig(
        algo=algo, obs_dim=OBS_DIM, minibatch=64, q_batch=32, updates_per_step=0.05, bc_epochs=2
    )
    reward = RewardSpec(gamma=config.gamma)
    steps_one, steps_all = 100, 250  # about 1 and 3 generations of 8 races
    # With a teacher, the first generation is the fixed plan's races: the demonstration set
    # built from them must travel in the checkpoint.
    teach = {"teacher": fixed_plan(6, 1), "teacher_generations": taught}

    rng = (torch.get_rng_state(), np.random.get_state())
    straight = build_algorithm(config)
    st_a, _ = train(
        RaceVecEnv(sc, 8, reward=reward),
        straight,
        config,
        seed=1,
        budget=Budget(env_steps=steps_all),
        **teach,
    )

    torch.set_rng_state(rng[0])
    np.random.set_state(rng[1])
    first = build_algorithm(config)
    ckpt = tmp_path / "agent.pt"
    train(
        RaceVecEnv(sc, 8, reward=reward),
        first,
        config,
        seed=1,
        budget=Budget(env_steps=steps_one),
        checkpoint_path=ckpt,
        **teach,
    )
    torch.manual_seed(12345)  # disturb the generators: the checkpoint must restore them
    np.random.seed(12345)
    ck = load_checkpoint(ckpt)
    restore_rng(ck.rng)
    if hasattr(ck.algorithm, "_iter"):
        ck.algorithm._iter = ck.target_iter
    st_b, _ = train(
        RaceVecEnv(sc, 8, reward=reward),
        ck.algorithm,
        config,
        seed=1,
        budget=Budget(env_steps=steps_all),
        state=ck.state,
        buffer=ck.buffer,
        demos=None if ck.demos is None else Demonstrations.from_dict(ck.demos),
        **teach,
    )
    assert (ck.demos is not None) == (taught > 0)
    assert st_a.env_steps == st_b.env_steps and st_a.generation == st_b.generation
    assert st_a.gradient_steps == st_b.gradient_steps > 0
    a, b = straight.state_dict(), ck.algorithm.state_dict()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
