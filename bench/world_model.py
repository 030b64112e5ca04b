"""Throughput of LapModel.sample: car-laps per second at several batch sizes and threads.

``python bench/world_model.py [--model default|parametric|FILE] [--json]`` times
``sample`` under ``torch.inference_mode`` at batch 1, 64, 4,096 and 65,536 rows with 1 and 2
intra-op threads (each row its own ensemble member, as the engine's replicas are), and over
calls of changing size (2,000-20,000 rows, as the engine's batches), and prints car-laps per
second with the machine's core count.

OpenMP worker threads sleep instead of spin-waiting between operations
(``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it): on a shared machine a spinning
worker steals the core its partner needs, and two threads collapse to a few per cent of one.
Freed memory stays in the process (:func:`world_model.memory.keep_freed_memory`, unless
``--system-malloc``), as a simulation entry point would run the model. The learned MLP's
hidden matmuls run in bfloat16 where the CPU has native bfloat16 (``STINTSIM_WM_MATMUL=fp32``
forces float32; see :mod:`world_model.precision`).
"""

from __future__ import annotations

import os

# Must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# world_model package: drop the folder so the package imports.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from data.entry import run_main
from world_model.interface import LapModel
from world_model.loading import load
from world_model.memory import keep_freed_memory
from world_model.samples import random_conditions

BATCHES = (1, 64, 4_096, 65_536)
VARIED = (2_000, 20_000)
"""Row range of the varied-batch figure: the engine's batch sizes change every call."""
VARIED_CALLS = 60


def time_sample(model: LapModel, n: int, threads: int, min_seconds: float) -> tuple[float, float]:
    """Car-laps per wall-clock second and per process CPU-second of ``model.sample`` on ``n``
    rows with ``threads`` threads (on a busy machine the CPU-second figure is the fairer one
    at one thread)."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    cond = random_conditions(n, gen)
    member = torch.arange(n)
    with torch.inference_mode():
        model.sample(cond, gen, member)  # warm-up
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            model.sample(cond, gen, member)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds and calls >= 3:
                cpu = max(time.process_time() - cpu_start, 1e-9)
                return calls * n / elapsed, calls * n / cpu


def time_varied(model: LapModel, threads: int, seed: int = 0) -> tuple[float, float]:
    """Car-laps per wall-clock second and per process CPU-second of ``model.sample`` over
    :data:`VARIED_CALLS` calls of random sizes in :data:`VARIED`, each row's member its
    replica (sorted replica indices of 1,024 replicas, as the engine passes them), timed on
    a second pass over the same calls."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    cond = random_conditions(VARIED[1], gen)
    sizes = torch.randint(VARIED[0], VARIED[1] + 1, (VARIED_CALLS,), generator=gen).tolist()
    members = [torch.randint(1_024, (n,), generator=gen).sort().values for n in sizes]
    parts = [cond.index(torch.arange(n)) for n in sizes]
    with torch.inference_mode():
        # Warm-up pass over every size: a long simulation has met its shapes (and built
        # their matmul primitives) after its first minutes.
        for c, m in zip(parts, members, strict=True):
            model.sample(c, gen, m)
        start, cpu_start = time.perf_counter(), time.process_time()
        for c, m in zip(parts, members, strict=True):
            model.sample(c, gen, m)
        elapsed = time.perf_counter() - start
        cpu = max(time.process_time() - cpu_start, 1e-9)
    return sum(sizes) / elapsed, sum(sizes) / cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python bench/world_model.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="default", help="'default', 'parametric' or a checkpoint")
    p.add_argument("--min-seconds", type=float, default=0.5, help="time spent per measurement [s]")
    p.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's allocator settings alone (default: keep freed memory in the "
        "process, see world_model.memory)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args(argv)
    kept = False if args.system_malloc else keep_freed_memory()
    model = load(args.model)
    figures: dict[str, float] = {}
    for t in (1, 2):
        for n in BATCHES:
            wall, cpu = time_sample(model, n, t, args.min_seconds)
            figures[f"batch_{n}_threads_{t}"] = wall
            figures[f"batch_{n}_threads_{t}_per_cpu_s"] = cpu
        wall, cpu = time_varied(model, t)
        figures[f"varied_{VARIED[0]}_{VARIED[1]}_threads_{t}"] = wall
        figures[f"varied_{VARIED[0]}_{VARIED[1]}_threads_{t}_per_cpu_s"] = cpu
    result = {
        "model": args.model,
        "model_class": type(model).__name__,
        "cpu_count": os.cpu_count(),
        "unit": "car-laps/s (wall clock); *_per_cpu_s: car-laps per process CPU-second",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "malloc_keep_freed": kept,
        "mlp_matmul_dtype": (
            str(model.matmul_dtype).removeprefix("torch.") if hasattr(model, "matmul_dtype") else ""
        ),
        **{k: round(v) for k, v in figures.items()},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{type(model).__name__} ({args.model}), {os.cpu_count()} cores, load "
            f"{os.getloadavg()[0]:.1f}, keep freed memory {kept}, car-laps/s:"
        )
        for k, v in figures.items():
            print(f"  {k:<28}{v:>14,.0f}")
    return 0


if __name__ == "__main__":
    run_main(main)
