"""The training loop: collect decisions from :class:`engine.vec_env.RaceVecEnv` into a Tianshou
replay buffer and update a Tianshou algorithm from it.

Tianshou's own ``Collector`` steps a list of independent environments and resets each as it
finishes; the race env is instead one batched simulation of ``R`` replicas that start and end
together, so this loop plays the collector's part: it asks the policy for the waiting
replicas' actions (with the algorithm's exploration), adds the completed transitions to a
``VectorReplayBuffer`` with one sub-buffer per replica, and calls ``algorithm.update`` —
after every generation of races for PPO, every step at ``updates_per_step`` for DQN / IQN.

Checkpoints are taken at generation boundaries and hold everything the run depends on
(:mod:`policies.checkpoint`), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tianshou.algorithm import Algorithm
from tianshou.data import Batch, VectorReplayBuffer
from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode

from engine.strategy import Strategy
from engine.vec_env import Decision, RaceVecEnv, Transitions, generation_seed
from policies.algorithms import AgentConfig
from policies.checkpoint import Checkpoint, TrainState, capture_rng, save_checkpoint
from policies.demonstrations import (
    Demonstrations,
    fit_minibatches,
    from_buffer,
    margin_step,
    pretrain,
)


@dataclass(frozen=True)
class Budget:
    """When training stops: whichever limit is reached first, checked between generations."""

    env_steps: int | None = None
    """Decisions collected."""
    seconds: float | None = None
    """Training wall time [s]."""

    def exhausted(self, state: TrainState) -> bool:
        if self.env_steps is not None and state.env_steps >= self.env_steps:
            return True
        return self.seconds is not None and state.wall_s >= self.seconds


def masked_batch(obs: np.ndarray, mask: np.ndarray) -> Batch:
    return Batch(obs=Batch(obs=obs, mask=mask), info=Batch())


def _transition_batch(t: Transitions) -> Batch:
    return Batch(
        obs=Batch(obs=t.obs, mask=t.mask),
        act=t.act,
        rew=t.rew.astype(np.float32),
        terminated=t.terminated,
        truncated=np.zeros(len(t), bool),
        obs_next=Batch(obs=t.obs_next, mask=t.mask_next),
        info=Batch(),
    )


def epsilon(config: AgentConfig, env_steps: int) -> float:
    """Linearly decaying exploration of the Q-learning agents."""
    frac = min(1.0, env_steps / max(config.eps_decay_steps, 1))
    return config.eps_start + frac * (config.eps_end - config.eps_start)


def act(algorithm: Algorithm, config: AgentConfig, dec: Decision, env_steps: int) -> np.ndarray:
    """Exploring actions for the waiting replicas (samples for PPO, epsilon-greedy for DQN/IQN)."""
    policy: Any = algorithm.policy
    batch = masked_batch(dec.obs, dec.mask)
    with torch.no_grad(), policy_within_training_step(policy), torch_train_mode(policy, False):
        if config.on_policy:
            return np.asarray(policy(batch).act, dtype=np.int64)
        policy.set_eps_training(epsilon(config, env_steps))
        acts = np.asarray(policy(batch).act, dtype=np.int64)
        return np.asarray(policy.add_exploration_noise(acts, batch), dtype=np.int64)


def teacher_actions(teacher: Strategy, dec: Decision, generator: torch.Generator) -> np.ndarray:
    """The teacher strategy's decisions for the waiting replicas."""
    legal = torch.as_tensor(dec.mask)
    return teacher.decide(dec.raw, legal, generator).numpy().astype(np.int64)


def behaviour_clone(algorithm: Algorithm, config: AgentConfig, buffer: VectorReplayBuffer) -> float:
    """Fit PPO's actor to the teacher's actions (cross-entropy over the legal actions) and its
    critic to the teacher's discounted returns; returns the actor's accuracy in the last
    epoch. The actor is trained until it rarely samples anything else: a policy that
    deviates on 4 % of 170 laps makes seven random calls a race.

    The teacher's races start the agent at the teacher's level, so reinforcement learning
    spends its budget improving on a sound plan rather than discovering that stopping on
    every lap loses races (imitation then RL, as in DQfD or AlphaStar).
    """
    demos = from_buffer(algorithm, config, buffer)
    policy: Any = algorithm.policy
    actor, critic = policy.actor, algorithm.critic  # type: ignore[attr-defined]
    act_t = torch.from_numpy(demos.act)
    ret = torch.from_numpy(demos.returns)
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)

    def step(rows: torch.Tensor) -> int:
        r = rows.numpy()
        logits, _ = actor(Batch(obs=demos.obs[r], mask=demos.mask[r]))
        ce = torch.nn.functional.cross_entropy(logits, act_t[rows])
        value = critic(demos.obs[r]).flatten()
        loss = ce + 0.5 * (value - ret[rows]).square().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        return int((logits.argmax(dim=1) == act_t[rows]).sum())

    return fit_minibatches(len(demos), config, step)


def make_buffer(
    config: AgentConfig, env: RaceVecEnv, max_decisions: int, generations: int = 1
) -> VectorReplayBuffer:
    """One sub-buffer per replica: ``generations`` whole generations for PPO (the teacher's
    races are cloned together), ``buffer_size`` in all otherwise."""
    if config.on_policy:
        size = env.replicas * max_decisions * max(generations, 1)
    else:
        size = max(config.buffer_size, env.replicas * max_decisions)
    return VectorReplayBuffer(size, env.replicas)


def max_decisions(env: RaceVecEnv) -> int:
    """Upper bound on one replica's decisions in a race (every lap under a safety car)."""
    s = env.scenario
    entry = s.entries[s.entry_index(env.car)]
    if s.race.laps is not None:
        return int(s.race.laps) + 8
    return int(1.2 * env.encoder.race_s / entry.ref_lap_time_s) + 8


def _generation_update(
    algorithm: Algorithm,
    config: AgentConfig,
    buffer: VectorReplayBuffer,
    state: TrainState,
    taught: bool,
    teacher_generations: int,
    demos: Demonstrations | None,
    losses: list[float],
) -> Demonstrations | None:
    """The learning at the end of a generation (appending its losses to ``losses``): PPO
    updates on its races or, after the last taught generation, clones the teacher; the
    Q-learning agents turn the teacher's races into demonstrations and pretrain on them.
    The demonstration set from then on."""
    policy: Any = algorithm.policy
    if config.on_policy and taught and state.generation + 1 < teacher_generations:
        pass  # keep collecting the teacher's races; clone once all are in
    elif config.on_policy and taught:
        accuracy = behaviour_clone(algorithm, config, buffer)
        losses.append(1.0 - accuracy)
        buffer.reset()
    elif taught and state.generation + 1 == teacher_generations:
        demos = from_buffer(algorithm, config, buffer)
        with policy_within_training_step(policy):
            accuracy = pretrain(algorithm, config, demos)
        losses.append(1.0 - accuracy)
    elif config.on_policy:
        with policy_within_training_step(policy):
            stats = algorithm.update(buffer, batch_size=config.minibatch, repeat=config.ppo_epochs)
        losses.append(float(stats.get_loss_stats_dict().get("loss", np.nan)))
        state.gradient_steps += int(getattr(stats, "gradient_steps", 0))
        buffer.reset()
    return demos


def train(
    env: RaceVecEnv,
    algorithm: Algorithm,
    config: AgentConfig,
    *,
    seed: int,
    budget: Budget,
    state: TrainState | None = None,
    buffer: VectorReplayBuffer | None = None,
    checkpoint_path: Path | None = None,
    scenario_label: str = "",
    on_generation: Callable[[TrainState, dict[str, float]], None] | None = None,
    teacher: Strategy | None = None,
    teacher_generations: int = 0,
    demos: Demonstrations | None = None,
) -> tuple[TrainState, VectorReplayBuffer]:
    """Train until ``budget`` is spent; checkpoint after every generation when a path is given.

    ``state`` and ``buffer`` continue a run restored from a checkpoint (restore its RNG
    states first). ``on_generation`` receives the counters and that generation's figures
    (for progress bars and TensorBoard). The first ``teacher_generations`` generations are
    driven by ``teacher``: PPO is then fitted to them by :func:`behaviour_clone`; the
    Q-learning agents keep them in their replay buffer and as a demonstration set
    (:mod:`policies.demonstrations`: pretraining, then a margin step after every update).
    ``demos`` is that set when resuming a run (the checkpoint stores it).
    """
    state = state or TrainState()
    buffer = buffer or make_buffer(config, env, max_decisions(env), teacher_generations)
    policy: Any = algorithm.policy
    while not budget.exhausted(state):
        started = time.perf_counter()
        env.episodes_finished = []
        dec: Decision | None = env.reset(generation_seed(seed, state.generation))
        losses: list[float] = []
        transitions = 0
        illegal = 0
        taught = teacher is not None and state.generation < teacher_generations
        gen_rng = torch.Generator().manual_seed(generation_seed(seed, state.generation))
        while dec is not None:
            if taught:
                assert teacher is not None
                acts = teacher_actions(teacher, dec, gen_rng)
            else:
                acts = act(algorithm, config, dec, state.env_steps)
            trans, dec = env.step(acts)
            if len(trans):
                buffer.add(_transition_batch(trans), buffer_ids=trans.ids)
            transitions += len(trans)
            state.env_steps += len(acts)
            illegal += int(trans.illegal.sum())
            if not config.on_policy and len(buffer) >= config.q_batch:
                state.update_credit += config.updates_per_step * len(acts)
                with policy_within_training_step(policy):
                    while state.update_credit >= 1.0:
                        stats = algorithm.update(buffer, sample_size=config.q_batch)
                        losses.append(float(stats.get_loss_stats_dict().get("loss", np.nan)))
                        if demos is not None:
                            margin_step(algorithm, config, demos)
                        state.gradient_steps += 1
                        state.update_credit -= 1.0
        demos = _generation_update(
            algorithm, config, buffer, state, taught, teacher_generations, demos, losses
        )
        finished = np.asarray(env.episodes_finished, dtype=np.float64)
        state.episodes += int(finished.shape[0])
        state.generation += 1
        state.wall_s += time.perf_counter() - started
        figures = {
            "env_steps": float(state.env_steps),
            "outcome_mean": float(finished.mean()) if finished.size else float("nan"),
            "loss": float(np.nanmean(losses)) if losses else float("nan"),
            "illegal_frac": illegal / max(transitions, 1),
            "wall_s": state.wall_s,
        }
        state.history.append(figures)
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                Checkpoint(
                    algorithm=algorithm,
                    config=config,
                    encoder=env.encoder,
                    reward=env.reward,
                    scenario=scenario_label or env.scenario.name,
                    car=env.car,
                    seed=seed,
                    state=state,
                    buffer=None if config.on_policy else buffer,
                    demos=None if demos is None else demos.to_dict(),
                    rng=capture_rng(),
                    target_iter=int(getattr(algorithm, "_iter", 0)),
                ),
            )
        if on_generation is not None:
            on_generation(state, figures)
    return state, buffer
