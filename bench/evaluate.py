"""Benchmark of Monte Carlo evaluation: races and car-laps per second, in-process or on Ray.

Runs the chunks an ``engine.evaluate`` comparison runs (every strategy on the same seed) and
reports the simulation rate, then the time the paired statistics take on those outcomes.

    python -m bench.evaluate --scenario test_race --replicas 256 --json
    python -m bench.evaluate --scenario lemans_24h --replicas 256 --backend ray
"""

from __future__ import annotations

import argparse
import json
import os
import time

from data.entry import run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate", description=__doc__)
    parser.add_argument("--scenario", default="test_race", help="scenario name or TOML path")
    parser.add_argument(
        "--strategy",
        action="append",
        metavar="SPEC",
        help="strategy of the focus car (repeat; default fuel-reserve and fixed:laps=6)",
    )
    parser.add_argument("--replicas", type=int, default=256, help="races per strategy")
    parser.add_argument("--chunk-replicas", type=int, default=128, help="races per chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster address (default: a local instance)")
    parser.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

    import numpy as np

    from engine.backends import ChunkJob, make_backend
    from engine.evaluate import focus_car, strategy_labels
    from engine.montecarlo import Outcomes, compare
    from engine.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    strategies = args.strategy or ["fuel-reserve", "fixed:laps=6"]
    car = focus_car(scenario, None)
    full, rest = divmod(args.replicas, args.chunk_replicas)
    sizes = [args.chunk_replicas] * full + ([rest] if rest else [])
    jobs = [
        ChunkJob(
            scenario, car, s, args.seed, chunk=k, replicas=n, chunk_replicas=args.chunk_replicas
        )
        for k, n in enumerate(sizes)
        for s in strategies
    ]
    backend = make_backend(args.backend, args.address, args.ray_cpus)
    try:
        started = time.perf_counter()
        parts: dict[int, Outcomes] = {}
        car_laps = 0
        for i, result in backend.map(jobs):
            parts[i] = Outcomes.from_result(result, car)
            car_laps += int(np.sum(result.laps_completed))
        sim_s = time.perf_counter() - started
    finally:
        backend.close()
    per_strategy = [
        Outcomes.concat([parts[i] for i in range(len(jobs)) if jobs[i].strategy == s])
        for s in strategies
    ]
    started = time.perf_counter()
    compare(
        scenario.name,
        car,
        args.seed,
        list(zip(strategy_labels(strategies), strategies, per_strategy, strict=True)),
    )
    stats_s = time.perf_counter() - started
    races = args.replicas * len(strategies)
    figures = {
        "scenario": scenario.name,
        "cars": len(scenario.entries),
        "strategies": len(strategies),
        "replicas": args.replicas,
        "chunk_replicas": args.chunk_replicas,
        "backend": args.backend,
        "cores": os.cpu_count(),
        "simulate_s": sim_s,
        "races_per_s": races / sim_s,
        "car_laps_per_s": car_laps / sim_s,
        "statistics_s": stats_s,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:>16}: {v:.4g}" if isinstance(v, float) else f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    run_main(main)
