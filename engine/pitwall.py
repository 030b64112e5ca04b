"""``stintsim plan SCENARIO``: the best plan found, as a table for the pit wall.

The plan comes from a strategy (``--strategy SPEC``, or ``tuned``: the grid search of
:mod:`policies.tuned`): its races are simulated, and the stops the car made most often (the
same laps and service in the most races) are written down as a ``plan:`` file
(:mod:`engine.plan_file`). That written plan is then raced on the same seed, and the table is
read from *its* races, so the table, the file and ``plan:FILE`` run anywhere else are the same
races. Per stop: the lap and race-time window of the pit entry over the races (race time as
h:mm:ss, 5th to 95th percentile), the level the tank and the energy allocation are filled to
(an absolute level, as LMU's refill sets it), tyres, the driver who gets in, the expected time
in the pit lane, and how often the race forced a change to the written stop; and the plan's
risks: P(running dry), P(tyre failure) (a puncture), P(a change forced by the race).

    stintsim plan my_race.toml --strategy tuned --replicas 64 --seed 1 --out plan.toml
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from data.entry import run_main
from engine.actions import ACTIONS, Fuel, Tyres
from engine.evaluate import DEFAULT_CHUNK_REPLICAS
from engine.plan_file import Plan, PlanStop, PlanStrategy
from engine.readable_state import hms
from engine.result import RaceResult
from engine.scenario import Scenario
from engine.strategy import Observation, Strategy
from world_model.interface import PaceMode


@dataclass
class DecisionLog:
    """Wraps a strategy and keeps every decision it makes: (replica, lap, action) rows."""

    inner: Strategy
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        act = self.inner.decide(obs, legal, generator)
        self.rows.append((obs.replica.numpy().copy(), obs.lap.long().numpy(), act.numpy().copy()))
        return act

    def by_replica(self) -> dict[int, list[tuple[int, int]]]:
        """Replica -> its (lap, action) decisions in lap order."""
        out: dict[int, list[tuple[int, int]]] = {}
        for rep, lap, act in self.rows:
            for r, la, a in zip(rep.tolist(), lap.tolist(), act.tolist(), strict=True):
                out.setdefault(r, []).append((la, a))
        return {r: sorted(v) for r, v in out.items()}


def written_plan(log: DecisionLog) -> Plan:
    """The stops made most often (the same laps and service in the most races) as a plan;
    the pace of every other lap is the pace the strategy chose most for them."""
    sequences: Counter[tuple[tuple[int, int], ...]] = Counter()
    paces: Counter[int] = Counter()
    for decisions in log.by_replica().values():
        sequences[tuple((la, a) for la, a in decisions if ACTIONS[a].pit)] += 1
        paces.update(int(ACTIONS[a].pace) for _, a in decisions if not ACTIONS[a].pit)
    pace = PaceMode(paces.most_common(1)[0][0]) if paces else PaceMode.NORMAL
    modal = sequences.most_common(1)[0][0] if sequences else ()
    stops = []
    for lap, a in modal:
        act = ACTIONS[a]
        stops.append(
            PlanStop(
                lap=lap,
                fuel=act.fuel,
                tyres=act.tyres,
                driver_change=act.driver_change,
                repair=act.repair,
                pace=None if act.pace == pace else act.pace,
            )
        )
    return Plan(stops=tuple(stops), pace=pace, on_conflict="adapt")


@dataclass(frozen=True)
class StopRow:
    """One written stop and what it looked like over the plan's races."""

    stop: int
    lap: int
    """The written lap (laps completed at the pit entry)."""
    lap_window: tuple[int, int]
    """The pit window: the first and last lap this stop can be made on at the car's nominal
    fuel and energy use, the other stops as written (the stint before and after it must fit
    a full tank with the rules' reserve)."""
    time_window_s: tuple[float, float]
    """Race time at the window's first and last line crossing [s] (5th percentile of the
    first, 95th of the last, over the races)."""
    entry_s: tuple[float, float]
    """5th and 95th percentile of the race time at the written pit entry [s]."""
    fuel_to: float
    """Median fuel level after the stop, fraction of the tank (the level to fill to)."""
    energy_to: float | None
    """Median energy level after the stop, fraction of the allocation (None: no energy)."""
    tyres: str
    driver_in: str
    stop_time_s: float
    """Mean time in the pit lane [s]."""
    races: float
    """Share of races that made this stop as written."""
    changed_by_race: float
    """Share of races where the race forced a change at this stop's lap."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time_window"] = [hms(t) for t in self.time_window_s]
        out["entry"] = [hms(t) for t in self.entry_s]
        return out


def longest_stint(scenario: Scenario, car: str) -> int:
    """Laps a full tank (and allocation) lasts at the car's nominal use with the rules'
    reserve: staying out needs ``fuel_margin`` laps' use left at the line."""
    e = scenario.entries[scenario.entry_index(car)]
    use = max(e.ref_fuel_per_lap, e.ref_energy_per_lap if scenario.class_of(e).has_energy else 0)
    return math.floor((1.0 - scenario.rules.fuel_margin * use) / use + 1e-9) + 1


@dataclass(frozen=True)
class PitWallPlan:
    scenario: str
    car: str
    source: str
    """The strategy the plan was written from."""
    replicas: int
    seed: int
    plan: Plan
    stops: tuple[StopRow, ...]
    p_running_dry: float
    p_tyre_failure: float
    p_changed_by_race: float
    """Share of races where the race forced any change to the written plan."""
    mean_class_position: float
    p_class_win: float
    conflicts: dict[str, int]
    """"lap L: reason" -> races, for every change the race forced."""
    changed_races: frozenset[int]
    """Replicas in which the race forced a change to the plan."""
    result: RaceResult = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "car": self.car,
            "source": self.source,
            "replicas": self.replicas,
            "seed": self.seed,
            "pace": self.plan.pace.name.lower(),
            "stops": [s.to_dict() for s in self.stops],
            "risks": {
                "p_running_dry": self.p_running_dry,
                "p_tyre_failure": self.p_tyre_failure,
                "p_changed_by_race": self.p_changed_by_race,
                "changes": self.conflicts,
            },
            "mean_class_position": self.mean_class_position,
            "p_class_win": self.p_class_win,
            "class_position": self.result.class_position[
                :, self.result.car_index(self.car)
            ].tolist(),
        }


def _tyres_label(t: Tyres) -> str:
    return {Tyres.KEEP: "keep", Tyres.TWO_SAME: "2 new, same compound"}.get(
        t, f"4 new {t.compound.name.lower() if t.compound is not None else ''}"
    )


def _stop_rows(
    scenario: Scenario, car: str, plan: Plan, result: RaceResult, changed: Counter[int]
) -> tuple[StopRow, ...]:
    laps = result.laps
    assert laps is not None
    c = scenario.entry_index(car)
    entry = scenario.entries[c]
    mine = np.flatnonzero(laps["car"] == c)
    lap, rep = laps["lap"][mine], laps["replica"][mine] - result.first_replica
    at_line = np.full((result.replicas, int(lap.max(initial=0)) + 2), np.nan)
    at_line[rep, lap] = laps["race_time_s"][mine]
    final_lap = int(np.median(result.laps_completed[:, c]))
    longest = longest_stint(scenario, car)
    written = [s.lap for s in plan.stops]
    rows = []
    for k, stop in enumerate(plan.stops):
        made = mine[(lap == stop.lap) & (laps["pit_in"][mine] == 1)]
        outs = mine[(lap == stop.lap + 1) & (laps["pit_out"][mine] == 1)]
        if made.size == 0 or outs.size == 0:
            continue
        before = written[k - 1] if k else 0
        after = written[k + 1] if k + 1 < len(written) else final_lap
        first = max(before + 1, after - longest)
        last = max(first, min(after - 1, before + longest))
        drivers = Counter(int(d) for d in laps["driver"][outs])
        has_energy = scenario.class_of(entry).has_energy
        rows.append(
            StopRow(
                stop=k + 1,
                lap=stop.lap,
                lap_window=(first, last),
                time_window_s=(
                    float(np.nanpercentile(at_line[:, min(first, at_line.shape[1] - 1)], 5)),
                    float(np.nanpercentile(at_line[:, min(last, at_line.shape[1] - 1)], 95)),
                ),
                entry_s=tuple(float(x) for x in np.percentile(laps["race_time_s"][made], [5, 95])),  # type: ignore[arg-type]
                fuel_to=float(np.median(laps["fuel_start"][outs])),
                energy_to=float(np.median(laps["energy_start"][outs])) if has_energy else None,
                tyres=_tyres_label(stop.tyres),
                driver_in=entry.drivers[drivers.most_common(1)[0][0]].name,
                stop_time_s=float(np.nanmean(laps["pit_time_s"][outs])),
                races=made.size / result.replicas,
                changed_by_race=changed[stop.lap] / result.replicas,
            )
        )
    return tuple(rows)


def race_plan(
    scenario: Scenario,
    car: str,
    plan: Plan,
    replicas: int,
    seed: int,
    *,
    name: str = "plan",
    chunk_replicas: int = DEFAULT_CHUNK_REPLICAS,
) -> tuple[RaceResult, PlanStrategy]:
    """The races of a written plan for ``car`` (every lap recorded), the others on their own."""
    from engine.race import StrategyAssignment, simulate

    strategy = PlanStrategy(name=f"plan:{name}", plan=plan)
    result = simulate(
        scenario,
        StrategyAssignment(per_car={car: strategy}),
        replicas,
        seed,
        record_laps=True,
        chunk_replicas=chunk_replicas,
    )
    return result, strategy


def make_plan(
    scenario: Scenario,
    car: str,
    source: Strategy,
    replicas: int,
    seed: int,
    *,
    strict: bool = False,
    chunk_replicas: int = DEFAULT_CHUNK_REPLICAS,
) -> PitWallPlan:
    """Write down ``source``'s most common stops for ``car`` and race that written plan.

    ``strict``: the plan refuses any change the race would force (raises
    :class:`PlanRefused` naming the stop, race and reason) instead of adapting and counting."""
    from engine.race import StrategyAssignment, simulate

    log = DecisionLog(source)
    simulate(
        scenario,
        StrategyAssignment(per_car={car: log}),
        replicas,
        seed,
        chunk_replicas=chunk_replicas,
    )
    plan = written_plan(log)
    if strict:
        plan = Plan(stops=plan.stops, pace=plan.pace, on_conflict="refuse")
    raced = race_plan(scenario, car, plan, replicas, seed, chunk_replicas=chunk_replicas)
    name = source.name
    splash = _last_fill_to_finish(plan)
    if splash is not None:
        # The last stop of a timed race need not fill up: race a fill "to the finish" on the
        # same races and keep it where the car finishes better (or equal, further or sooner).
        other = race_plan(scenario, car, splash, replicas, seed, chunk_replicas=chunk_replicas)
        if _score(other[0], car) < _score(raced[0], car):
            plan, raced, name = splash, other, f"{name}, last fill to the finish"
    return summarise_plan(scenario, car, name, plan, *raced)


def _last_fill_to_finish(plan: Plan) -> Plan | None:
    if not plan.stops or plan.stops[-1].fuel != Fuel.FULL:
        return None
    last = dataclasses.replace(plan.stops[-1], fuel=Fuel.TO_FINISH)
    return dataclasses.replace(plan, stops=(*plan.stops[:-1], last))


def _score(result: RaceResult, car: str) -> tuple[float, float, float]:
    """Lower is better: mean class position, then more laps, then an earlier finish."""
    c = result.car_index(car)
    return (
        float(result.class_position[:, c].mean()),
        -float(result.laps_completed[:, c].mean()),
        float(result.finish_time_s[:, c].mean()),
    )


def summarise_plan(
    scenario: Scenario,
    car: str,
    source: str,
    plan: Plan,
    result: RaceResult,
    strategy: PlanStrategy,
) -> PitWallPlan:
    c = result.car_index(car)
    inc = result.incidents
    mine = inc["car"] == c
    ran_dry = np.isin(inc["kind"], ["out_of_fuel", "ran_dry"])  # retired, or crawled in
    dry = np.unique(inc["replica"][mine & ran_dry]).size
    flat = np.unique(inc["replica"][mine & (inc["kind"] == "puncture")]).size
    by_lap: Counter[int] = Counter()
    for (lap, _), n in strategy.conflicts.items():
        by_lap[lap] += n
    return PitWallPlan(
        scenario=scenario.name,
        car=car,
        source=source,
        replicas=result.replicas,
        seed=result.seed,
        plan=plan,
        stops=_stop_rows(scenario, car, plan, result, by_lap),
        p_running_dry=dry / result.replicas,
        p_tyre_failure=flat / result.replicas,
        p_changed_by_race=len(strategy.changed_races) / result.replicas,
        mean_class_position=float(result.class_position[:, c].mean()),
        p_class_win=float((result.class_position[:, c] == 1).mean()),
        conflicts={f"lap {lap}: {why}": n for (lap, why), n in sorted(strategy.conflicts.items())},
        changed_races=frozenset(strategy.changed_races),
        result=result,
    )


def format_plan(p: PitWallPlan) -> str:
    lines = [
        f"{p.scenario}: plan for car {p.car} from {p.source}, {p.replicas} races (seed {p.seed});"
        f" laps between stops at {p.plan.pace.name.lower()} pace",
        f"{'stop':>4} {'lap':>4} {'window':>7} {'window time':>17} {'pit entry (5-95 %)':>19}"
        f" {'fuel to':>8} {'energy to':>9} {'tyres':<20} {'driver in':<14} {'in lane':>7}"
        f" {'changed':>7}",
    ]
    for s in p.stops:
        energy = "-" if s.energy_to is None else f"{100 * s.energy_to:.1f} %"
        lines.append(
            f"{s.stop:>4} {s.lap:>4} {s.lap_window[0]:>3}-{s.lap_window[1]:<3}"
            f" {hms(s.time_window_s[0]):>8}-{hms(s.time_window_s[1]):<8}"
            f" {hms(s.entry_s[0]):>9}-{hms(s.entry_s[1]):<9}"
            f" {100 * s.fuel_to:>6.1f} % {energy:>9} {s.tyres:<20} {s.driver_in[:14]:<14}"
            f" {s.stop_time_s:>5.1f} s {100 * s.changed_by_race:>5.1f} %"
        )
    if not p.stops:
        lines.append("  (no stop)")
    lines.append(
        f"risks: P(running dry) {p.p_running_dry:.3f}, P(tyre failure) {p.p_tyre_failure:.3f},"
        f" P(race forces a change) {p.p_changed_by_race:.3f}"
    )
    for what, n in p.conflicts.items():
        lines.append(f"  changed by the race: {what} ({n} races)")
    lines.append(
        f"outcome: mean class position {p.mean_class_position:.2f},"
        f" P(class win) {p.p_class_win:.3f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m engine.pitwall: the command (engine.commands.plan)
    from engine.commands.plan import main

    run_main(main)
