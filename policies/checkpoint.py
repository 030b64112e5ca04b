"""Checkpoints that resume training exactly: networks, optimisers, replay buffer, counters
and every random-number state the run draws from.

A checkpoint is written at a generation boundary (no race is in progress), so the
environment's state is fully described by the run seed and the generation counter. Files are
written atomically: to a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import Algorithm
from tianshou.data import ReplayBuffer

from data.tempfiles import make_temp_file, remove_stale_temp_files
from engine.vec_env import ObservationEncoder, RewardSpec
from policies.algorithms import AgentConfig, build_algorithm

FORMAT = 1


@dataclass
class TrainState:
    """Counters of a training run."""

    env_steps: int = 0
    """Decisions collected."""
    gradient_steps: int = 0
    generation: int = 0
    """Generations of races completed (the next one uses ``generation_seed(seed, this)``)."""
    episodes: int = 0
    update_credit: float = 0.0
    """Fractional off-policy updates owed (``updates_per_step`` x steps, not yet done)."""
    wall_s: float = 0.0
    """Training time so far [s]."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per generation: env steps and mean finishing class position (or race time)."""


@dataclass
class Checkpoint:
    algorithm: Algorithm
    config: AgentConfig
    encoder: ObservationEncoder
    reward: RewardSpec
    scenario: str
    """Scenario name or path the agent was trained on."""
    car: str
    seed: int
    state: TrainState
    buffer: ReplayBuffer | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    """Global torch and numpy generator states (Tianshou samples from them)."""
    target_iter: int = 0
    """Iteration counter of the Q-learning target-network schedule."""
    demos: dict[str, np.ndarray] | None = None
    """The Q-learning agents' demonstration set (``policies.demonstrations``), if any."""


def capture_rng() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def restore_rng(rng: dict[str, Any]) -> None:
    """Put the global generators back where a checkpoint left them (not a seeding: the
    state comes from a run that the entry point seeded)."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        np.random.set_state(rng["numpy"])


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "algorithm": ckpt.algorithm.state_dict(),
        "config": {**asdict(ckpt.config), "algo": str(ckpt.config.algo)},
        "encoder": ckpt.encoder.to_dict(),
        "reward": {**asdict(ckpt.reward), "objective": str(ckpt.reward.objective)},
        "scenario": ckpt.scenario,
        "car": ckpt.car,
        "seed": ckpt.seed,
        "state": asdict(ckpt.state),
        "buffer": ckpt.buffer,
        "rng": ckpt.rng,
        "target_iter": ckpt.target_iter,
        "demos": ckpt.demos,
    }
    remove_stale_temp_files(path)  # left by a run killed while writing
    tmp = make_temp_file(path)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    if not path.is_file():
        raise FileNotFoundError(f"agent checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable agent checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: expected an agent checkpoint of format {FORMAT}")
    config = AgentConfig(**payload["config"])
    algorithm = build_algorithm(config)
    algorithm.load_state_dict(payload["algorithm"])
    return Checkpoint(
        algorithm=algorithm,
        config=config,
        encoder=ObservationEncoder(**payload["encoder"]),
        reward=RewardSpec(**payload["reward"]),
        scenario=payload["scenario"],
        car=payload["car"],
        seed=payload["seed"],
        state=TrainState(**payload["state"]),
        buffer=payload["buffer"],
        rng=payload["rng"],
        target_iter=payload["target_iter"],
        demos=payload.get("demos"),
    )
