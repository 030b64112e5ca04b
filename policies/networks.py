"""Networks that score the engine's 147 discrete actions from an encoded observation.

The action table is a product of a few choices (pace mode, pit or not, fuel amount, tyres,
driver change, repair). Scoring each of the 147 entries as an unrelated output would make an
agent relearn "pit for tyres" once per pace mode and fuel option; instead every network here
scores an action as a bilinear form between a state embedding ``h(s)`` and an embedding
``phi(a)`` of the action's features, plus a per-action bias. Related actions share what they
learn while the per-action terms keep every entry distinguishable.

All modules take Tianshou's calling convention ``module(obs, state=None, info=None)`` and
accept either a plain array or a ``Batch`` with ``obs`` and ``mask`` (the legal actions): the
actor and the critic read ``obs.obs``; the actor also pushes illegal logits to a large
negative value so the categorical distribution never samples them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.actions import ACTIONS, N_ACTIONS, Fuel, Tyres
from engine.stint import stint_option_features
from world_model.interface import PaceMode

MASKED_LOGIT = -1e9
"""Logit given to illegal actions (a probability of exactly zero after the softmax)."""

PIT_PRIOR = 0.08
"""Initial probability of a voluntary stop on any lap, for the policy's starting point and
for random exploration: a uniform choice over the 147 actions would stop on 98 % of laps,
so an untrained agent would learn nothing but how bad that is."""


Q_PRIOR_SCALE = 0.1
"""Scale of the prior in the Q networks' initial action biases (returns are of order 1): a gap
of 0.63 between staying out and an untried stop. Fitting the taken actions' values moves the
shared state value and their own advantages, while the untried stops follow only the state
value, so they drift up relative to the tried actions by a fraction of the fitted change;
at 0.01 (a gap of 0.06) that drift made every stop look better than staying out within the
first generation of a six-hour race, and the agent stopped on almost every lap."""

Q_VALUE_INIT = -0.5
"""Initial state value of the Q networks (the value head's bias), in return units: the middle
of the finishing-position reward's range ``[-1, 0]``, so the first fits move values by about
half as much as from zero and leave less drift for the untried actions."""


def pit_flags() -> torch.Tensor:
    return torch.tensor([a.pit for a in ACTIONS], dtype=torch.bool)


def prior_logits() -> torch.Tensor:
    """Log-probabilities of the exploration prior: stay out w.p. ``1 - PIT_PRIOR`` (uniform
    over pace modes), else a uniform stop."""
    pit = pit_flags()
    n_pit, n_stay = int(pit.sum()), int((~pit).sum())
    return torch.where(
        pit, math.log(PIT_PRIOR / n_pit), math.log((1.0 - PIT_PRIOR) / n_stay)
    ).float()


def action_features() -> torch.Tensor:
    """One row of features per action ``[N_ACTIONS, F]``: one-hot pace, pit flag, one-hot fuel,
    one-hot tyres, driver change, repair."""
    rows = []
    for a in ACTIONS:
        pace = [float(a.pace == p) for p in PaceMode]
        fuel = [float(a.pit and a.fuel == f) for f in (Fuel.FULL, Fuel.TO_FINISH)]
        tyres = [float(a.pit and a.tyres == t) for t in Tyres]
        rows.append([*pace, float(a.pit), *fuel, *tyres, float(a.driver_change), float(a.repair)])
    return torch.tensor(rows, dtype=torch.float32)


def explore(mask: np.ndarray) -> np.ndarray:
    """Random legal actions drawn from the exploration prior (global numpy generator, as
    Tianshou's own exploration); uniform over the legal options of a stint-level mask."""
    if mask.shape[1] != N_ACTIONS:
        logp = np.zeros(mask.shape[1])
    else:
        logp = prior_logits().numpy().astype(np.float64)
    gumbel = -np.log(-np.log(np.random.rand(*mask.shape)))
    return np.where(mask, logp + gumbel, -np.inf).argmax(axis=1)


def split_obs(obs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features ``[B, D]``, legal mask ``[B, A]`` or None) from an array or a masked Batch."""
    mask = None
    if hasattr(obs, "mask"):
        mask = torch.as_tensor(np.asarray(obs.mask), dtype=torch.bool)
        obs = obs.obs
    return torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs).float(), mask


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ActionScorer(nn.Module):
    """``score[b, a] = <h[b], phi(a)> + bias[a]`` for a state embedding ``h`` of width ``width``.

    With ``prior`` the biases start at ``prior_scale`` x :func:`prior_logits` and the
    bilinear part starts small: an untrained actor (scale 1) behaves like the exploration
    prior, and an untrained Q network (a small scale, in return units) prefers staying out
    to stopping, so its greedy play starts from a sensible race rather than a stop a lap.

    With ``stint`` the actions are the stint options of :mod:`engine.stint` (no prior: every
    option is a sound stint, so the biases start at zero and the bilinear part small).
    """

    def __init__(
        self, width: int, prior: bool = False, prior_scale: float = 1.0, stint: bool = False
    ) -> None:
        super().__init__()
        features = stint_option_features() if stint else action_features()
        self.register_buffer("features", features, persistent=False)
        self.embed = nn.Sequential(
            nn.Linear(self.features.shape[1], 64), nn.ReLU(), nn.Linear(64, width)
        )
        prior = prior and not stint
        self.bias = nn.Parameter(
            prior_scale * prior_logits() if prior else torch.zeros(features.shape[0])
        )
        self.scale = (0.1 if prior or stint else 1.0) / math.sqrt(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Scores ``[..., A]`` for embeddings ``[..., width]``."""
        phi = self.embed(self.features)  # [A, width]
        return self.scale * h @ phi.T + self.bias


class QNet(nn.Module):
    """Action values ``[B, A]`` (dueling: a state value plus action scores); the state value
    starts at ``value_init`` (see :data:`Q_VALUE_INIT`)."""

    def __init__(
        self,
        obs_dim: int,
        hidden: int = 128,
        value_init: float = Q_VALUE_INIT,
        stint: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = mlp([obs_dim, hidden, hidden])
        self.value = _value_head(hidden, value_init)
        self.scorer = ActionScorer(hidden, prior=True, prior_scale=Q_PRIOR_SCALE, stint=stint)

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        x, _ = split_obs(obs)
        h = self.trunk(x)
        adv = self.scorer(h)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True), state


def _value_head(hidden: int, value_init: float) -> nn.Linear:
    head = nn.Linear(hidden, 1)
    with torch.no_grad():
        head.bias.fill_(value_init)
    return head


class MaskedActor(nn.Module):
    """Logits ``[B, A]`` of a categorical policy; illegal actions get :data:`MASKED_LOGIT`."""

    def __init__(self, obs_dim: int, hidden: int = 128, stint: bool = False) -> None:
        super().__init__()
        self.trunk = mlp([obs_dim, hidden, hidden])
        self.scorer = ActionScorer(hidden, prior=True, stint=stint)

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        x, mask = split_obs(obs)
        logits = self.scorer(self.trunk(x))
        if mask is not None:
            logits = logits.masked_fill(~mask, MASKED_LOGIT)
        return logits, state


class Critic(nn.Module):
    """State value ``[B, 1]`` for PPO."""

    def __init__(self, obs_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(mlp([obs_dim, hidden, hidden]), nn.Linear(hidden, 1))

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> torch.Tensor:
        x, _ = split_obs(obs)
        return self.net(x)


class QuantileNet(nn.Module):
    """Implicit quantile network (Dabney et al. 2018): return quantiles ``[B, A, T]`` at
    fractions ``taus`` ``[B, T]``.

    ``forward`` draws ``taus`` uniformly in ``(0, alpha)`` when none are given, so the same
    module serves the risk-neutral loss (``alpha = 1``) and CVaR action selection. Draws use
    the global torch generator, as Tianshou's own networks do; the training entry point
    seeds it and the checkpoints save its state.
    """

    def __init__(
        self,
        obs_dim: int,
        hidden: int = 128,
        n_cos: int = 64,
        value_init: float = Q_VALUE_INIT,
        stint: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = mlp([obs_dim, hidden, hidden])
        self.register_buffer("cos_k", torch.arange(1, n_cos + 1, dtype=torch.float32) * math.pi)
        self.tau_embed = nn.Sequential(nn.Linear(n_cos, hidden), nn.ReLU())
        self.mix = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.value = _value_head(hidden, value_init)
        self.scorer = ActionScorer(hidden, prior=True, prior_scale=Q_PRIOR_SCALE, stint=stint)

    def quantiles(self, x: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)  # [B, H]
        emb = self.tau_embed(torch.cos(taus.unsqueeze(-1) * self.cos_k))  # [B, T, H]
        z = self.mix(h.unsqueeze(1) * emb)  # [B, T, H]
        adv = self.scorer(z)  # [B, T, A]
        q = self.value(z) + adv - adv.mean(dim=2, keepdim=True)
        return q.transpose(1, 2)  # [B, A, T]

    def forward(
        self,
        obs: Any,
        sample_size: int = 32,
        alpha: float = 1.0,
        taus: torch.Tensor | None = None,
        state: Any = None,
        info: Any = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], Any]:
        x, _ = split_obs(obs)
        if taus is None:
            taus = alpha * torch.rand(x.shape[0], sample_size)
        return (self.quantiles(x, taus), taus), state
