"""Monte Carlo comparison of strategies for one car, on common random numbers.

``python -m engine.evaluate SCENARIO --strategy A --strategy B --replicas N --seed S`` runs
every strategy on the same chunks of the same seed (the same weather, incidents and lap noise
per replica), with the strategy applied to one car (``--car``, default the scenario's focus
car) and every other car on its scenario default. It prints, per strategy, the finishing
position distribution (class and overall), class win and podium probabilities, laps, time in
the pits and the CVaR of the class position, and paired differences against the first
strategy, all with confidence intervals; as a table, or ``--json`` / ``--csv`` for tools.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from data.entry import run_main
from engine.backends import (
    Backend,
    ChunkJob,
    LocalBackend,
    add_backend_arguments,
    make_backend,
)
from engine.cli_types import (
    finite_float,
    non_negative_int,
    open_unit,
    positive_int,
    random_seed,
)
from engine.montecarlo import (
    CVAR_ALPHA,
    Comparison,
    Outcomes,
    check_cvar_alpha,
    compare,
    mean_interval,
)
from events.interface import ForcedEvent

if TYPE_CHECKING:
    from engine.race import RaceResult, RaceSnapshot
    from engine.scenario import Scenario
    from engine.strategy import Strategy
    from events.interface import EventModel
    from world_model.interface import LapModel

DEFAULT_CHUNK_REPLICAS = 128
"""Races per chunk: one batched ``simulate`` call, the unit of progress, early stopping,
interruption and Ray tasks. Results depend on it (it fixes which random streams each race
uses), so compare runs made with the same chunk size."""


@dataclass
class Evaluation:
    """A finished (or stopped) comparison with its per-replica outcomes."""

    comparison: Comparison
    outcomes: dict[str, Outcomes]
    """Strategy label -> per-replica outcomes of the evaluated car, in replica order."""
    specs: dict[str, str]
    """Strategy label -> the spec (or strategy name) it was built from."""
    elapsed_s: float
    chunk_replicas: int

    @property
    def races_per_s(self) -> float:
        races = self.comparison.replicas * len(self.outcomes)
        return races / self.elapsed_s if self.elapsed_s > 0 else math.nan


def strategy_labels(strategies: Sequence[str | Strategy]) -> list[str]:
    """Unique display labels: the spec (or the strategy's name), ``#2``... on repeats."""
    labels: list[str] = []
    for s in strategies:
        base = s if isinstance(s, str) else s.name
        label, k = base, 2
        while label in labels:
            label, k = f"{base}#{k}", k + 1
        labels.append(label)
    return labels


def check_strategies(strategies: Sequence[str | Strategy]) -> None:
    """Build every strategy spec once, before any race runs: a bad spec (a missing agent
    checkpoint, an unknown factory) fails in a second, naming the spec, instead of after the
    other strategies' races as each worker builds its own."""
    from engine.baselines import make_strategy

    for spec in strategies:
        if not isinstance(spec, str):
            continue
        try:
            make_strategy(spec)
        except (OSError, ImportError, TypeError, KeyError) as exc:
            raise ValueError(f"strategy {spec!r}: {exc}") from None


def focus_car(scenario: Scenario, car: str | None) -> str:
    """The car to evaluate: ``car`` or the scenario's focus car, checked against the entries."""
    number = car if car is not None else scenario.focus_car
    numbers = [e.number for e in scenario.entries]
    if number is None:
        raise ValueError(f"scenario {scenario.name!r} names no focus_car; pass --car NUMBER")
    if number not in numbers:
        raise ValueError(
            f"car {number!r} is not an entry of scenario {scenario.name!r} "
            f"(entries: {', '.join(numbers)})"
        )
    return number


def _chunk_sizes(replicas: int, chunk_replicas: int) -> list[int]:
    full, rest = divmod(replicas, chunk_replicas)
    return [chunk_replicas] * full + ([rest] if rest else [])


def _widest_class_position_half_width(outcomes: Sequence[Outcomes], confidence: float) -> float:
    """The ``--precision`` criterion: the widest interval half-width on mean class position,
    over each strategy and each paired difference against the first."""
    pos = [o.class_position.astype(np.float64) for o in outcomes]
    widths = [mean_interval(p, confidence).half_width for p in pos]
    widths += [mean_interval(p - pos[0], confidence).half_width for p in pos[1:]]
    return max(widths)


def evaluate(
    scenario: Scenario,
    strategies: Sequence[str | Strategy],
    replicas: int,
    seed: int,
    *,
    car: str | None = None,
    precision: float | None = None,
    min_replicas: int = 32,
    backend: Backend | None = None,
    chunk_replicas: int = DEFAULT_CHUNK_REPLICAS,
    forced: Sequence[ForcedEvent] = (),
    start: RaceSnapshot | None = None,
    lap_model: LapModel | None = None,
    event_model: EventModel | None = None,
    confidence: float = 0.95,
    progress: bool = False,
    forced_text: Sequence[str] = (),
    cvar_alpha: float = CVAR_ALPHA,
    first_chunk: int = 0,
) -> Evaluation:
    """Run every strategy on the same chunks of ``seed`` and compare them for ``car``.

    ``first_chunk`` starts at that chunk of the seed's sequence instead of the first: a later
    round of a search runs fresh races, the ones a longer evaluation would run there.

    With ``precision`` it stops after the first round of chunks, once at least
    ``min_replicas`` races ran, where every interval half-width on mean class position is
    below it (``replicas`` is then the maximum; the minimum guards against the zero-width
    intervals of a few identical races). A KeyboardInterrupt stops it too, keeping every
    chunk that finished for all strategies.
    """
    _check_arguments(len(strategies), replicas, chunk_replicas, precision, confidence, first_chunk)
    check_cvar_alpha(cvar_alpha)
    check_strategies(strategies)
    number = focus_car(scenario, car)
    labels = strategy_labels(strategies)
    backend = backend or LocalBackend()
    sizes = _chunk_sizes(replicas, chunk_replicas)
    started = time.perf_counter()

    def job(k: int, s: int) -> ChunkJob:
        return ChunkJob(
            scenario=scenario,
            car=number,
            strategy=strategies[s],
            seed=seed,
            chunk=first_chunk + k,
            replicas=sizes[k],
            chunk_replicas=chunk_replicas,
            forced=tuple(forced),
            start=start,
            lap_model=lap_model,
            event_model=event_model,
        )

    def precise(done: dict[tuple[int, int], Outcomes]) -> bool:
        joined = _join(done, _complete_chunks(done, len(sizes), len(labels)), len(labels))
        assert precision is not None
        return (
            len(joined[0]) >= max(2, min_replicas)
            and _widest_class_position_half_width(joined, confidence) < precision
        )

    bar = tqdm(
        total=replicas * len(labels),
        unit="race",
        desc=f"{scenario.name} x{len(labels)}",
        disable=not progress,
        file=sys.stderr,
    )
    with bar:
        done, stop_reason = _run_rounds(
            backend, job, len(sizes), len(labels), None if precision is None else precise, bar
        )
    elapsed = time.perf_counter() - started
    kept = _complete_chunks(done, len(sizes), len(labels))
    if not kept:
        raise KeyboardInterrupt("interrupted before any chunk finished for every strategy")
    joined = _join(done, kept, len(labels))
    specs = {
        lab: (s if isinstance(s, str) else s.name)
        for lab, s in zip(labels, strategies, strict=True)
    }
    comparison = compare(
        scenario.name,
        number,
        seed,
        [(lab, specs[lab], o) for lab, o in zip(labels, joined, strict=True)],
        confidence=confidence,
        stop_reason=stop_reason,
        forced=forced_text,
        cvar_alpha=cvar_alpha,
    )
    return Evaluation(
        comparison=comparison,
        outcomes=dict(zip(labels, joined, strict=True)),
        specs=specs,
        elapsed_s=elapsed,
        chunk_replicas=chunk_replicas,
    )


def _run_rounds(
    backend: Backend,
    job: Callable[[int, int], ChunkJob],
    n_chunks: int,
    n_strategies: int,
    precise: Callable[[dict[tuple[int, int], Outcomes]], bool] | None,
    bar: tqdm,
) -> tuple[dict[tuple[int, int], Outcomes], str]:
    """Run chunk ``k`` of strategy ``s`` (``job(k, s)``) for every chunk and strategy, in
    rounds as wide as the backend with a precision target (stopping once ``precise``); the
    outcomes by ``(k, s)`` and why it stopped ("replicas", "precision" or "interrupted")."""
    done: dict[tuple[int, int], Outcomes] = {}
    stop_reason = "replicas"
    try:
        next_chunk = 0
        while next_chunk < n_chunks:
            # Without a precision target every chunk goes at once (no idle workers between
            # rounds); with one, a round is as many chunks as run in parallel.
            step = n_chunks if precise is None else backend.parallelism
            round_chunks = range(next_chunk, min(n_chunks, next_chunk + step))
            keys = [(k, s) for k in round_chunks for s in range(n_strategies)]
            jobs = [job(k, s) for k, s in keys]
            for i, result in backend.map(jobs):
                done[keys[i]] = Outcomes.from_result(result, jobs[i].car)
                bar.update(jobs[i].replicas)
            next_chunk = round_chunks.stop
            if precise is not None and next_chunk < n_chunks and precise(done):
                stop_reason = "precision"
                break
    except KeyboardInterrupt:
        backend.cancel()
        stop_reason = "interrupted"
    return done, stop_reason


def _complete_chunks(
    done: dict[tuple[int, int], Outcomes], n_chunks: int, n_strategies: int
) -> list[int]:
    """The chunks that finished for every strategy."""
    return [k for k in range(n_chunks) if all((k, s) in done for s in range(n_strategies))]


def _check_arguments(
    n_strategies: int,
    replicas: int,
    chunk_replicas: int,
    precision: float | None,
    confidence: float,
    first_chunk: int,
) -> None:
    """Raise ValueError naming the first of :func:`evaluate`'s arguments out of range."""
    if not n_strategies:
        raise ValueError("give at least one strategy")
    if replicas < 1 or chunk_replicas < 1:
        raise ValueError("replicas and chunk_replicas must be positive")
    if precision is not None and not precision > 0:
        raise ValueError(f"precision must be a positive width in positions, got {precision}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if first_chunk < 0:
        raise ValueError(f"first_chunk must be >= 0, got {first_chunk}")


def _join(done: dict[tuple[int, int], Outcomes], chunks: list[int], n: int) -> list[Outcomes]:
    return [Outcomes.concat([done[(k, s)] for k in chunks]) for s in range(n)]


def sample_races(
    scenario: Scenario,
    strategies: Sequence[str | Strategy],
    seed: int,
    *,
    car: str | None = None,
    replicas: int = 4,
    forced: Sequence[ForcedEvent] = (),
    start: RaceSnapshot | None = None,
    lap_model: LapModel | None = None,
    event_model: EventModel | None = None,
) -> dict[str, RaceResult]:
    """A few races per strategy with every lap recorded (for plots), on common random
    numbers: one chunk of ``replicas`` races of ``seed``, the same for every strategy."""
    from engine.backends import run_chunk

    number = focus_car(scenario, car)
    out: dict[str, RaceResult] = {}
    for label, strategy in zip(strategy_labels(strategies), strategies, strict=True):
        job = ChunkJob(
            scenario=scenario,
            car=number,
            strategy=strategy,
            seed=seed,
            chunk=0,
            replicas=replicas,
            chunk_replicas=replicas,
            forced=tuple(forced),
            start=start,
            lap_model=lap_model,
            event_model=event_model,
            record_laps=True,
        )
        out[label] = run_chunk(job)
    return out


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    from engine.report import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def add_chunk_argument(parser: argparse.ArgumentParser) -> None:
    """``--chunk-replicas``, as every command that runs Monte Carlo chunks takes it."""
    parser.add_argument(
        "--chunk-replicas",
        type=positive_int,
        default=DEFAULT_CHUNK_REPLICAS,
        metavar="N",
        help="races per simulate call, the unit of progress, early stops and Ray tasks; results "
        "depend on it. Larger chunks run faster: the 24-hour race took 0.17 s a race in chunks "
        f"of 128 and 0.09 s in chunks of 512 (default {DEFAULT_CHUNK_REPLICAS})",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``whatif``."""
    parser.add_argument(
        "scenario",
        help='shipped scenario name ("lemans_24h", "six_hours", "test_race") or a TOML path',
    )
    parser.add_argument(
        "--strategy",
        action="append",
        required=True,
        metavar="SPEC",
        help="strategy for the evaluated car, as engine.baselines.make_strategy reads it "
        '(e.g. "fixed:laps=12", "double-stint", "plan:FILE", "module.path:factory"); repeat '
        "to compare; differences are against the first",
    )
    parser.add_argument(
        "--replicas",
        type=positive_int,
        default=256,
        help="races per strategy (maximum with --precision; default 256)",
    )
    parser.add_argument(
        "--seed", type=random_seed, default=0, help="seed of the common random numbers"
    )
    parser.add_argument("--car", help="race number of the evaluated car (default: focus_car)")
    parser.add_argument(
        "--precision",
        type=finite_float,
        metavar="W",
        help="stop once every interval half-width on mean class position (each strategy and "
        "each paired difference) is below W positions",
    )
    parser.add_argument(
        "--min-replicas",
        type=positive_int,
        default=32,
        help="with --precision: races per strategy before it may stop (default 32)",
    )
    add_chunk_argument(parser)
    parser.add_argument("--confidence", type=open_unit, default=0.95, help="interval level (0.95)")
    parser.add_argument(
        "--cvar-alpha",
        type=finite_float,
        default=CVAR_ALPHA,
        metavar="A",
        help="share of worst races the CVaR of class position averages, in (0, 1]; read "
        "the tail above a strategy's retirement rate with a level larger than that rate "
        f"(default {CVAR_ALPHA:g})",
    )
    add_backend_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help="write every figure as CSV rows (section, strategy, metric, estimate, low, high, "
        "replicas, and the CVaR rows' level in cvar_alpha)",
    )
    parser.add_argument("--out-json", metavar="FILE", help="write the JSON summary to FILE")
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write a report (.pdf: multi-page PDF; .html: one page) with the table, outcome "
        "distributions and the Gantt, position, fuel and tyre plots of sample races",
    )
    parser.add_argument(
        "--report-races",
        type=non_negative_int,
        default=4,
        help="races per strategy recorded lap by lap for the report's plots (default 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine.evaluate",
        description="Compare strategies for one car by Monte Carlo: every strategy runs on the "
        "same random numbers (same weather, incidents and lap noise per race), the rest of the "
        "field keeps its scenario strategies, and differences against the first strategy are "
        "paired. Prints per-strategy figures and paired differences with confidence intervals.",
    )
    add_run_arguments(parser)
    return parser


def run_and_report(
    args: argparse.Namespace,
    scenario: Scenario,
    *,
    forced: Sequence[ForcedEvent] = (),
    forced_text: Sequence[str] = (),
    start: RaceSnapshot | None = None,
    title: str = "evaluate",
) -> int:
    """Evaluate as the parsed options say and print / write the results; the exit status
    of the evaluate and what-if commands (2 for bad input, 130 when interrupted)."""
    try:
        return _run_and_report(args, scenario, forced, forced_text, start, title)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130


def _run_and_report(
    args: argparse.Namespace,
    scenario: Scenario,
    forced: Sequence[ForcedEvent],
    forced_text: Sequence[str],
    start: RaceSnapshot | None,
    title: str,
) -> int:
    from engine import report

    backend = make_backend(args.backend, args.address, args.ray_cpus)
    try:
        ev = evaluate(
            scenario,
            args.strategy,
            args.replicas,
            args.seed,
            car=args.car,
            precision=args.precision,
            min_replicas=args.min_replicas,
            backend=backend,
            chunk_replicas=args.chunk_replicas,
            forced=forced,
            start=start,
            confidence=args.confidence,
            progress=not args.no_progress,
            forced_text=forced_text,
            cvar_alpha=args.cvar_alpha,
        )
    finally:
        backend.close()
    summary = ev.comparison.to_dict()
    summary["elapsed_s"] = ev.elapsed_s
    summary["races_per_s"] = ev.races_per_s
    summary["chunk_replicas"] = ev.chunk_replicas
    summary["backend"] = args.backend
    summary["cores"] = os.cpu_count()
    if args.out_json:
        write_atomic(args.out_json, json.dumps(summary, indent=2) + "\n")
    if args.csv:
        write_atomic(args.csv, report.comparison_csv(ev.comparison))
    if args.report:
        races = sample_races(
            scenario,
            args.strategy,
            args.seed,
            car=args.car,
            replicas=args.report_races,
            forced=forced,
            start=start,
        )
        report.write_report(args.report, ev, races, title=f"stintsim {title}: {scenario.name}")
    if args.json:
        print(json.dumps(summary))
    else:
        print(report.format_table(ev.comparison))
        print(
            f"{ev.comparison.replicas} races per strategy in {ev.elapsed_s:.1f} s "
            f"({ev.races_per_s:.1f} races/s, {os.cpu_count()} cores)"
        )
    return 130 if ev.comparison.stop_reason == "interrupted" else 0


def load_scenario_arg(name: str) -> Scenario | None:
    """The scenario a command line names, or None after printing why it cannot be loaded
    (the command then exits with status 2)."""
    from engine.scenario import load_scenario

    try:
        return load_scenario(name)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: cannot load scenario {name!r}: {err}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario = load_scenario_arg(args.scenario)
    if scenario is None:
        return 2
    return run_and_report(args, scenario)


if __name__ == "__main__":
    run_main(main)
