"""The CVaR agent trades expected result for tail risk where the race offers a gamble.

A one-decision gamble on a real observation: staying out at normal pace always returns 0;
pushing returns +0.2 (about three class positions) in 80 % of races and -0.4 in the other
20 %. Pushing has the better mean (+0.04) and the worse 10 % tail (-0.4), so trained on the
same races, the risk-neutral IQN agent must push and the agent acting on CVaR 10 % must not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tianshou.algorithm.algorithm_base import policy_within_training_step
from tianshou.data import Batch, VectorReplayBuffer

from engine.actions import N_ACTIONS, action_index
from engine.scenario import load_scenario
from engine.vec_env import OBS_DIM, RaceVecEnv
from policies.agents import AgentConfig, build_algorithm, greedy_scores
from world_model.interface import PaceMode

SAFE = action_index(PaceMode.NORMAL, False)
RISKY = action_index(PaceMode.PUSH, False)
RACES = 2048
CHUNK = 64
GAIN, LOSS, P_LOSS = 0.2, -0.4, 0.2


@pytest.fixture(scope="module")
def observation() -> np.ndarray:
    dec = RaceVecEnv(load_scenario("test_race"), 4).reset(3)
    assert dec is not None
    return dec.obs[:1].astype(np.float32)


def _gamble_buffer(x: np.ndarray, rng: np.random.Generator) -> VectorReplayBuffer:
    """``RACES`` one-decision races, each action chosen uniformly at random."""
    mask = np.zeros((1, N_ACTIONS), bool)
    mask[0, [SAFE, RISKY]] = True
    act = rng.choice([SAFE, RISKY], size=RACES)
    rew = np.where(act == RISKY, np.where(rng.random(RACES) < P_LOSS, LOSS, GAIN), 0.0)
    obs = Batch(obs=np.repeat(x, CHUNK, 0), mask=np.repeat(mask, CHUNK, 0))
    buffer = VectorReplayBuffer(RACES, CHUNK)
    for start in range(0, RACES, CHUNK):
        rows = slice(start, start + CHUNK)
        buffer.add(
            Batch(
                obs=obs,
                act=act[rows],
                rew=rew[rows].astype(np.float32),
                terminated=np.ones(CHUNK, bool),
                truncated=np.zeros(CHUNK, bool),
                obs_next=obs,
                info=Batch(),
            ),
            buffer_ids=np.arange(CHUNK),
        )
    return buffer


def _trained_scores(alpha: float, x: np.ndarray, updates: int = 400) -> torch.Tensor:
    """Scores of (safe, risky) after ``updates`` IQN steps on the same races (fixed seeds)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state = np.random.get_state()
        np.random.seed(0)  # Tianshou samples its batches from numpy's global generator
        try:
            buffer = _gamble_buffer(x, np.random.default_rng(1))
            config = AgentConfig(algo="iqn", obs_dim=OBS_DIM, cvar_alpha=alpha)
            algo = build_algorithm(config)
            with policy_within_training_step(algo.policy):
                for _ in range(updates):
                    algo.update(buffer, sample_size=config.q_batch)
            algo.eval()
            scores = greedy_scores(algo, config, torch.as_tensor(x))[0]
        finally:
            np.random.set_state(state)
    return scores[[SAFE, RISKY]]


def test_risk_neutral_agent_takes_the_gamble_with_the_better_mean(observation) -> None:
    safe, risky = _trained_scores(1.0, observation)
    assert float(risky) > float(safe)
    # The mean it learned: 0 and +0.04, within a tenth of the loss.
    assert abs(float(safe)) < 0.04 and abs(float(risky) - 0.04) < 0.04


def test_cvar_agent_declines_the_gamble_for_the_better_tail(observation) -> None:
    safe, risky = _trained_scores(0.1, observation)
    assert float(safe) > float(risky)
    # CVaR 10 % of pushing is the loss (-0.4); of staying at normal pace, 0.
    assert float(risky) < -0.2 and abs(float(safe)) < 0.1
