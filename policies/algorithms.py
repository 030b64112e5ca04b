"""The Tianshou 2 algorithms (PPO, DQN, IQN acting on CVaR) the agents train with, and the
action scores they act on.

:func:`build_algorithm` makes the Tianshou algorithm for an :class:`AgentConfig`;
:func:`greedy_scores` gives the deterministic scores an agent acts on
(:class:`policies.agents.AgentStrategy`); :mod:`policies.checkpoint` saves and loads both.

Risk: the IQN agent picks the action with the best CVaR at level ``alpha`` of its return
distribution, the mean of the quantiles at fractions in ``(0, alpha)``. Tianshou's
``IQNPolicy`` draws fractions uniformly and takes the plain mean, so :class:`CVaRIQNPolicy`
overrides its action choice: the acting action and the bootstrap target's action are both
chosen on evenly spaced fractions in ``(0, alpha)`` (a fixed quadrature: with a few random
draws, the maximum over 144 stop actions of noisy estimates favoured stopping), while the
quantile regression loss keeps its uniform draws so the whole distribution is still
learned (Dabney et al. 2018, sec. 3.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm import DQN, IQN, PPO, Algorithm
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.modelfree.iqn import IQNPolicy
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, to_numpy

from engine.actions import N_ACTIONS
from engine.stint import N_STINT_OPTIONS
from policies.networks import Critic, MaskedActor, QNet, QuantileNet, explore


class Algo(StrEnum):
    """The learning algorithm of an agent."""

    PPO = "ppo"
    """Proximal policy optimisation (on-policy, a masked softmax actor)."""
    DQN = "dqn"
    """Double DQN (off-policy Q values)."""
    IQN = "iqn"
    """Implicit quantile network acting on the CVaR of its return distribution."""


ALGOS = tuple(a.value for a in Algo)

DECISIONS = ("lap", "stint")
"""Levels an agent decides at: every line crossing (the 147-action table of
:mod:`engine.actions`) or every stint (the options of :mod:`engine.stint`)."""

STINT_DEFAULTS: dict[str, float | int] = {
    "gamma": 1.0,
    "n_step": 1,
    "eps_decay_steps": 8_000,
    "updates_per_step": 0.5,
    "target_update_freq": 100,
}
"""Settings of a stint-level agent where they differ from the lap level: a race is about
seven stints, so no discount (the stint reward sums the lap rewards, which telescopes the
shaping only at ``gamma = 1``), one-step targets (a stint's own spread, not the rest of the
race's), exploration that decays over about nine generations of 128 races, and more
gradient steps per decision (there are 25 times fewer decisions)."""


@dataclass(frozen=True)
class AgentConfig:
    """Hyper-parameters of one agent; saved inside its checkpoint."""

    algo: Algo = Algo.PPO
    """The learning algorithm (its name is accepted and turned into the member)."""
    decision: str = "lap"
    """Where the agent decides: ``lap`` (every line crossing) or ``stint`` (every stop; see
    :mod:`engine.stint`, and :data:`STINT_DEFAULTS` for its settings)."""
    obs_dim: int = 0
    """Width of the encoded observation (set from the env)."""
    hidden: int = 128
    """Width of the hidden layers."""
    lr: float = 1e-3
    """Adam learning rate."""
    gamma: float = 0.999
    """Discount per decision (one lap)."""
    cvar_alpha: float = 1.0
    """CVaR level the IQN agent acts on (1 = risk-neutral mean)."""
    # PPO
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    eps_clip: float = 0.2
    ppo_epochs: int = 6
    """Passes over each collected batch."""
    minibatch: int = 512
    """Transitions per PPO gradient step."""
    q_batch: int = 128
    """Transitions per sampled batch of DQN and IQN."""
    bc_epochs: int = 12
    """Epochs of behaviour cloning on the teacher's races (PPO)."""
    # DQN / IQN
    n_step: int = 5
    target_update_freq: int = 200
    eps_start: float = 0.3
    eps_end: float = 0.02
    eps_decay_steps: int = 100_000
    """Env steps over which exploration decays linearly from start to end."""
    buffer_size: int = 50_000
    updates_per_step: float = 0.05
    """Gradient steps per collected transition (off-policy)."""
    num_quantiles: int = 16
    """Quantile fractions drawn per state in the IQN loss."""
    demo_margin: float = 0.05
    """DQN / IQN: how far below the teacher's action every other action's score is pushed on
    the teacher's races (return units; one class position of 18 is 1/17)."""
    demo_weight: float = 1.0
    """DQN / IQN: weight of the margin step on the teacher's races after each update."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        object.__setattr__(self, "algo", Algo(self.algo))
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        if not 0.0 < self.cvar_alpha <= 1.0:
            raise ValueError(f"cvar_alpha must be in (0, 1], got {self.cvar_alpha}")
        if self.demo_margin < 0.0:
            raise ValueError(f"demo_margin must be >= 0, got {self.demo_margin}")
        if self.cvar_alpha < 1.0 and self.algo != Algo.IQN:
            raise ValueError("a CVaR level below 1 needs the distributional agent (algo 'iqn')")

    @property
    def on_policy(self) -> bool:
        return self.algo == Algo.PPO

    @property
    def stint(self) -> bool:
        return self.decision == "stint"

    @property
    def n_actions(self) -> int:
        return N_STINT_OPTIONS if self.stint else N_ACTIONS

    @classmethod
    def for_decision(cls, decision: str, **kwargs: Any) -> AgentConfig:
        """A config for ``decision`` with its level's defaults (:data:`STINT_DEFAULTS` for
        stints), overridden by ``kwargs``."""
        base = dict(STINT_DEFAULTS) if decision == "stint" else {}
        return cls(decision=decision, **{**base, **kwargs})


class PriorExploration:
    """Epsilon-greedy whose random actions follow the exploration prior
    (:func:`policies.networks.explore`) instead of a uniform draw over 147 actions."""

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        eps = self.eps_training if self.is_within_training_step else self.eps_inference  # type: ignore[attr-defined]
        if np.isclose(eps, 0.0):
            return act
        act = np.asarray(act).copy()
        rand = np.random.rand(act.shape[0]) < eps
        act[rand] = explore(np.asarray(batch.obs.mask, dtype=bool))[rand]
        return act


class PriorDQNPolicy(PriorExploration, DiscreteQLearningPolicy):
    """DQN policy with prior-guided exploration."""


def cvar_fractions(alpha: float, n: int, rows: int) -> torch.Tensor:
    """``n`` evenly spaced fractions in ``(0, alpha)`` (midpoints), ``[rows, n]``: a fixed
    quadrature of the CVaR, so the action choice carries no sampling noise."""
    taus = alpha * (torch.arange(n, dtype=torch.float32) + 0.5) / n
    return taus.expand(rows, n)


class CVaRIQNPolicy(PriorExploration, IQNPolicy):
    """IQN policy whose greedy action maximises CVaR at ``alpha`` (see the module docstring)."""

    def __init__(self, *, alpha: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(  # type: ignore[override]
        self,
        batch: Any,
        state: Any = None,
        model: torch.nn.Module | None = None,
        **kwargs: Any,
    ) -> Any:
        is_target = model is not None
        if is_target:
            sample_size = self.target_sample_size
        elif self.training:
            sample_size = self.online_sample_size
        else:
            sample_size = self.sample_size
        model = model or self.model
        obs = batch.obs
        x = obs.obs if hasattr(obs, "obs") else obs
        (logits, taus), hidden = model(x, sample_size=sample_size, state=state, info=batch.info)
        risk = logits
        if not is_target:
            # The target network's own action is never used (the online net picks it).
            fixed = cvar_fractions(self.alpha, self.sample_size, logits.shape[0])
            (risk, _), _ = model(x, taus=fixed)
        q = self.compute_q_value(risk, getattr(obs, "mask", None))
        act = to_numpy(q.max(dim=1)[1])
        return Batch(logits=logits, act=act, state=hidden, taus=taus)


def _spaces(obs_dim: int, n_actions: int) -> tuple[gym.Space, gym.Space]:
    obs_space = gym.spaces.Dict(
        {
            "obs": gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
            "mask": gym.spaces.MultiBinary(n_actions),
        }
    )
    return obs_space, gym.spaces.Discrete(n_actions)


def _build_ppo(config: AgentConfig, obs_space: gym.Space, act_space: gym.Space) -> Algorithm:
    actor = MaskedActor(config.obs_dim, config.hidden, stint=config.stint)
    policy = DiscreteActorPolicy(
        actor=actor,
        action_space=act_space,
        observation_space=obs_space,
        deterministic_eval=True,
    )
    return PPO(
        policy=policy,
        critic=Critic(config.obs_dim, config.hidden),
        optim=AdamOptimizerFactory(lr=config.lr),
        eps_clip=config.eps_clip,
        ent_coef=config.ent_coef,
        gae_lambda=config.gae_lambda,
        gamma=config.gamma,
        max_grad_norm=0.5,
        max_batchsize=4096,
    )


def _build_dqn(config: AgentConfig, obs_space: gym.Space, act_space: gym.Space) -> Algorithm:
    qpolicy = PriorDQNPolicy(
        model=QNet(config.obs_dim, config.hidden, stint=config.stint),
        action_space=act_space,
        observation_space=obs_space,
        eps_training=config.eps_start,
    )
    return DQN(
        policy=qpolicy,
        optim=AdamOptimizerFactory(lr=config.lr),
        gamma=config.gamma,
        n_step_return_horizon=config.n_step,
        target_update_freq=config.target_update_freq,
        is_double=True,
    )


def _build_iqn(config: AgentConfig, obs_space: gym.Space, act_space: gym.Space) -> Algorithm:
    ipolicy = CVaRIQNPolicy(
        alpha=config.cvar_alpha,
        model=QuantileNet(config.obs_dim, config.hidden, stint=config.stint),
        action_space=act_space,
        observation_space=obs_space,
        sample_size=config.num_quantiles,
        online_sample_size=config.num_quantiles,
        target_sample_size=config.num_quantiles,
        eps_training=config.eps_start,
    )
    return IQN(
        policy=ipolicy,
        optim=AdamOptimizerFactory(lr=config.lr),
        gamma=config.gamma,
        num_quantiles=config.num_quantiles,
        n_step_return_horizon=config.n_step,
        target_update_freq=config.target_update_freq,
    )


_BUILDERS: dict[Algo, Callable[[AgentConfig, gym.Space, gym.Space], Algorithm]] = {
    Algo.PPO: _build_ppo,
    Algo.DQN: _build_dqn,
    Algo.IQN: _build_iqn,
}


def build_algorithm(config: AgentConfig) -> Algorithm:
    """The Tianshou algorithm (with its policy and networks) for ``config``."""
    obs_space, act_space = _spaces(config.obs_dim, config.n_actions)
    return _BUILDERS[config.algo](config, obs_space, act_space)


def q_scores(algorithm: Algorithm, config: AgentConfig, x: torch.Tensor) -> torch.Tensor:
    """The scores ``[B, A]`` a Q-learning agent acts on, with gradients: Q values (DQN) or the
    CVaR at ``config.cvar_alpha`` (IQN) on the same ``config.num_quantiles`` evenly spaced
    fractions in ``(0, alpha)`` :class:`CVaRIQNPolicy` acts on in training. A finer quadrature
    would reach fractions nearer 0 and 1, where the quantile network extrapolates: for a
    risk-neutral agent, 64 fractions let the untried stops' extreme quantiles outvote the
    plan (a six-hour agent that stopped 4 times a race in training stopped 97 times)."""
    model: Any = algorithm.policy.model  # type: ignore[attr-defined]
    if config.algo == Algo.DQN:
        return model(x)[0]
    taus = cvar_fractions(config.cvar_alpha, config.num_quantiles, x.shape[0])
    return model.quantiles(x, taus).mean(dim=2)


def greedy_scores(algorithm: Algorithm, config: AgentConfig, x: torch.Tensor) -> torch.Tensor:
    """Deterministic action scores ``[B, A]``: policy logits (PPO), else :func:`q_scores`."""
    with torch.no_grad():
        if config.algo == Algo.PPO:
            return algorithm.policy.actor(x)[0]  # type: ignore[attr-defined]
        return q_scores(algorithm, config, x)
