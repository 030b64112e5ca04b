"""Trained agents as engine strategies.

:class:`AgentStrategy` wraps a trained network (:mod:`policies.algorithms`) as an
``engine.strategy.Strategy`` that acts on the legal actions as it was trained to: a PPO agent
samples its policy (with the strategy's generator, so a seed reproduces it), a DQN or IQN agent
takes its best action;
:func:`load` reads a checkpoint into one, so ``"policies.agents:load:runs/x/agent.pt"`` is a
strategy spec the engine resolves by name. The algorithm names are re-exported here for the
callers that import them from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tianshou.algorithm import Algorithm

from engine.stint import StintAgentStrategy
from engine.strategy import Observation
from policies.algorithms import (
    ALGOS,
    AgentConfig,
    Algo,
    CVaRIQNPolicy,
    build_algorithm,
    cvar_fractions,
    greedy_scores,
    q_scores,
)
from policies.checkpoint import load_checkpoint
from policies.networks import MASKED_LOGIT

__all__ = [
    "ALGOS",
    "AgentConfig",
    "AgentStrategy",
    "CVaRIQNPolicy",
    "build_algorithm",
    "cvar_fractions",
    "greedy_actions",
    "greedy_scores",
    "load",
    "q_scores",
]


def greedy_actions(scores: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """The best legal action of each row (int64 ``[B]``)."""
    return scores.masked_fill(~legal, MASKED_LOGIT).argmax(dim=1)


def sampled_actions(
    logits: torch.Tensor, legal: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A legal action of each row drawn from the softmax of ``logits`` (int64 ``[B]``)."""
    p = torch.softmax(logits.double().masked_fill(~legal, MASKED_LOGIT), dim=1)
    return torch.multinomial(p, 1, generator=generator).squeeze(1)


class AgentStrategy:
    """A trained agent as an ``engine.strategy.Strategy``: encode, score, pick a legal action.

    A PPO agent draws from its policy, as it acted in training: its greedy mode is another
    policy, and a per-lap policy whose stops are each lap's less likely action never stops
    in that mode until the rules force it (the default six-hour agent, greedy: 11.45 mean
    class position, out of fuel in 57 % of 128 races; sampled: 2.74 and 1.6 %). A DQN or IQN
    agent takes its best action (its policy is the greedy one). A stint-level agent
    (``config.decision == "stint"``) picks a stint option at each stop the same way and the
    stint rule of :mod:`engine.stint` drives the laps between."""

    def __init__(
        self, algorithm: Algorithm, config: AgentConfig, encoder: Any, name: str | None = None
    ) -> None:
        self.algorithm = algorithm
        self.config = config
        self.encoder = encoder
        """An ``engine.env.ObservationEncoder`` (observation -> feature rows)."""
        self.name = name or (
            f"{config.algo}"
            + ("-stint" if config.stint else "")
            + (f"-cvar{config.cvar_alpha:g}" if config.cvar_alpha < 1 else "")
        )
        self.algorithm.eval()
        self.samples = config.algo == Algo.PPO
        """Draw from the policy (PPO) rather than take its best action."""
        pick = self._pick if self.samples else None
        self._stint = (
            StintAgentStrategy(self.name, encoder.encode, self._scores, pick)
            if config.stint
            else None
        )

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        return greedy_scores(self.algorithm, self.config, x)

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        if self._stint is not None:
            return self._stint.decide(obs, legal, generator)
        scores = greedy_scores(self.algorithm, self.config, self.encoder.encode(obs))
        return self._pick(scores, legal, generator)

    def _pick(
        self, scores: torch.Tensor, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        if self.samples:
            return sampled_actions(scores, legal, generator)
        return greedy_actions(scores, legal)


def load(path: str | Path, name: str | None = None) -> AgentStrategy:
    """The agent saved in the checkpoint at ``path`` as a strategy (the engine's
    ``"policies.agents:load:PATH"`` spec)."""
    ckpt = load_checkpoint(Path(path))
    return AgentStrategy(ckpt.algorithm, ckpt.config, ckpt.encoder, name=name)
