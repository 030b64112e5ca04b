"""The tuned baseline: the best fixed plan found by grid search on common random numbers.

A fixed plan stops every ``stint_laps`` laps (earlier only when the rules force it), changes
tyres every ``tyre_stints`` stints and drives every lap at one pace mode, with the engine's
rule strategy doing the rest (:class:`engine.baselines.RuleStrategy`: full tank, driver
change at every stop, wet tyres on a wet track). Every candidate is simulated on the same
seed, so each sees the same weather, incidents and lap noise, and the one with the best mean
class position of the car wins, or, for a team that weighs the bad races more, the best CVaR
of class position at a chosen level (the mean of the worst share of races). The search uses
its own seed, disjoint from the evaluation's, so the winner is judged on races it was not
chosen on.

Run as ``python -m policies.tuned SCENARIO`` (or ``stintsim tune``) it prints every plan
with its mean, tail and retirement rate, best first, and with ``--verify N`` runs the best
few again on fresh races, since the search's own figures flatter whichever plan won them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data.entry import run_main
from engine.backends import Backend
from engine.baselines import RuleStrategy, make_strategy
from engine.evaluate import DEFAULT_CHUNK_REPLICAS, evaluate
from engine.montecarlo import (
    CVAR_ALPHA,
    CVAR_METRIC,
    Comparison,
    Interval,
    Outcomes,
    StrategySummary,
    check_cvar_alpha,
    compare,
    cvar,
    cvar_label,
)
from engine.scenario import Scenario
from world_model.interface import PaceMode

TYRE_STINTS = (1.0, 2.0, 3.0, 4.0)
"""Tyre sets changed every 1 to 4 stints: four stints on one set is as far as a double or
triple stint is stretched in endurance racing, and the grid must reach past where the best plan
lies."""

PACES = (PaceMode.SAVE, PaceMode.NORMAL, PaceMode.PUSH)

DROP_CONFIDENCE = 0.95
"""Confidence, shared out over a round's comparisons, that a plan dropped while racing is
worse than the leader."""
MIN_DROP_REPLICAS = 32
"""Races before racing drops any plan: fewer make the paired intervals unreliable."""


def fixed_plan(
    stint_laps: float, tyre_stints: float, pace: PaceMode = PaceMode.NORMAL
) -> RuleStrategy:
    """A fixed plan as a strategy, named ``fixed:laps=L,tyres=K[,pace=P]`` (the spec
    ``engine.baselines.make_strategy`` rebuilds it from; normal pace is left out)."""
    name = f"fixed:laps={stint_laps:g},tyres={tyre_stints:g}"
    if pace != PaceMode.NORMAL:
        name += f",pace={pace.name.lower()}"
    return RuleStrategy(name=name, stint_laps=stint_laps, tyre_stints=tyre_stints, pace=pace)


def stint_grid(scenario: Scenario, car: str, shortest: int = 4) -> tuple[float, ...]:
    """Stint lengths worth trying: the longest stint a tank (or energy allocation) allows,
    with the rules' fuel margin, and the ``shortest - 1`` lengths below it."""
    e = scenario.entries[scenario.entry_index(car)]
    use = max(e.ref_fuel_per_lap, e.ref_energy_per_lap if scenario.class_of(e).has_energy else 0)
    longest = math.floor((1.0 - scenario.rules.fuel_margin * use) / use) + 1
    return tuple(float(n) for n in range(max(1, longest - shortest + 1), longest + 1))


@dataclass(frozen=True)
class PlanScore:
    """One candidate's figures on the search races (95 % intervals)."""

    plan: str
    class_position: Interval
    """Mean class position."""
    cvar_class_position: Interval
    """Mean class position of the worst ``TunedPlan.cvar_alpha`` share of races."""
    retired: Interval
    """Share of races the car does not finish."""
    races: int
    """Races the plan ran: all of them, or fewer if racing dropped it early."""

    def to_dict(self) -> dict:
        return {
            "plan": self.plan,
            "races": self.races,
            "class_position": self.class_position.to_dict(),
            "cvar_class_position": self.cvar_class_position.to_dict(),
            "retired": self.retired.to_dict(),
        }


@dataclass(frozen=True)
class TunedPlan:
    best: RuleStrategy
    table: list[PlanScore]
    """Every candidate, best first by the objective."""
    replicas: int
    seed: int
    cvar_alpha: float
    """Level of the CVaR column (and of the objective when ``by_cvar``)."""
    by_cvar: bool
    """Whether the plans were ranked by CVaR of class position instead of its mean."""
    round_replicas: int | None = None
    """Races per round when racing (plans significantly worse than the leader dropped after
    each round), None when every plan ran every race."""

    @property
    def objective(self) -> str:
        return cvar_label(self.cvar_alpha) if self.by_cvar else "mean class position"

    def to_dict(self) -> dict:
        return {
            "best": self.best.name,
            "objective": self.objective,
            "cvar_alpha": self.cvar_alpha,
            "replicas": self.replicas,
            "seed": self.seed,
            "round_replicas": self.round_replicas,
            "plans": [row.to_dict() for row in self.table],
        }


def _check_search(
    replicas: int, round_replicas: int | None, chunk_replicas: int, drop_confidence: float
) -> None:
    """Raise ValueError naming the first of the search's race counts out of range."""
    if replicas < 1:
        raise ValueError(f"the search needs at least one race per plan, got {replicas}")
    if round_replicas is not None and round_replicas < 1:
        raise ValueError(f"a round needs at least one race, got {round_replicas}")
    if chunk_replicas < 1:
        raise ValueError(f"chunk_replicas must be positive, got {chunk_replicas}")
    if not 0 < drop_confidence < 1:
        raise ValueError(
            f"drop_confidence must lie strictly between 0 and 1, got {drop_confidence}"
        )


def _check_grid(
    stints: Sequence[float], tyre_stints: Sequence[float], paces: Sequence[PaceMode]
) -> None:
    """Raise ValueError for an empty grid or a grid value that is not positive."""
    if not stints or not tyre_stints or not paces:
        raise ValueError("give at least one stint length, tyre interval and pace")
    for value, what in ((min(stints), "stint length"), (min(tyre_stints), "tyre interval")):
        if not value > 0:
            raise ValueError(f"every {what} must be a positive number of laps / stints")


def _worse_than_leader(order: list[int], against_leader: Comparison, metric: str) -> list[int]:
    """The plans of ``order`` (leader first) whose paired difference to the leader on
    ``metric`` lies above zero."""
    return [
        i
        for i, d in zip(order[1:], against_leader.differences, strict=True)
        if d.metrics[metric].low > 0
    ]


def _search_chunk(replicas: int, per_round: int, chunk_replicas: int, racing: bool) -> int:
    """Races per chunk: chunk_replicas, as without racing, when the rounds are made of them
    (the races are then the full grid's), else one chunk per round. Either way a round
    starts on a chunk boundary, so each round runs fresh races."""
    chunk = min(replicas, chunk_replicas)
    if racing and per_round % chunk:
        chunk = per_round
    return chunk


def tune_fixed_plan(
    scenario: Scenario,
    car: str,
    replicas: int,
    seed: int,
    *,
    stints: Sequence[float] | None = None,
    tyre_stints: Sequence[float] = TYRE_STINTS,
    paces: Sequence[PaceMode] = PACES,
    by_cvar: bool = False,
    cvar_alpha: float = CVAR_ALPHA,
    round_replicas: int | None = None,
    drop_confidence: float = DROP_CONFIDENCE,
    chunk_replicas: int = DEFAULT_CHUNK_REPLICAS,
    backend: Backend | None = None,
    progress: bool = False,
) -> TunedPlan:
    """Grid search over stint lengths, tyre multi-stinting and pace for ``car``.

    The best plan has the lowest mean class position, or ``by_cvar`` the lowest CVaR of class
    position at ``cvar_alpha`` (ties, common where the worst races are all retirements, go to
    the better mean); the table's CVaR column is at ``cvar_alpha`` either way.

    With ``round_replicas`` the plans race (F-race style): they run in rounds of that many
    races, and after each round (once :data:`MIN_DROP_REPLICAS` races have run) a plan whose
    objective is worse than the current leader's, paired race by race with an interval at
    ``drop_confidence`` shared out over the comparisons (Bonferroni), runs no more races,
    until one plan is left or every race has run. Survivors rank first; dropped plans
    follow, later drops first, each with the figures of the races it ran."""
    _check_search(replicas, round_replicas, chunk_replicas, drop_confidence)
    check_cvar_alpha(cvar_alpha)
    stints = tuple(stints or stint_grid(scenario, car))
    _check_grid(stints, tyre_stints, paces)
    candidates = [fixed_plan(n, k, p) for n in stints for k in tyre_stints for p in paces]
    racing = round_replicas is not None and round_replicas < replicas
    per_round = round_replicas if racing else replicas
    chunk = _search_chunk(replicas, per_round, chunk_replicas, racing)
    metric = CVAR_METRIC if by_cvar else "class_position"

    def rank(i: int) -> tuple[float, ...]:
        """Plan ``i``'s sort key: the point estimates the summaries report."""
        positions = np.asarray(runs[i].class_position, dtype=np.float64)
        mean = float(positions.mean())
        return (float(cvar(positions, cvar_alpha)), mean) if by_cvar else (mean,)

    def rows(group: list[int]) -> list[tuple[str, str, Outcomes]]:
        return [(candidates[i].name, candidates[i].name, runs[i]) for i in group]

    def summaries(group: list[int]) -> list[StrategySummary]:
        """The group's plans with their figures on the races they all ran, best first."""
        found = compare(scenario.name, car, seed, rows(group), cvar_alpha=cvar_alpha).strategies
        return [found[j] for j in sorted(range(len(group)), key=lambda j: rank(group[j]))]

    runs: dict[int, Outcomes] = {}
    alive = list(range(len(candidates)))
    dropped: list[list[int]] = []  # the plans dropped after each round, in order
    done = 0
    while not runs or (done < replicas and len(alive) > 1):
        n = min(per_round, replicas - done)
        ev = evaluate(
            scenario,
            [candidates[i] for i in alive],
            n,
            seed,
            car=car,
            backend=backend,
            chunk_replicas=chunk,
            first_chunk=done // chunk,
            progress=progress,
            cvar_alpha=cvar_alpha,
        )
        for i, o in zip(alive, ev.outcomes.values(), strict=True):
            runs[i] = Outcomes.concat([runs[i], o]) if i in runs else o
        done += n
        if not racing or done >= replicas or done < MIN_DROP_REPLICAS:
            continue
        # Bonferroni over the comparisons with the leader: the chance of dropping a plan
        # as good as the leader stays below 1 - drop_confidence per round.
        level = 1.0 - (1.0 - drop_confidence) / (len(alive) - 1)
        order = sorted(alive, key=rank)
        against_leader = compare(
            scenario.name, car, seed, rows(order), level, cvar_alpha=cvar_alpha
        )
        worse = _worse_than_leader(order, against_leader, metric)
        if worse:
            dropped.append(worse)
            alive = [i for i in alive if i not in worse]

    table = [_plan_score(sm) for group in [alive, *reversed(dropped)] for sm in summaries(group)]
    best = next(c for c in candidates if c.name == table[0].plan)
    return TunedPlan(
        best=best,
        table=table,
        replicas=replicas,
        seed=seed,
        cvar_alpha=cvar_alpha,
        by_cvar=by_cvar,
        round_replicas=per_round if racing else None,
    )


def _plan_score(summary: StrategySummary) -> PlanScore:
    return PlanScore(
        plan=summary.label,
        class_position=summary.metrics["class_position"],
        cvar_class_position=summary.metrics[CVAR_METRIC],
        retired=summary.metrics["retired"],
        races=summary.replicas,
    )


def verify(
    scenario: Scenario,
    car: str,
    tuned: TunedPlan,
    replicas: int,
    seed: int,
    *,
    top: int = 3,
    chunk_replicas: int = DEFAULT_CHUNK_REPLICAS,
    backend: Backend | None = None,
    progress: bool = False,
) -> Comparison:
    """The ``top`` best plans of a search run again on ``replicas`` races of another ``seed``,
    compared (paired) against the search's winner, with the CVaR at the search's level."""
    if top < 1:
        raise ValueError(f"verify at least one plan, got {top}")
    if seed == tuned.seed:
        raise ValueError("verify on another seed than the search's: its races chose the winner")
    return evaluate(
        scenario,
        [make_strategy(row.plan) for row in tuned.table[:top]],
        replicas,
        seed,
        car=car,
        backend=backend,
        chunk_replicas=min(replicas, chunk_replicas),
        progress=progress,
        cvar_alpha=tuned.cvar_alpha,
    ).comparison


def format_table(tuned: TunedPlan, scenario: str, car: str) -> str:
    from engine.report import format_interval, text_grid

    racing = tuned.round_replicas is not None
    races = (
        f"up to {tuned.replicas} races each, raced in rounds of {tuned.round_replicas}"
        if racing
        else f"{tuned.replicas} races each"
    )
    head = (
        f"{scenario}: car #{car}, {len(tuned.table)} fixed plans, {races}, "
        f"seed {tuned.seed}, ranked by {tuned.objective} (95 % intervals)"
    )
    rows = [
        [
            str(rank),
            row.plan,
            *([str(row.races)] if racing else []),
            format_interval("class_position", row.class_position),
            format_interval(CVAR_METRIC, row.cvar_class_position),
            format_interval("retired", row.retired),
        ]
        for rank, row in enumerate(tuned.table, start=1)
    ]
    header = [
        "rank",
        "plan",
        *(["races"] if racing else []),
        "mean class position",
        cvar_label(tuned.cvar_alpha),
        "P(retired)",
    ]
    grid = text_grid(header, rows)
    return f"{head}\n\n{grid}\n\nbest: {tuned.best.name}"


if __name__ == "__main__":  # python -m policies.tuned: the command (engine.commands.tune)
    from engine.commands.tune import main

    run_main(main)
