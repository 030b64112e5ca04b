"""Run races: ``simulate`` (many replicas, every car under its strategy) and ``RaceSim``
(one car per replica under external control, for the Gymnasium env).

Replica ``r`` belongs to chunk ``r // chunk_replicas``; a chunk's randomness derives only from
``(seed, chunk index)``, so chunks run separately and joined with ``RaceResult.concat`` equal
one call bit for bit.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from engine.result import RaceResult, RaceSnapshot
from engine.scenario import Scenario
from engine.state import RaceState
from engine.stepper import ChunkSim
from engine.strategy import Observation, Strategy
from events.interface import EventModel, ForcedEvent
from world_model.interface import LapModel
from world_model.threads import torch_threads

__all__ = [
    "DecisionPoint",
    "RaceResult",
    "RaceSim",
    "RaceSnapshot",
    "StrategyAssignment",
    "load_event_model",
    "load_lap_model",
    "simulate",
]


@dataclass(frozen=True)
class StrategyAssignment:
    """Who decides for each car: ``per_car`` (race number -> strategy) over ``default``
    (None: each entry's own ``strategy`` spec from the scenario)."""

    default: Strategy | None = None
    per_car: Mapping[str, Strategy] = field(default_factory=dict)


def load_lap_model(scenario: Scenario) -> LapModel:
    """The scenario's lap model ("default", "parametric" or a checkpoint path)."""
    import world_model
    from world_model.parametric import ParametricLapModel, ParametricLapParams

    if scenario.lap_model == "parametric":
        return ParametricLapModel(
            ParametricLapParams(
                noise_scale=scenario.noise_scale, wet_penalty=scenario.lap_model_wet_penalty
            )
        )
    model = world_model.load(scenario.lap_model)
    physics = getattr(model, "physics", None)
    if isinstance(physics, ParametricLapParams):
        # The learned model applies the parametric wet pace (its data has no wetness).
        model = model.variant(  # type: ignore[attr-defined]
            physics=replace(physics, wet_penalty=scenario.lap_model_wet_penalty)
        )
    core_only = getattr(model, "with_core_only", None)
    if scenario.lap_model_core_only and core_only is not None:
        model = core_only()
    fuel_noise = getattr(model, "with_fuel_noise", None)
    if scenario.lap_model_fuel_noise != 1.0 and fuel_noise is not None:
        model = fuel_noise(scenario.lap_model_fuel_noise)
    return model


def load_event_model(scenario: Scenario) -> EventModel | None:
    """The scenario's event model, or None when incidents and weather are both off."""
    damage_scripted = any(e.kind.value == "damage" for e in scenario.forced_events)
    if not (scenario.events.incidents or scenario.events.weather or damage_scripted):
        return None
    import events

    classes = list(scenario.class_names)
    loader = events.load_default if scenario.events.model == "default" else events.load_model
    args: list[object] = [] if scenario.events.model == "default" else [scenario.events.model]
    kwargs: dict[str, object] = {}
    if "lap_length_m" in inspect.signature(loader).parameters:
        kwargs["lap_length_m"] = scenario.track.lap_length_m
    return loader(*args, classes, **kwargs)


def _car_strategies(
    scenario: Scenario, strategies: StrategyAssignment | Strategy
) -> list[Strategy]:
    from engine.baselines import make_strategy

    if not isinstance(strategies, StrategyAssignment):
        strategies = StrategyAssignment(default=strategies)
    for number in strategies.per_car:
        scenario.entry_index(number)
    for number, given in [*strategies.per_car.items(), ("every car", strategies.default)]:
        if given is not None and not isinstance(given, Strategy):
            raise TypeError(
                f"the strategy for {number} is not a Strategy (it needs a name and "
                f"decide(obs, legal, generator)): {given!r}"
            )
    cache: dict[str, Strategy] = {}
    out: list[Strategy] = []
    for e in scenario.entries:
        if e.number in strategies.per_car:
            out.append(strategies.per_car[e.number])
        elif strategies.default is not None:
            out.append(strategies.default)
        else:
            if e.strategy not in cache:
                cache[e.strategy] = make_strategy(e.strategy)
            out.append(cache[e.strategy])
    return out


def _start_state(start: RaceSnapshot | None, replicas: int) -> tuple[RaceState | None, float]:
    if start is None:
        return None, 0.0
    one = RaceState.from_lists(start.state)
    rows = torch.zeros(replicas, dtype=torch.int64)
    return one.select(rows), start.race_time_s


def simulate(
    scenario: Scenario,
    strategies: StrategyAssignment | Strategy,
    replicas: int,
    seed: int,
    *,
    lap_model: LapModel | None = None,
    event_model: EventModel | None = None,
    forced: Sequence[ForcedEvent] = (),
    start: RaceSnapshot | None = None,
    record_laps: bool = False,
    chunk_replicas: int = 256,
    first_chunk: int = 0,
    progress: bool = False,
    threads: int | None = 1,
) -> RaceResult:
    """Simulate ``replicas`` races of ``scenario``; see the module docstring for chunking.

    ``threads``: torch intra-op threads while simulating (None: leave as set).
    """
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    with torch_threads(threads):
        return _simulate(
            scenario,
            strategies,
            replicas,
            seed,
            lap_model=lap_model,
            event_model=event_model,
            forced=forced,
            start=start,
            record_laps=record_laps,
            chunk_replicas=chunk_replicas,
            first_chunk=first_chunk,
            progress=progress,
        )


def _simulate(
    scenario: Scenario,
    strategies: StrategyAssignment | Strategy,
    replicas: int,
    seed: int,
    *,
    lap_model: LapModel | None,
    event_model: EventModel | None,
    forced: Sequence[ForcedEvent],
    start: RaceSnapshot | None,
    record_laps: bool,
    chunk_replicas: int,
    first_chunk: int,
    progress: bool,
) -> RaceResult:
    lap_model = lap_model if lap_model is not None else load_lap_model(scenario)
    if event_model is None:
        event_model = load_event_model(scenario)
    cars = _car_strategies(scenario, strategies)
    names = [s.name for s in cars]
    parts: list[RaceResult] = []
    n_chunks = -(-replicas // chunk_replicas)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=replicas, desc=f"simulate {scenario.name}", unit="race")
    for k in range(n_chunks):
        size = min(chunk_replicas, replicas - k * chunk_replicas)
        chunk = first_chunk + k
        state, t0 = _start_state(start, size)
        sim = ChunkSim(
            scenario,
            cars,
            size,
            seed,
            chunk,
            chunk * chunk_replicas,
            lap_model,
            event_model,
            forced,
            start=state,
            start_time_s=t0,
            record_laps=record_laps,
        )
        sim.run()
        parts.append(sim.result(names))
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()
    return RaceResult.concat(parts)


@dataclass(frozen=True)
class DecisionPoint:
    """The controlled car of some replicas is at the line and waits for a decision."""

    replicas: torch.Tensor
    """Replica indices, int64 ``[n]``."""
    obs: Observation
    legal: torch.Tensor
    """``[n, N_ACTIONS]`` bool."""


class RaceSim:
    """External control of one car per replica; every other car follows its strategy.

    All replicas share one race clock (they advance in the same windows), so ``advance``
    returns the replicas whose controlled car crossed the line in the current window and
    waits until ``act`` answers them all.
    """

    def __init__(
        self,
        scenario: Scenario,
        strategies: StrategyAssignment,
        replicas: int,
        seed: int,
        *,
        controlled_car: str,
        lap_model: LapModel | None = None,
        event_model: EventModel | None = None,
        forced: Sequence[ForcedEvent] = (),
        start: RaceSnapshot | None = None,
        record_laps: bool = False,
        threads: int | None = 1,
        chunk: int = 0,
        first_replica: int = 0,
    ) -> None:
        """``chunk`` and ``first_replica`` place these replicas in a larger run (random
        streams of that chunk, replica numbers from ``first_replica``), as a chunk of
        :func:`simulate` is placed."""
        self.scenario = scenario
        self.threads = threads
        self.controlled_car = controlled_car
        self.car = scenario.entry_index(controlled_car)
        lap_model = lap_model if lap_model is not None else load_lap_model(scenario)
        if event_model is None:
            event_model = load_event_model(scenario)
        cars = _car_strategies(scenario, strategies)
        self.strategy_names = [s.name for s in cars]
        self.strategy_names[self.car] = "external"
        state, t0 = _start_state(start, replicas)
        self.sim = ChunkSim(
            scenario,
            cars,
            replicas,
            seed,
            chunk,
            first_replica,
            lap_model,
            event_model,
            forced,
            start=state,
            start_time_s=t0,
            record_laps=record_laps,
            controlled_car=self.car,
        )
        self.replicas = replicas
        self._waiting: DecisionPoint | None = None
        self._at_boundary: RaceState | None = None
        """The state where :meth:`snapshot` stopped the clock, until ``advance`` goes on."""

    @property
    def done(self) -> torch.Tensor:
        """``[R]`` bool: the controlled car's race is over (finished or retired)."""
        s = self.sim.state
        return s.finished[:, self.car] | s.retired[:, self.car]

    @property
    def race_time_s(self) -> float:
        return float(self.sim.env.now)

    def advance(self) -> DecisionPoint | None:
        """Run until the controlled car of some replicas reaches the line; None at the end."""
        if self._waiting is not None:
            return self._waiting
        self._at_boundary = None
        if self.sim.over():
            return None
        env = self.sim.env
        self.sim.external.needed = env.event()
        with torch_threads(self.threads):
            env.run(until=env.any_of([self.sim.external.needed, self.sim.process]))
        pending = self.sim.external.pending
        if pending is None:
            if not self.sim.over():  # pragma: no cover - the stepper only stops to ask
                raise RuntimeError("race stopped without a pending decision")
            return None
        self._waiting = DecisionPoint(pending.replicas, pending.obs, pending.legal)
        return self._waiting

    def act(self, replicas: torch.Tensor, actions: torch.Tensor) -> None:
        """Decisions for the waiting replicas (every waiting replica, in any order)."""
        if self._waiting is None:
            raise RuntimeError("act() called with no decision pending; call advance() first")
        want = self._waiting.replicas
        if replicas.numel() != want.numel() or not bool(
            torch.equal(torch.sort(replicas).values, torch.sort(want).values)
        ):
            raise ValueError(
                f"act() must answer every waiting replica {want.tolist()}, got {replicas.tolist()}"
            )
        pos = {int(r): i for i, r in enumerate(replicas.tolist())}
        ordered = actions[torch.tensor([pos[int(r)] for r in want.tolist()])]
        external = self.sim.external
        external.actions = ordered.to(torch.int64)
        self._waiting = None
        assert external.given is not None
        external.given.succeed()

    def result(self) -> RaceResult:
        """Classification so far (complete once ``advance`` returned None)."""
        return self.sim.result(self.strategy_names)

    def snapshot(self, replica: int) -> RaceSnapshot:
        """The race of one replica at the end of the current clock window, to restart
        simulations from: the decision just given (call ``act`` first) and everything else
        at the line in that window has been served, so a race resumed from the snapshot
        with the same strategies runs on exactly as this one does (given the same random
        draws: a resumed race draws fresh ones). This race then waits at that boundary;
        ``advance`` continues it."""
        if self._waiting is not None:
            raise RuntimeError(
                "a decision is waiting: call act() first (the snapshot is taken at the end "
                "of the window that decision belongs to)"
            )
        env, ext = self.sim.env, self.sim.external
        state = self.sim.state
        if self._at_boundary is not None:  # already waiting at a boundary
            state = self._at_boundary
        elif not self.sim.over():
            ext.boundary = env.event()
            with torch_threads(self.threads):
                env.run(until=env.any_of([ext.boundary, self.sim.process]))
            if ext.boundary_state is not None:
                state, ext.boundary_state = ext.boundary_state, None
                self._at_boundary = state
        one = state.select(torch.tensor([replica]))
        return RaceSnapshot(
            scenario_name=self.scenario.name,
            race_time_s=float(env.now),
            state=one.to_lists(),
        )
