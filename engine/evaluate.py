"""Monte Carlo comparison of strategies for one car, on common random numbers.

``python -m engine.evaluate SCENARIO --strategy A --strategy B --replicas N --seed S`` runs
every strategy on the same chunks of the same seed (the same weather, incidents and lap noise
per replica), with the strategy applied to one car (``--car``, default the scenario's focus
car) and every other car on its scenario default. It prints, per strategy, the finishing
position distribution (class and overall), class win and podium probabilities, laps, time in
the pits and the CVaR of the class position, and paired differences against the first
strategy, all with confidence intervals; as a table, or ``--json`` / ``--csv`` for tools.
The command line is :mod:`engine.commands.evaluate`; this module is the library it calls.
"""

from __future__ import annotations

import math
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

    with _race_bar(replicas * len(labels), f"{scenario.name} x{len(labels)}", progress) as bar:
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


def _race_bar(total: int, desc: str, progress: bool) -> tqdm:
    """The races-done progress bar on stderr (hidden without ``progress``)."""
    return tqdm(total=total, unit="race", desc=desc, disable=not progress, file=sys.stderr)


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


if __name__ == "__main__":  # python -m engine.evaluate: the command (engine.commands.evaluate)
    from engine.commands.evaluate import main

    run_main(main)
