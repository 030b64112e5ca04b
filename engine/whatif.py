"""What-if scripting: change the race, force events, start mid-race, compare decisions.

A strategist's notebook, one immutable :class:`WhatIf` per question::

    from engine.whatif import WhatIf

    w = (
        WhatIf.load("test_race", replicas=16, seed=7)
        .change(**{"rules.min_pit_time_s": 30.0})   # a rule
        .pace("2", factor=0.995)                     # car 2 half a percent quicker
        .force("sc@12m", "rain@15m-25m", "puncture:1@lap8")
    )
    result = w.compare(["fuel-reserve", "fixed:laps=5"])
    print(result.table())

    here = w.start_from(w.snapshot(after="12m"))       # the safety car just came out
    print(here.compare(here.decisions([0, 2])).table())  # pit now, or stay out 2 laps?

Every candidate runs on the same random numbers, so differences are paired. From a race
state (a :class:`~engine.race.RaceSnapshot` taken from a simulated race or loaded from JSON),
:meth:`WhatIf.decisions` builds "pit now" / "stay out N laps" candidates for the focus car.

The command line (:mod:`engine.commands.whatif`) does the same: ``stintsim whatif SCENARIO
--force "sc@3h12m" --force "rain@14h-17h" [--from-state FILE] --strategy A --strategy B
--replicas N --seed S``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data.entry import run_main
from engine.actions import ACTION_TABLE, Fuel, Tyres, action_index
from engine.evaluate import Evaluation, evaluate, focus_car, sample_races
from engine.forcing import ForcingError, format_event, parse_duration, parse_event
from engine.montecarlo import CVAR_ALPHA
from events.interface import ForcedEvent
from world_model.interface import PaceMode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from engine.backends import Backend
    from engine.montecarlo import Comparison, Interval, Outcomes
    from engine.race import RaceResult, RaceSim, RaceSnapshot
    from engine.scenario import Scenario
    from engine.strategy import Observation, Strategy
    from events.interface import EventModel
    from world_model.interface import LapModel

_STAY_OUT = action_index(PaceMode.NORMAL, pit=False)


@dataclass
class PitAfter:
    """A candidate decision for one car: stop at the line where it has completed ``pit_lap``
    laps (with ``fuel``, ``tyres`` and ``driver_change``), and follow ``then`` (a strategy
    spec or object) everywhere else.

    With ``hold`` it stays out before the stop whenever staying out is legal (when it is not,
    say the tank cannot make another lap, it defers to ``then``): "stay out N laps, then pit".
    Without, ``then`` decides before the stop too: "``then`` plus one extra stop". If the
    requested stop is illegal it makes the first legal stop with a full tank instead.
    """

    pit_lap: int
    """Laps completed at the line where the car pits (``Observation.lap``)."""
    then: str | Strategy
    fuel: Fuel = Fuel.FULL
    tyres: Tyres = Tyres.FOUR_MEDIUM
    driver_change: bool = False
    hold: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        from engine.baselines import make_strategy

        self._then = make_strategy(self.then) if isinstance(self.then, str) else self.then
        self._pit = action_index(
            PaceMode.NORMAL,
            pit=True,
            fuel=self.fuel,
            tyres=self.tyres,
            driver_change=self.driver_change,
        )
        if not self.name:
            self.name = f"pit@lap{self.pit_lap}"

    def __getstate__(self) -> dict[str, Any]:
        # ship the spec, not the built strategy (Ray workers rebuild it)
        state = dict(self.__dict__)
        state.pop("_then", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        actions = self._then.decide(obs, legal, generator).clone()
        lap = obs.lap.round().long()
        if self.hold:
            before = (lap < self.pit_lap) & legal[:, _STAY_OUT]
            actions[before] = _STAY_OUT
        at = lap == self.pit_lap
        if bool(at.any()):
            full_stops = legal & ACTION_TABLE.pit & (ACTION_TABLE.fuel == int(Fuel.FULL))
            first_full = torch.where(
                full_stops.any(dim=1), full_stops.long().argmax(dim=1), actions
            )
            wanted = torch.where(
                legal[:, self._pit], torch.full_like(actions, self._pit), first_full
            )
            actions[at] = wanted[at]
        return actions


def forced_in_the_past(
    scenario: Scenario, events: Sequence[ForcedEvent], start: RaceSnapshot
) -> list[str]:
    """A race resumed from ``start`` cannot replay its past: a car event on a lap the car has
    already completed (or at a time already gone), or a neutralisation that has already ended,
    never happens. One message per such event, so it is reported instead of silently dropped
    (it may be in the state already, when the state was saved with the same events)."""
    t0 = start.race_time_s
    laps = start.state["lap"][0]
    out = []
    for e in events:
        text = format_event(e)
        if e.car is not None:
            done = laps[scenario.entry_index(e.car)]
            if e.lap is not None and e.lap <= done:
                out.append(
                    f"{text}: car {e.car} has completed lap {done} in the saved state, so lap "
                    f"{e.lap} is in its past: the event is not replayed"
                )
            elif e.lap is None and e.start_s is not None and e.start_s < t0:
                out.append(
                    f"{text}: {e.start_s:g} s is before the saved state's race time {t0:g} s: "
                    "the event is not replayed"
                )
        elif e.end_s is not None and e.end_s <= t0:
            out.append(
                f"{text}: ends at {e.end_s:g} s, before the saved state's race time {t0:g} s: "
                "the event is not replayed"
            )
    return out


@dataclass(frozen=True)
class WhatIfResult:
    """The answer to a what-if: the evaluation with its table, JSON, figure and report."""

    evaluation: Evaluation
    question: WhatIf
    """The what-if that was answered (for sample races in the report)."""
    strategies: tuple[str | Strategy, ...]

    @property
    def comparison(self) -> Comparison:
        return self.evaluation.comparison

    @property
    def outcomes(self) -> dict[str, Outcomes]:
        return self.evaluation.outcomes

    def figure(self) -> Figure:
        """Outcome distributions of every candidate side by side."""
        from engine.plots import outcome_distributions

        return outcome_distributions(self.evaluation.outcomes)

    def report(self, path: str | Path, races: int = 4) -> list[str]:
        """Write the PDF (``.pdf``) or HTML (``.html``) report: the table, the outcome
        distributions and the race plots of ``races`` sample races per candidate; returns
        the figure captions."""
        from engine.report import write_report

        sample = self.question.races(self.strategies, replicas=races)
        title = f"what-if: {self.comparison.scenario}"
        return write_report(path, self.evaluation, sample, title=title)

    def table(self) -> str:
        from engine.report import format_table

        return format_table(self.evaluation.comparison)

    def to_dict(self) -> dict:
        return self.evaluation.comparison.to_dict()

    def difference(self, candidate: str, metric: str = "class_position") -> Interval:
        """The paired interval of ``candidate`` minus the first strategy on ``metric``."""
        for d in self.evaluation.comparison.differences:
            if d.candidate == candidate:
                return d.metrics[metric]
        raise KeyError(f"no candidate {candidate!r}")


@dataclass(frozen=True)
class WhatIf:
    """One what-if question: a scenario with changes, forced events and a start state."""

    scenario: Scenario
    replicas: int = 64
    seed: int = 0
    car: str | None = None
    """Race number the candidates drive (default: the scenario's focus car)."""
    forced: tuple[ForcedEvent, ...] = ()
    start: RaceSnapshot | None = None
    chunk_replicas: int = 64
    lap_model: LapModel | None = None
    event_model: EventModel | None = None

    @classmethod
    def load(
        cls, scenario: str | Path | Scenario, *, replicas: int = 64, seed: int = 0, **kw: Any
    ) -> WhatIf:
        """A what-if on a shipped scenario name, a TOML path or a loaded scenario."""
        from engine.scenario import load_scenario

        s = scenario if not isinstance(scenario, str | Path) else load_scenario(scenario)
        return cls(scenario=s, replicas=replicas, seed=seed, **kw)

    @property
    def focus(self) -> str:
        return focus_car(self.scenario, self.car)

    def with_(self, **fields: Any) -> WhatIf:
        """A copy with settings changed (``replicas``, ``seed``, ``car`` ...)."""
        return dataclasses.replace(self, **fields)

    def change(self, **dotted_changes: Any) -> WhatIf:
        """A copy with scenario fields changed by dotted path (see ``scenario_with``), e.g.
        ``change(**{"rules.min_pit_time_s": 40, "events.weather": False})``."""
        from engine.scenario import scenario_with

        return self.with_(scenario=scenario_with(self.scenario, **dotted_changes))

    def pace(
        self, car: str, *, factor: float | None = None, lap_time_s: float | None = None
    ) -> WhatIf:
        """A copy where ``car``'s reference lap time is multiplied by ``factor`` (0.99: one
        percent quicker) or set to ``lap_time_s`` [s]."""
        if (factor is None) == (lap_time_s is None):
            raise ValueError("give exactly one of factor and lap_time_s")
        entry = self.scenario.entries[self.scenario.entry_index(car)]
        new = lap_time_s if lap_time_s is not None else entry.ref_lap_time_s * factor
        return self.change(**{f"entries.{car}.ref_lap_time_s": float(new)})

    def field_strategy(self, spec: str) -> WhatIf:
        """A copy where every car but the focus car drives ``spec`` (a strategy spec as
        ``engine.baselines.make_strategy`` reads it, e.g. ``"double-stint:rain=off"``)
        instead of its scenario strategy: what the rest of the field does decides many
        what-ifs (whether it stops for rain, under a safety car, how hard it pushes)."""
        from engine.baselines import make_strategy

        make_strategy(spec)  # a bad spec fails here (ValueError naming it), not in every race
        others = [e.number for e in self.scenario.entries if e.number != self.focus]
        return self.change(**{f"entries.{n}.strategy": spec for n in others})

    def force(self, *events: str | ForcedEvent) -> WhatIf:
        """A copy with events forced on every race: script text (``"sc@3h12m"``,
        ``"rain@14h-17h"``, ``"puncture:7@lap120"``, see :mod:`engine.forcing`) or events."""
        from engine.scenario import ScenarioError, check_forced_in_race

        parsed = tuple(parse_event(e) if isinstance(e, str) else e for e in events)
        numbers = {e.number for e in self.scenario.entries}
        for e in parsed:
            if e.car is not None and e.car not in numbers:
                raise ForcingError(f"{format_event(e)}: car {e.car!r} is not an entry")
            try:
                check_forced_in_race(self.scenario, (e,), f"scenario {self.scenario.name!r}")
            except ScenarioError as exc:
                raise ForcingError(f"{format_event(e)}: {exc}") from None
        return self.with_(forced=self.forced + parsed)

    def start_from(self, state: RaceSnapshot | str | Path) -> WhatIf:
        """A copy whose races start from a race state (a snapshot or its JSON file)."""
        from engine.race import RaceSnapshot

        snap = state if not isinstance(state, str | Path) else RaceSnapshot.load(state)
        where = f"race state {state}" if isinstance(state, str | Path) else "race state"
        if snap.scenario_name != self.scenario.name:
            raise ValueError(
                f"{where} is of scenario {snap.scenario_name!r}, not {self.scenario.name!r}"
            )
        cars = len(snap.state.get("lap", [[]])[0])
        if cars != len(self.scenario.entries):
            raise ValueError(
                f"{where} has {cars} cars; scenario {self.scenario.name!r} has "
                f"{len(self.scenario.entries)} entries"
            )
        return self.with_(start=snap)

    def events_in_the_past(self) -> list[str]:
        """Why each forced event that a race resumed from the saved state cannot replay will
        not happen (empty without a saved state); the command prints them as warnings."""
        if self.start is None:
            return []
        return forced_in_the_past(self.scenario, self.forced, self.start)

    def focus_race(self, replicas: int = 1, start: RaceSnapshot | None = None) -> RaceSim:
        """This what-if's race over ``replicas`` replicas (from ``start``, or from the grid),
        the focus car's decisions left to the caller (``advance`` / ``act``), every other car
        on its scenario strategy."""
        from engine.race import RaceSim, StrategyAssignment

        return RaceSim(
            self.scenario,
            StrategyAssignment(default=None, per_car={}),
            replicas,
            self.seed,
            controlled_car=self.focus,
            lap_model=self.lap_model,
            event_model=self.event_model,
            forced=self.forced,
            start=start,
        )

    def snapshot(
        self,
        at_lap: int | None = None,
        *,
        after: str | float | None = None,
        strategy: str | Strategy | None = None,
        replica: int = 0,
    ) -> RaceSnapshot:
        """Run the race (with the forced events so far) until the focus car completes lap
        ``at_lap``, or crosses the line at or after race time ``after`` (seconds or text such
        as ``"3h12m"``: with ``force("sc@3h12m")``, "the safety car just came out"), and
        return that moment's state in race ``replica``. The focus car drives ``strategy``
        (default its scenario strategy), the others their scenario strategies."""
        from engine.baselines import make_strategy

        if (at_lap is None) == (after is None):
            raise ValueError("give exactly one of at_lap and after")
        after_s = parse_duration(after) if isinstance(after, str) else after
        car = self.focus
        spec = strategy or self.scenario.entries[self.scenario.entry_index(car)].strategy
        strat = make_strategy(spec) if isinstance(spec, str) else spec
        sim = self.focus_race(replica + 1, self.start)
        generator = torch.Generator().manual_seed(self.seed)
        while (point := sim.advance()) is not None:
            rows = point.replicas == replica
            if bool(rows.any()):
                lap = int(point.obs.lap[rows][0].round())
                time_s = float(point.obs.race_time_s[rows][0])
                if (at_lap is not None and lap >= at_lap) or (
                    after_s is not None and time_s >= after_s
                ):
                    # the decision at this line is the strategy's; the state is the
                    # window's end, once everything at the line has been served
                    sim.act(point.replicas, strat.decide(point.obs, point.legal, generator))
                    return sim.snapshot(replica)
            sim.act(point.replicas, strat.decide(point.obs, point.legal, generator))
        goal = f"complete lap {at_lap}" if at_lap is not None else f"cross the line after {after}"
        raise ValueError(f"car #{car} did not {goal} in race {replica}")

    def decisions(
        self,
        pit_after: Sequence[int],
        *,
        then: str | Strategy | None = None,
        tyres: Tyres = Tyres.FOUR_MEDIUM,
        driver_change: bool = False,
    ) -> list[PitAfter]:
        """Candidates "stay out k more laps, then pit" for each k of ``pit_after`` from the
        start state, then ``then`` (default the car's scenario strategy).

        The state's own line crossing is behind it (its decision was taken), so k = 0,
        "pit now", stops at the next crossing: lap ``laps completed + 1``.
        """
        if self.start is None:
            raise ValueError("decisions need a start state: use start_from(...) first")
        car = self.focus
        lap0 = snapshot_lap(self.start, self.scenario, car)
        base = then or self.scenario.entries[self.scenario.entry_index(car)].strategy
        return [
            PitAfter(
                lap0 + 1 + k,
                base,
                tyres=tyres,
                driver_change=driver_change,
                name="pit now" if k == 0 else f"stay out {k}",
            )
            for k in pit_after
        ]

    def compare(
        self,
        strategies: Sequence[str | Strategy],
        *,
        precision: float | None = None,
        backend: Backend | None = None,
        progress: bool = False,
        cvar_alpha: float = CVAR_ALPHA,
    ) -> WhatIfResult:
        """Every candidate for the focus car on common random numbers; the first is the
        baseline of the paired differences; the CVaR averages the worst ``cvar_alpha``
        share of races."""
        ev = evaluate(
            self.scenario,
            strategies,
            self.replicas,
            self.seed,
            car=self.car,
            precision=precision,
            backend=backend,
            chunk_replicas=self.chunk_replicas,
            forced=self.forced,
            start=self.start,
            lap_model=self.lap_model,
            event_model=self.event_model,
            progress=progress,
            forced_text=[format_event(e) for e in self.forced],
            cvar_alpha=cvar_alpha,
        )
        return WhatIfResult(ev, self, tuple(strategies))

    def races(
        self, strategies: Sequence[str | Strategy], replicas: int = 4
    ) -> Mapping[str, RaceResult]:
        """A few races per candidate with every lap recorded (for plots and inspection)."""
        return sample_races(
            self.scenario,
            strategies,
            self.seed,
            car=self.car,
            replicas=replicas,
            forced=self.forced,
            start=self.start,
            lap_model=self.lap_model,
            event_model=self.event_model,
        )


def snapshot_lap(snapshot: RaceSnapshot, scenario: Scenario, car: str) -> int:
    """Laps completed by race number ``car`` in a race state of ``scenario``."""
    laps = snapshot.state["lap"][0]
    return int(laps[scenario.entry_index(car)])


if __name__ == "__main__":  # python -m engine.whatif: the command (engine.commands.whatif)
    from engine.commands.whatif import main

    run_main(main)
