"""Decision steps per second of the race env: single (Gymnasium, one race) and vectorised
(one batched engine over many replicas).

A decision step is one line crossing of the controlled car; between two of them the engine
simulates a lap of the whole field, so steps/s x field size is the car-laps/s behind it.
The policy is "stay out at normal pace" (the engine forces the stops), so the figures
measure the env, not a network.

    python -m bench.env --scenario lemans_24h --replicas 256 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from data.entry import run_main

# Run as a script, this file's folder comes first on sys.path and bench/engine.py would
# shadow the engine package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.env",
        description="Env decision steps per second, single and vectorised over replicas.",
    )
    p.add_argument("--scenario", default="lemans_24h", help="scenario (default lemans_24h)")
    p.add_argument("--replicas", type=int, default=256, help="vectorised replicas (default 256)")
    p.add_argument(
        "--seconds", type=float, default=20.0, help="time to run each measurement (default 20)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes the vectorised env is split over (engine.sharded_env; default 1: "
        "RaceVecEnv in this process)",
    )
    p.add_argument("--seed", type=int, default=0, help="race seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _vector(scenario, replicas: int, seconds: float, seed: int, workers: int) -> dict[str, float]:
    from engine.actions import action_index
    from engine.sharded_env import ShardedRaceVecEnv
    from engine.vec_env import RaceVecEnv

    stay = action_index()
    if workers > 1:
        with ShardedRaceVecEnv(scenario, replicas, shards=workers) as env:
            return _run_vector(env, stay, seconds, seed)
    return _run_vector(RaceVecEnv(scenario, replicas), stay, seconds, seed)


def _run_vector(env, stay: int, seconds: float, seed: int) -> dict[str, float]:
    steps = 0
    started = time.perf_counter()
    dec = env.reset(seed)
    while time.perf_counter() - started < seconds:
        if dec is None:
            seed += 1
            dec = env.reset(seed)
        steps += len(dec.ids)
        _, dec = env.step(np.full(len(dec.ids), stay))
    elapsed = time.perf_counter() - started
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed}


def _single(scenario, seconds: float, seed: int) -> dict[str, float]:
    from engine.actions import action_index
    from engine.env import RaceEnv

    stay = action_index()
    env = RaceEnv(scenario)
    steps = 0
    started = time.perf_counter()
    env.reset(seed=seed)
    while time.perf_counter() - started < seconds:
        _, _, done, _, _ = env.step(stay)
        steps += 1
        if done:
            seed += 1
            env.reset(seed=seed)
    elapsed = time.perf_counter() - started
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from engine.scenario import load_scenario

    torch.set_num_threads(args.threads)
    scenario = load_scenario(args.scenario)
    cars = len(scenario.entries)
    single = _single(scenario, args.seconds, args.seed)
    vector = _vector(scenario, args.replicas, args.seconds, args.seed, args.workers)
    out = {
        "scenario": scenario.name,
        "cars": cars,
        "cores": os.cpu_count(),
        "threads": args.threads,
        "replicas": args.replicas,
        "workers": args.workers,
        "single_steps_per_s": single["steps_per_s"],
        "vector_steps_per_s": vector["steps_per_s"],
        "vector_car_laps_per_s": vector["steps_per_s"] * cars,
        "target_vector_steps_per_s": 5000,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{scenario.name}: {cars} cars, {os.cpu_count()} cores, "
            f"{args.threads} torch thread(s)\n"
            f"single env      {single['steps_per_s']:10.1f} decision steps/s\n"
            f"vector x{args.replicas:<6d} ({args.workers} process(es)) "
            f"{vector['steps_per_s']:10.1f} decision steps/s "
            f"({vector['steps_per_s'] * cars:,.0f} car-laps/s; target 5,000 steps/s)"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
