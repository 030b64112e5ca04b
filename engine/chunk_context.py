"""What one chunk of replicas derives, once, from its scenario, models and seed.

The stepper (:class:`engine.stepper.ChunkSim` and its phase mixins) reads a
:class:`ChunkContext` and never writes it: the race itself (every tensor that changes) lives in
:class:`engine.state.RaceState`. Building the context draws, in this order, the per-replica
event parameters (``params`` stream) and the weather (``weather`` stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.conditions import FlagFactors, WeatherGrid, draw_weather
from engine.field import FieldTable
from engine.risks import RiskTable
from engine.rng import ChunkStreams
from engine.scenario import Scenario
from engine.strategy import Strategy
from events.interface import EventModel, EventParams, ForcedEvent, ForcedKind
from world_model.interface import TYRE_AGE_IS_STINT_LAPS, LapModel


@dataclass(frozen=True)
class StrategyGroups:
    """The distinct strategy objects of a field, each called once per window for all of its
    cars that crossed the line."""

    strategies: tuple[Strategy, ...]
    """Each distinct strategy once, in order of first appearance in the entry list."""
    group_of_car: torch.Tensor
    """``[C]`` int64: index into ``strategies`` of each car's strategy."""

    @staticmethod
    def of(car_strategies: Sequence[Strategy]) -> StrategyGroups:
        groups: dict[int, int] = {}
        distinct: list[Strategy] = []
        group_of_car = []
        for st in car_strategies:
            if id(st) not in groups:
                groups[id(st)] = len(distinct)
                distinct.append(st)
            group_of_car.append(groups[id(st)])
        return StrategyGroups(tuple(distinct), torch.tensor(group_of_car))


@dataclass(frozen=True)
class ChunkContext:
    """Read-only inputs of one chunk's race: scenario, models, random streams and what the
    stepper derives from them. Tensors indexed ``[R]`` are per replica, ``[C]`` per car."""

    scenario: Scenario
    field: FieldTable
    n_replicas: int
    n_cars: int
    seed: int
    first_replica: int
    """Run-wide number of the chunk's replica 0 (results and observations use it)."""
    streams: ChunkStreams
    lap_model: LapModel
    event_model: EventModel | None
    forced: tuple[ForcedEvent, ...]
    """The scenario's scripted events, then the call's."""
    forced_car: tuple[ForcedEvent, ...]
    """The scripted events that happen to one car (puncture, failure, damage)."""
    window_s: float
    """Length of a clock window [s]."""
    duration_s: float | None
    """Race length [s] of a time-certain race, else None."""
    laps_target: int | None
    """Race length [laps] of a distance race, else None."""
    horizon_s: float
    """Race time [s] after which a car still running can no longer reach the line."""
    flag_factors: FlagFactors
    member: torch.Tensor
    """``[R]`` world-model ensemble member of each replica (its run-wide number)."""
    all_replicas: torch.Tensor
    """``[R]`` chunk-local replica indices 0..R-1."""
    car_rc: torch.Tensor
    """``[R, C]`` car index of every row."""
    class_rc: torch.Tensor
    """``[R, C]`` class index of every row."""
    neutral_scale: torch.Tensor
    """``[C]`` float64: fastest reference lap / the car's (a neutralisation's common speed)."""
    class_onehot: torch.Tensor
    """``[C, K]`` float32 one-hot class of each car."""
    groups: StrategyGroups
    controlled_car: int | None
    """Car index decided from outside (:class:`engine.race.RaceSim`), else None."""
    params: EventParams | None
    """Per-replica event parameters (None without an event model)."""
    weather: WeatherGrid
    risks: RiskTable
    """The field's risk priors per car (:mod:`engine.risks`)."""
    fuel_factor: torch.Tensor | None
    """``[R, C, K]`` fuel-use factor of each car's stint ``k`` (``risks`` stream); None
    without the fuel risk."""

    @property
    def tyre_age_is_stint_laps(self) -> bool:
        """The lap model reads its tyre-age input as laps since the last stop
        (:data:`~world_model.interface.TYRE_AGE_IS_STINT_LAPS`)."""
        return bool(getattr(self.lap_model, TYRE_AGE_IS_STINT_LAPS, False))

    def stint_fuel_factor(self, pit_stops: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Fuel-use factor of flat rows ``idx``'s current stint (stint = stops made so far,
        from the ``[R, C]`` ``pit_stops``); 1 without the fuel risk."""
        if self.fuel_factor is None:
            return torch.ones(idx.numel())
        k = self.fuel_factor.shape[2]
        stint = pit_stops.view(-1).index_select(0, idx).clamp(max=k - 1)
        return self.fuel_factor.view(-1, k)[idx, stint]

    @staticmethod
    def build(
        scenario: Scenario,
        car_strategies: Sequence[Strategy],
        replicas: int,
        seed: int,
        chunk: int,
        first_replica: int,
        lap_model: LapModel,
        event_model: EventModel | None,
        forced: Sequence[ForcedEvent] = (),
        controlled_car: int | None = None,
    ) -> ChunkContext:
        """Derive a chunk's context; raises if the scenario needs an event model and none
        was given."""
        field = FieldTable.build(scenario)
        forced_all = tuple(scenario.forced_events) + tuple(forced)
        needs_events = (
            scenario.events.incidents
            or scenario.events.weather
            or any(e.kind == ForcedKind.DAMAGE for e in forced_all)
        )
        if needs_events and event_model is None:
            raise ValueError(
                f"scenario {scenario.name!r} needs an event model (incidents, weather or "
                "scripted damage are on) and none was given"
            )
        streams = ChunkStreams.derive(seed, chunk)
        params = event_model.draw_params(replicas, streams.params) if event_model else None
        horizon_s = _horizon_s(scenario, field)
        weather = draw_weather(
            scenario, event_model, params, replicas, horizon_s, streams.weather, forced_all
        )
        risks = RiskTable.build([scenario.risks_of(e) for e in scenario.entries])
        ref = field.ref_lap_time_s.double()
        n_cars = field.n_cars
        return ChunkContext(
            scenario=scenario,
            field=field,
            n_replicas=replicas,
            n_cars=n_cars,
            seed=seed,
            first_replica=first_replica,
            streams=streams,
            lap_model=lap_model,
            event_model=event_model,
            forced=forced_all,
            forced_car=tuple(e for e in forced_all if e.car is not None),
            window_s=scenario.race.window_s,
            duration_s=scenario.race.duration_s,
            laps_target=scenario.race.laps,
            horizon_s=horizon_s,
            flag_factors=FlagFactors.from_scenario(scenario),
            member=torch.arange(replicas) + first_replica,
            all_replicas=torch.arange(replicas),
            car_rc=torch.arange(n_cars).expand(replicas, n_cars),
            class_rc=field.class_index.expand(replicas, n_cars),
            neutral_scale=ref.min() / ref,
            class_onehot=torch.nn.functional.one_hot(field.class_index, field.n_classes).float(),
            groups=StrategyGroups.of(car_strategies),
            controlled_car=controlled_car,
            params=params,
            weather=weather,
            risks=risks,
            fuel_factor=risks.draw_fuel_factors(replicas, streams.risks),
        )


def _horizon_s(scenario: Scenario, field: FieldTable) -> float:
    slowest = float(field.ref_lap_time_s.max())
    duration = scenario.race.duration_s
    if duration is not None:
        return duration + 6.0 * slowest + 3600.0
    assert scenario.race.laps is not None
    return scenario.race.laps * slowest * 2.0 + 3600.0
