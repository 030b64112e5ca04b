"""The batched race env split over worker processes, one chunk of replicas each.

:class:`ShardedRaceVecEnv` behaves as :class:`engine.vec_env.RaceVecEnv` over ``replicas``
races (same ``reset`` / ``step`` protocol, replica ids ``0 .. replicas - 1``), but each of its
``shards`` worker processes owns a contiguous chunk of the replicas and simulates it as chunk
``i`` of the run (:func:`engine.race.simulate`'s chunking: the chunk's own random streams and
replica numbers). A ``step`` sends every worker the actions of its replicas and all workers
run to their next decisions at once, so the engine, ~98 % of an env step, uses every core.

The chunks share nothing but the seed: with one shard the env equals ``RaceVecEnv``; with
``k`` shards it equals the races ``simulate`` runs with ``chunk_replicas = replicas / k``.
A generation ends when every chunk's races are over; a chunk that finishes first returns its
last transitions and waits.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import traceback
from dataclasses import fields
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from engine.scenario import Scenario
from engine.strategy import Observation
from engine.vec_env import (
    Decision,
    RaceVecEnv,
    RewardSpec,
    Transitions,
    controlled_car_setup,
)


def _worker(conn: Connection, kwargs: dict[str, Any]) -> None:
    """Serve one chunk's RaceVecEnv: ("reset", seed), ("step", actions), ("close", None)."""
    torch.set_num_threads(1)
    env = RaceVecEnv(**kwargs)
    while True:
        cmd, arg = conn.recv()
        try:
            if cmd == "reset":
                env.episodes_finished = []
                reply: Any = env.reset(int(arg))
            elif cmd == "step":
                reply = env.step(arg)
            else:
                conn.close()
                return
            conn.send(("ok", reply, env.episodes_finished))
            env.episodes_finished = []
        except Exception:  # the parent re-raises it with the worker's traceback
            conn.send(("error", traceback.format_exc(), []))


def _concat_obs(parts: list[Observation]) -> Observation:
    return Observation(
        **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Observation)}
    )


class ShardedRaceVecEnv:
    """``RaceVecEnv`` over ``replicas`` races in ``shards`` worker processes (see the module
    docstring). Close it (or use it as a context manager) to stop the workers."""

    def __init__(
        self,
        scenario: Scenario,
        replicas: int,
        shards: int = 2,
        *,
        car: str | None = None,
        reward: RewardSpec | None = None,
    ) -> None:
        if shards < 1 or shards > replicas:
            raise ValueError(f"shards must be between 1 and replicas ({replicas}), got {shards}")
        self.scenario, self.car, self.reward, self.encoder = controlled_car_setup(
            scenario, car, reward
        )
        self.replicas = replicas
        self.episodes_finished: list[float] = []
        size = -(-replicas // shards)  # chunk size, as simulate(chunk_replicas=size)
        self.offsets = list(range(0, replicas, size))
        sizes = [min(size, replicas - o) for o in self.offsets]
        # fork shares the loaded models' memory with the workers; elsewhere spawn.
        ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for i, (offset, n) in enumerate(zip(self.offsets, sizes, strict=True)):
            parent, child = ctx.Pipe()
            kwargs = dict(
                scenario=scenario,
                replicas=n,
                car=self.car,
                reward=self.reward,
                chunk=i,
                first_replica=offset,
            )
            proc = ctx.Process(target=_worker, args=(child, kwargs), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._live: list[int] = []
        self._rows: list[tuple[int, int]] = []
        """Rows of the current decision that belong to each live shard (start, end)."""

    # -- protocol -------------------------------------------------------------------------

    def reset(self, seed: int) -> Decision:
        for conn in self._conns:
            conn.send(("reset", seed))
        decisions = [self._receive(i) for i in range(len(self._conns))]
        self._live = list(range(len(self._conns)))
        return self._combine(decisions)

    def step(self, actions: np.ndarray) -> tuple[Transitions, Decision | None]:
        actions = np.asarray(actions).reshape(-1)
        if not self._live:
            raise RuntimeError("step() before reset() or after the generation ended")
        if actions.shape[0] != self._rows[-1][1]:
            raise ValueError(
                f"step() needs one action per waiting replica ({self._rows[-1][1]}), "
                f"got {actions.shape[0]}"
            )
        for i, (a, b) in zip(self._live, self._rows, strict=True):
            self._conns[i].send(("step", actions[a:b]))
        parts, nxt, live = [], [], []
        for i in self._live:
            trans, dec = self._receive(i)
            trans.ids = trans.ids + self.offsets[i]
            parts.append(trans)
            if dec is not None:
                nxt.append(dec)
                live.append(i)
        self._live = live
        transitions = Transitions.concat(parts)
        if not live:
            self._rows = []
            return transitions, None
        return transitions, self._combine(nxt)

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs, strict=True):
            if proc.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send(("close", None))
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._conns, self._procs = [], []

    def __enter__(self) -> ShardedRaceVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_procs", None):
            self.close()

    # -- helpers --------------------------------------------------------------------------

    def _receive(self, shard: int) -> Any:
        status, reply, finished = self._conns[shard].recv()
        if status != "ok":
            raise RuntimeError(f"env worker {shard} failed:\n{reply}")
        self.episodes_finished.extend(finished)
        return reply

    def _combine(self, decisions: list[Decision]) -> Decision:
        """One decision over the live shards' decisions (in shard order), ids made global."""
        rows, start = [], 0
        for d in decisions:
            rows.append((start, start + len(d.ids)))
            start += len(d.ids)
        self._rows = rows
        return Decision(
            ids=np.concatenate(
                [d.ids + self.offsets[i] for i, d in zip(self._live, decisions, strict=True)]
            ),
            obs=np.concatenate([d.obs for d in decisions]),
            mask=np.concatenate([d.mask for d in decisions]),
            raw=_concat_obs([d.raw for d in decisions]),
        )
