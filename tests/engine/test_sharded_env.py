"""The env split over worker processes gives exactly the races of its chunks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.actions import action_index
from engine.scenario import load_scenario
from engine.sharded_env import ShardedRaceVecEnv
from engine.vec_env import RaceVecEnv
from world_model.interface import PaceMode

STAY = action_index(PaceMode.NORMAL)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("test_race")


def _policy(ids: np.ndarray, laps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A deterministic policy of the global replica id and the lap (so misrouted actions
    change the races): replicas take turns at pushing, and some pit early."""
    pace = np.where((ids + laps) % 3 == 0, action_index(PaceMode.PUSH), STAY)
    pit = action_index(PaceMode.NORMAL, True)
    acts = np.where((ids + laps) % 7 == 0, pit, pace)
    return np.where(mask[np.arange(len(ids)), acts], acts, STAY)


def _rollout(env, seed: int, offset: int = 0) -> tuple[dict, list[float]]:
    """Per global replica id: its (lap, features, action, reward) sequence; and the
    finishing positions."""
    dec = env.reset(seed)
    steps: dict[int, list[tuple]] = {}
    while dec is not None:
        ids = dec.ids + offset
        laps = dec.raw.lap.numpy().astype(np.int64)
        acts = _policy(ids, laps, dec.mask)
        for i, lap, x in zip(ids.tolist(), laps.tolist(), dec.obs.round(6).tolist(), strict=True):
            steps.setdefault(i, []).append((lap, x))
        trans, dec = env.step(acts)
        for i, a, r in zip((trans.ids + offset).tolist(), trans.act, trans.rew, strict=True):
            steps[i].append((int(a), round(float(r), 9)))
    return steps, sorted(env.episodes_finished)


def test_one_shard_is_the_plain_vec_env(scenario) -> None:
    plain = _rollout(RaceVecEnv(scenario, 6), 11)
    with ShardedRaceVecEnv(scenario, 6, shards=1) as env:
        assert _rollout(env, 11) == plain


def test_two_shards_are_the_two_chunks(scenario) -> None:
    with ShardedRaceVecEnv(scenario, 7, shards=2) as env:
        assert env.offsets == [0, 4]
        steps, finished = _rollout(env, 5)
    # Chunk by chunk in one process: the same races, replica ids offset by the chunk start.
    expected: dict[int, list[tuple]] = {}
    expected_finished: list[float] = []
    for chunk, (offset, n) in enumerate([(0, 4), (4, 3)]):
        one = RaceVecEnv(scenario, n, chunk=chunk, first_replica=offset)
        s, f = _rollout(one, 5, offset)
        expected |= s
        expected_finished += f
    assert sorted(steps) == list(range(7))
    assert steps == expected
    assert finished == sorted(expected_finished)
    # The chunks are different races (their own random streams).
    assert steps[0] != steps[4]


def test_wrong_action_count_and_worker_errors_are_reported(scenario) -> None:
    with ShardedRaceVecEnv(scenario, 4, shards=2) as env:
        dec = env.reset(0)
        with pytest.raises(ValueError, match="one action per waiting replica"):
            env.step(np.full(len(dec.ids) + 1, STAY))
        env._conns[1].send(("step", None))  # a request the worker's env cannot serve
        with pytest.raises(RuntimeError, match="env worker 1 failed"):
            env._receive(1)
