"""``stintsim plan`` / ``python -m engine.pitwall``: the best plan found for a car, as a
pit-wall table (:mod:`engine.pitwall` builds it); ``--out`` writes the ``plan:`` file.

    stintsim plan my_race.toml --strategy tuned --replicas 64 --seed 1 --out plan.toml
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli_types import positive_int, random_seed
from engine.commands.options import add_chunk_argument
from engine.evaluate import write_atomic
from engine.pitwall import PitWallPlan, format_plan, make_plan
from engine.plan_file import PlanRefused
from engine.scenario import Scenario, ScenarioError
from engine.strategy import Strategy


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stintsim plan",
        description="The best plan found for a car, as a pit-wall table (per stop: lap and "
        "race-time window, fuel and energy level to fill to, tyres, driver in, time in the "
        "pit lane) with its risks; --out writes it as a plan: file.",
    )
    p.add_argument("scenario", help="shipped scenario name or scenario TOML")
    p.add_argument("--car", default=None, help="race number (default: the scenario's focus car)")
    p.add_argument(
        "--strategy",
        default="tuned",
        help="'tuned' (grid search of fixed plans, policies.tuned; default) or a strategy spec "
        "to write the plan from (e.g. fixed:laps=27,tyres=2, double-stint, a trained agent)",
    )
    p.add_argument(
        "--replicas", type=positive_int, default=64, help="races of the plan (default 64)"
    )
    p.add_argument(
        "--tune-replicas",
        type=positive_int,
        default=32,
        help="races per candidate of the tuned search (default 32; its seed is --seed + 1)",
    )
    p.add_argument("--seed", type=random_seed, default=0, help="random seed: same seed, same races")
    add_chunk_argument(p)
    p.add_argument("--out", default=None, metavar="FILE", help="write the plan: file (TOML)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="write on_conflict = refuse: refuse the plan if any race forces a change to it "
        "(default: adapt, counting the changes as a risk)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def fill_notes(p: PitWallPlan) -> dict[int, str]:
    """Stop lap -> the levels the stop fills to in the plan's races, as the table prints
    them (LMU's refill sets the level to fill to), for every fill type the file can hold."""
    notes = {}
    for row in p.stops:
        energy = "" if row.energy_to is None else f", energy to {100 * row.energy_to:.1f} %"
        notes[row.lap] = (
            f"stop {row.stop}: fills fuel to {100 * row.fuel_to:.1f} %{energy} (median of "
            f"{p.replicas} races, seed {p.seed})"
        )
    return notes


def _source(args: argparse.Namespace, scenario: Scenario, car: str) -> Strategy:
    from engine.baselines import make_strategy

    if args.strategy != "tuned":
        return make_strategy(args.strategy)
    from policies.tuned import tune_fixed_plan

    tuned = tune_fixed_plan(
        scenario, car, args.tune_replicas, args.seed + 1, chunk_replicas=args.chunk_replicas
    )
    return tuned.best


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from engine.commands.options import load_scenario_arg
    from engine.evaluate import focus_car

    try:
        scenario = load_scenario_arg(args.scenario)
        if scenario is None:
            return 2
        car = focus_car(scenario, args.car)
        source = _source(args, scenario, car)
        p = make_plan(
            scenario,
            car,
            source,
            args.replicas,
            args.seed,
            strict=args.strict,
            chunk_replicas=args.chunk_replicas,
        )
    except PlanRefused as exc:
        print(f"error: plan refused: {exc}", file=sys.stderr)
        return 2
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        header = (
            f"plan: file for car {car} of scenario {scenario.name!r}, written by 'stintsim plan'"
            f"\nfrom {p.source} ({args.replicas} races, seed {args.seed}); run it with"
            f"\n--strategy plan:{args.out}. Format: engine/plan_file.py and the README."
        )
        write_atomic(args.out, p.plan.to_toml(header, fill_notes(p)))
    print(json.dumps(p.to_dict()) if args.json else format_plan(p))
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
