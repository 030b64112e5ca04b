"""The Q-learning agents' demonstration losses: the margin loss, pretraining that makes the
teacher's action the greedy one, and IQN's quantiles learning the teacher's outcome spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.actions import N_ACTIONS
from engine.vec_env import OBS_DIM
from policies.agents import AgentConfig, build_algorithm, cvar_fractions, q_scores
from policies.demonstrations import (
    Demonstrations,
    margin_loss,
    margin_step,
    pretrain,
)


def test_margin_loss_is_zero_only_when_the_demonstrated_action_leads_by_the_margin() -> None:
    legal = torch.tensor([[True, True, True, False]])
    act = torch.tensor([0])
    ahead = torch.tensor([[1.0, 0.9, 0.5, 5.0]])  # the illegal action's score does not count
    assert float(margin_loss(ahead, legal, act, 0.1)) == pytest.approx(0.0)
    close = torch.tensor([[1.0, 0.95, 0.5, 5.0]])
    assert float(margin_loss(close, legal, act, 0.1)) == pytest.approx(0.05)
    behind = torch.tensor([[1.0, 1.2, 0.5, 5.0]])
    assert float(margin_loss(behind, legal, act, 0.1)) == pytest.approx(0.3)


def _synthetic(n: int, rng: np.random.Generator, low_share: float = 0.2) -> Demonstrations:
    """A teacher that picks action 3 when the first feature is positive and action 100
    otherwise; returns -1 with probability ``low_share``, else 0, whatever it did."""
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    act = np.where(obs[:, 0] > 0, 3, 100).astype(np.int64)
    mask = rng.random((n, N_ACTIONS)) < 0.7
    mask[np.arange(n), act] = True
    returns = np.where(rng.random(n) < low_share, -1.0, 0.0).astype(np.float32)
    return Demonstrations(obs=obs, mask=mask, act=act, returns=returns)


def _accuracy(algo, config, demos: Demonstrations) -> float:
    with torch.no_grad():
        scores = q_scores(algo, config, torch.from_numpy(demos.obs))
    legal = torch.from_numpy(demos.mask)
    greedy = scores.masked_fill(~legal, -1e9).argmax(dim=1).numpy()
    return float((greedy == demos.act).mean())


@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_pretraining_makes_the_teachers_action_the_greedy_one(algo: str, global_rng) -> None:
    config = AgentConfig(algo=algo, obs_dim=OBS_DIM, bc_epochs=25, minibatch=256)
    demos = _synthetic(3000, np.random.default_rng(1))
    held_out = _synthetic(1000, np.random.default_rng(2))
    algorithm = build_algorithm(config)
    before = _accuracy(algorithm, config, held_out)
    fit_accuracy = pretrain(algorithm, config, demos)
    after = _accuracy(algorithm, config, held_out)
    assert before < 0.5
    assert fit_accuracy > 0.9 and after > 0.9
    # The target network starts from the pretrained weights.
    online = algorithm.policy.model.parameters()  # type: ignore[attr-defined]
    target = algorithm.model_old.parameters()  # type: ignore[attr-defined]
    for p, q in zip(online, target, strict=True):
        assert torch.equal(p, q)


def test_iqn_pretraining_learns_the_spread_of_the_teachers_outcomes(global_rng) -> None:
    # The demonstrated races' returns are uniform on [-1, 0] (quantile at fraction t: t - 1):
    # the low fractions must learn the bad outcomes and the high ones the good, where a
    # model of the mean alone would give -0.5 at every fraction.
    config = AgentConfig(algo="iqn", obs_dim=OBS_DIM, bc_epochs=20, minibatch=256)
    demos = _synthetic(4000, np.random.default_rng(3))
    demos.returns = -np.random.default_rng(5).random(4000).astype(np.float32)
    algorithm = build_algorithm(config)
    pretrain(algorithm, config, demos)
    obs = torch.from_numpy(demos.obs[:500])
    rows = torch.arange(500)
    act = torch.from_numpy(demos.act[:500])
    model = algorithm.policy.model  # type: ignore[attr-defined]

    def at(taus: torch.Tensor) -> float:
        with torch.no_grad():
            return float(model.quantiles(obs, taus)[rows, act].mean())

    assert at(cvar_fractions(0.1, 16, 500)) < -0.7  # exact: -0.95
    assert at(torch.full((500, 1), 0.5)) == pytest.approx(-0.5, abs=0.1)
    assert at(torch.full((500, 1), 0.9)) > -0.2  # exact: -0.1


def test_margin_step_moves_scores_toward_the_demonstrated_actions(global_rng) -> None:
    config = AgentConfig(algo="dqn", obs_dim=OBS_DIM, q_batch=256, lr=3e-3)
    algorithm = build_algorithm(config)
    demos = _synthetic(2000, np.random.default_rng(4))
    obs, legal = torch.from_numpy(demos.obs), torch.from_numpy(demos.mask)
    act = torch.from_numpy(demos.act)

    def loss() -> float:
        with torch.no_grad():
            return float(margin_loss(q_scores(algorithm, config, obs), legal, act, 0.05))

    before = loss()
    for _ in range(50):
        margin_step(algorithm, config, demos)
    assert loss() < 0.5 * before
