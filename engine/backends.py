"""Where chunks of Monte Carlo races run: in this process, or as tasks on a Ray cluster.

A chunk is one ``simulate`` call for one strategy: ``replicas`` races starting at chunk index
``chunk``. The engine derives a chunk's randomness only from ``(seed, chunk)``, so a chunk
gives the same races wherever it runs, and a summary built from the same chunks is identical
in-process and on Ray. Both backends yield finished chunks one by one, so the caller can
update a progress bar, stop early, or keep what finished when interrupted.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from events.interface import ForcedEvent

if TYPE_CHECKING:
    from engine.race import RaceResult, RaceSnapshot
    from engine.scenario import Scenario
    from engine.strategy import Strategy
    from events.interface import EventModel
    from world_model.interface import LapModel


@dataclass(frozen=True)
class ChunkJob:
    """One ``simulate`` call: everything a worker needs, picklable."""

    scenario: Scenario
    car: str
    """Race number of the car the strategy drives; the rest keep their scenario defaults."""
    strategy: str | Strategy
    """A spec for :func:`engine.baselines.make_strategy`, or a strategy object."""
    seed: int
    chunk: int
    """Chunk index (the engine's ``first_chunk``)."""
    replicas: int
    """Races in this chunk."""
    chunk_replicas: int
    """Nominal chunk size; every chunk but the last has exactly this many races."""
    forced: tuple[ForcedEvent, ...] = ()
    start: RaceSnapshot | None = None
    lap_model: LapModel | None = None
    event_model: EventModel | None = None
    record_laps: bool = False


def run_chunk(job: ChunkJob) -> RaceResult:
    """Simulate one chunk (the function Ray ships to its workers)."""
    from engine.baselines import make_strategy
    from engine.race import StrategyAssignment, simulate

    strategy = make_strategy(job.strategy) if isinstance(job.strategy, str) else job.strategy
    return simulate(
        job.scenario,
        StrategyAssignment(default=None, per_car={job.car: strategy}),
        job.replicas,
        job.seed,
        lap_model=job.lap_model,
        event_model=job.event_model,
        forced=job.forced,
        start=job.start,
        record_laps=job.record_laps,
        chunk_replicas=job.chunk_replicas,
        first_chunk=job.chunk,
    )


class Backend(Protocol):
    """Runs chunk jobs and yields ``(job index, result)`` as each finishes."""

    parallelism: int
    """How many chunks it runs at once (the caller submits rounds of this many)."""

    def map(self, jobs: Sequence[ChunkJob]) -> Iterator[tuple[int, RaceResult]]: ...

    def cancel(self) -> None:
        """Drop work still running after an interrupt."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs chunks one after another in this process (each chunk is already batched)."""

    parallelism = 1

    def map(self, jobs: Sequence[ChunkJob]) -> Iterator[tuple[int, RaceResult]]:
        for i, job in enumerate(jobs):
            yield i, run_chunk(job)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class RayBackend:
    """Runs chunks as Ray tasks, one CPU each.

    Without ``address`` it starts a local Ray instance (``num_cpus`` of them, default all)
    and shuts it down on :meth:`close`; with ``address`` (``"auto"`` or ``"HOST:6379"``) it
    joins a running cluster (``ray start --head`` on the head node, ``ray start
    --address=HOST:6379`` on the others; stintsim must be installed on every node).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict = {"include_dashboard": False, "logging_level": "ERROR"}
            if address is None:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            ray.init(address=address, **kwargs)
        self._task = ray.remote(num_cpus=1)(run_chunk)
        self._pending: list = []
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, jobs: Sequence[ChunkJob]) -> Iterator[tuple[int, RaceResult]]:
        ray = self._ray
        index = {}
        for i, job in enumerate(jobs):
            index[self._task.remote(job)] = i
        self._pending = list(index)
        while self._pending:
            ready, self._pending = ray.wait(self._pending, num_returns=1)
            yield index[ready[0]], ray.get(ready[0])

    def cancel(self) -> None:
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending = []

    def close(self) -> None:
        self.cancel()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--address`` and ``--ray-cpus``, the options :func:`make_backend` takes."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="run chunks in this process or as Ray tasks (same results for the same seed)",
    )
    parser.add_argument(
        "--address",
        help='Ray cluster to join ("auto", or HOST:6379 of a `ray start --head` node); '
        "default: start a local Ray instance",
    )
    parser.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray instance (all)")


def make_backend(name: str, address: str | None = None, num_cpus: int | None = None) -> Backend:
    """``"local"`` or ``"ray"`` (joining ``address`` when given)."""
    if name == "local":
        return LocalBackend()
    if name == "ray":
        return RayBackend(address=address, num_cpus=num_cpus)
    raise ValueError(f"unknown backend {name!r}; choose local or ray")
