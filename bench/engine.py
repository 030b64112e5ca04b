"""Benchmark of the race engine: car-laps per second and peak memory.

Simulates the Le Mans 24 h scenario (62 cars, three classes) with incidents and weather on,
at several replica counts, each in a fresh child process so its peak memory (max resident
set size) is its own. Figures: car-laps per second of ``engine.race.simulate`` (one process,
one torch thread per process; ``--workers`` runs chunks in that many processes at once, as
an evaluation backend does), car-laps per CPU second (the rate a free core gives: on a
machine shared with other work wall-clock rates understate it), and peak resident memory.

    python -m bench.engine --json
    python -m bench.engine --replicas 1 64 1024 --hours 24 --json
    python -m bench.engine --replicas 10000 --hours 1 --chunk 512       # memory at 10,000 races
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from data.entry import run_main


def _one_chunk(
    scenario: str,
    hours: float | None,
    replicas: int,
    seed: int,
    chunk: int,
    first: int,
    window_s: float | None = None,
    lap_model_name: str | None = None,
) -> tuple[int, float, float]:
    """(car-laps, wall seconds, CPU seconds) of one simulate call."""
    from engine.race import StrategyAssignment, load_event_model, load_lap_model, simulate
    from engine.scenario import load_scenario, scenario_with

    s = load_scenario(scenario)
    if hours is not None:
        s = scenario_with(s, **{"race.duration_h": hours})
    if window_s is not None:
        s = scenario_with(s, **{"race.window_s": window_s})
    if lap_model_name is not None:
        s = scenario_with(s, lap_model=lap_model_name)
    lap_model, event_model = load_lap_model(s), load_event_model(s)  # not timed
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = simulate(
        s,
        StrategyAssignment(),
        replicas,
        seed,
        lap_model=lap_model,
        event_model=event_model,
        chunk_replicas=chunk,
        first_chunk=first,
    )
    return int(r.laps_completed.sum()), time.perf_counter() - t0, time.process_time() - c0


def run_one(args: argparse.Namespace) -> dict[str, object]:
    """One replica count in this process: car-laps, seconds, peak memory."""
    r, chunk, workers = args.one, args.chunk, args.workers
    t0 = time.perf_counter()
    if workers <= 1:
        laps, wall, cpu = _one_chunk(
            args.scenario, args.hours, r, args.seed, chunk, 0, args.window_s, args.lap_model
        )
    else:
        # Chunk k of the run = replicas [k * chunk, (k + 1) * chunk): same races as one call.
        n_chunks = -(-r // chunk)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(
                    _one_chunk,
                    args.scenario,
                    args.hours,
                    min(chunk, r - k * chunk),
                    args.seed,
                    chunk,
                    k,
                    args.window_s,
                    args.lap_model,
                )
                for k in range(n_chunks)
            ]
            done = [f.result() for f in futures]
            laps = sum(d[0] for d in done)
            cpu = sum(d[2] for d in done)
        wall = time.perf_counter() - t0  # includes the workers' start and model loading
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "replicas": r,
        "car_laps": laps,
        "seconds": round(wall, 3),
        "car_laps_per_s": round(laps / wall, 1),
        "cpu_seconds": round(cpu, 3),
        "car_laps_per_cpu_s": round(laps / cpu, 1),
        "peak_rss_mb": round(max(peak_kb, peak_children_kb) / 1024.0, 1),
        "chunk": chunk,
        "workers": workers,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="lemans_24h", help="scenario name or TOML path")
    p.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 64, 1024], help="replica counts to time"
    )
    p.add_argument(
        "--hours",
        type=float,
        default=None,
        help="shorten the race to this many hours (default: full)",
    )
    p.add_argument("--chunk", type=int, default=256, help="replicas per chunk")
    p.add_argument(
        "--window-s",
        type=float,
        default=None,
        help="race-clock window [s] (default: the scenario's; must not exceed its "
        "neutralisation delay)",
    )
    p.add_argument(
        "--lap-model",
        default=None,
        help="lap model: default, parametric or a checkpoint (default: the scenario's)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes running chunks at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args)))
        return 0
    runs = []
    for r in args.replicas:
        cmd = [
            sys.executable,
            "-m",
            "bench.engine",
            "--one",
            str(r),
            "--scenario",
            args.scenario,
            "--chunk",
            str(args.chunk),
            "--workers",
            str(args.workers),
            "--seed",
            str(args.seed),
        ]
        if args.hours is not None:
            cmd += ["--hours", str(args.hours)]
        if args.window_s is not None:
            cmd += ["--window-s", str(args.window_s)]
        if args.lap_model is not None:
            cmd += ["--lap-model", args.lap_model]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        if not args.json:
            print(
                f"{r:>6} replicas: {run['car_laps_per_s']:>10,.0f} car-laps/s "
                f"({run['car_laps']:,} car-laps in {run['seconds']:.1f} s), "
                f"peak {run['peak_rss_mb']:.0f} MB",
                file=sys.stderr if args.json else sys.stdout,
            )
    result = {
        "bench": "engine",
        "scenario": args.scenario,
        "hours": args.hours,
        "window_s": args.window_s,
        "lap_model": args.lap_model or "scenario's",
        "incidents": True,
        "weather": True,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"cpu_count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    run_main(main)
