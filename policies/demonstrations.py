"""Learning from the teacher's races for the Q-learning agents (DQN, IQN), as in DQfD
(Hester et al. 2018).

The races the teacher (the tuned fixed plan) drives at the start of training are kept as a
demonstration set: observation, legal mask, the teacher's action and the discounted return
the race then gave from that decision. Before reinforcement learning the network is fitted to
them with two losses:

- a value loss on the demonstrated action: squared error to the return (DQN), or quantile
  regression on it (IQN), so the distribution of the teacher's outcomes, tail included, is
  learned from whole races rather than bootstrapped;
- a large-margin loss, ``max_a [score(a) + margin x (a != a_E)] - score(a_E)`` over the legal
  actions, which puts every other action's score at least ``margin`` below the demonstrated
  one. The score is what the agent acts on: the Q value, or the CVaR at ``alpha`` for IQN.

During reinforcement learning every gradient step of the agent is followed by a margin step
on a demonstration minibatch. An action is then preferred to the plan only where the agent's
own races show it is better by more than the margin, and actions it never tried cannot drift
above the plan: without this both Q-learning agents, maximising over 144 noisy stop-action
estimates, learned to stop on most laps of a six-hour race. For the CVaR agent it also breaks
the ties of a saturated tail (when the worst ``alpha`` of outcomes is last place whatever the
car does, every action has the same CVaR) toward the demonstrated plan instead of noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import Algorithm
from tianshou.data import ReplayBuffer

from policies.algorithms import AgentConfig, Algo, q_scores
from policies.networks import MASKED_LOGIT


@dataclass
class Demonstrations:
    """The teacher's decisions with the returns that followed them."""

    obs: np.ndarray
    """Encoded observations, float32 ``[N, D]``."""
    mask: np.ndarray
    """Legal actions, bool ``[N, A]``."""
    act: np.ndarray
    """The teacher's actions, int64 ``[N]``."""
    returns: np.ndarray
    """Discounted return from each decision to the end of its race, float32 ``[N]``."""

    def __len__(self) -> int:
        return int(self.act.shape[0])

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"obs": self.obs, "mask": self.mask, "act": self.act, "returns": self.returns}

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Demonstrations:
        return cls(obs=d["obs"], mask=d["mask"], act=d["act"], returns=d["returns"])


def from_buffer(algorithm: Algorithm, config: AgentConfig, buffer: ReplayBuffer) -> Demonstrations:
    """Every transition in ``buffer`` (the teacher's whole races) with its discounted return."""
    batch, idx = buffer.sample(0)
    zeros = np.zeros(len(idx))
    returns, _ = algorithm.compute_episodic_return(
        batch, buffer, idx, v_s_=zeros, v_s=zeros, gamma=config.gamma, gae_lambda=1.0
    )
    return Demonstrations(
        obs=np.asarray(batch.obs.obs, dtype=np.float32),
        mask=np.asarray(batch.obs.mask, dtype=bool),
        act=np.asarray(batch.act, dtype=np.int64),
        returns=np.asarray(returns, dtype=np.float32),
    )


def margin_loss(
    scores: torch.Tensor, legal: torch.Tensor, act: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean of ``max_a [score(a) + margin x (a != act)] - score(act)`` over legal ``a``."""
    penalty = torch.full_like(scores, margin)
    penalty.scatter_(1, act.unsqueeze(1), 0.0)
    best = (scores + penalty).masked_fill(~legal, MASKED_LOGIT).amax(dim=1)
    return (best - scores.gather(1, act.unsqueeze(1)).squeeze(1)).mean()


def value_loss(
    algorithm: Algorithm,
    config: AgentConfig,
    obs: torch.Tensor,
    act: torch.Tensor,
    returns: torch.Tensor,
) -> torch.Tensor:
    """Squared error of the demonstrated action's Q value to its return (DQN), or the
    quantile-regression Huber loss of its quantiles at uniform fractions (IQN, the loss
    Tianshou's IQN uses, with the observed return as the single target sample)."""
    model: Any = algorithm.policy.model  # type: ignore[attr-defined]
    rows = torch.arange(obs.shape[0])
    if config.algo == Algo.DQN:
        return (model(obs)[0][rows, act] - returns).square().mean()
    taus = torch.rand(obs.shape[0], config.num_quantiles)
    z = model.quantiles(obs, taus)[rows, act]  # [B, T]
    target = returns.unsqueeze(1).expand_as(z)
    huber = torch.nn.functional.smooth_l1_loss(z, target, reduction="none")
    return (huber * (taus - (target < z).float()).abs()).mean()


def _minibatch(demos: Demonstrations, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    r = rows.numpy()
    return (
        torch.from_numpy(demos.obs[r]),
        torch.from_numpy(demos.mask[r]),
        torch.from_numpy(demos.act[r]),
        torch.from_numpy(demos.returns[r]),
    )


def fit_minibatches(n: int, config: AgentConfig, step: Callable[[torch.Tensor], int]) -> float:
    """``config.bc_epochs`` shuffled passes over ``n`` rows in minibatches of
    ``config.minibatch``; ``step(rows)`` takes one gradient step and returns how many of its
    rows the model already got right. Returns that share over the last epoch."""
    accuracy = 0.0
    for _ in range(config.bc_epochs):
        order = torch.randperm(n)
        hits = 0
        for start in range(0, n, config.minibatch):
            hits += step(order[start : start + config.minibatch])
        accuracy = hits / n
    return accuracy


def pretrain(algorithm: Algorithm, config: AgentConfig, demos: Demonstrations) -> float:
    """Fit the network to the demonstrations (value and margin losses) for
    ``config.bc_epochs`` epochs, then copy it to the target network. Returns the share of
    demonstrated actions the agent's greedy choice matched in the last epoch."""
    model: Any = algorithm.policy.model  # type: ignore[attr-defined]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)

    def step(rows: torch.Tensor) -> int:
        obs, legal, act, ret = _minibatch(demos, rows)
        scores = q_scores(algorithm, config, obs)
        loss = value_loss(algorithm, config, obs, act, ret) + margin_loss(
            scores, legal, act, config.demo_margin
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        greedy = scores.detach().masked_fill(~legal, MASKED_LOGIT).argmax(dim=1)
        return int((greedy == act).sum())

    accuracy = fit_minibatches(len(demos), config, step)
    sync = getattr(algorithm, "_update_lagged_network_weights", None)
    if sync is not None:
        sync()
    return accuracy


def margin_step(algorithm: Algorithm, config: AgentConfig, demos: Demonstrations) -> float:
    """One gradient step of the margin loss on a demonstration minibatch of ``q_batch`` rows,
    through the agent's own optimiser; returns the loss."""
    rows = torch.randint(len(demos), (config.q_batch,))
    obs, legal, act, _ = _minibatch(demos, rows)
    loss = config.demo_weight * margin_loss(
        q_scores(algorithm, config, obs), legal, act, config.demo_margin
    )
    algorithm.optim.step(loss)  # type: ignore[attr-defined]
    return float(loss.detach())
