"""``python -m engine.simulate``: run races of a scenario and print the classification.

    python -m engine.simulate test_race --replicas 8 --seed 1
    python -m engine.simulate lemans_24h --replicas 64 --seed 7 --strategy double-stint --json
    python -m engine.simulate test_race --replicas 2 --seed 3 --laps-out runs/sim.sqlite

(also ``stintsim simulate``; ``python -m engine.simulate`` runs this module.) Prints the
classification of replica 0 and, over all replicas, each car's mean finishing
position, class-win probability and retirement rate. ``--laps-out`` writes every lap in the
lap store's schema (one session per replica).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from data.entry import run_main
from engine.cli_types import positive_int, random_seed
from engine.readable_state import hms
from engine.result import RaceResult, retirements


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.simulate",
        description="Simulate races of a scenario and print the classification.",
    )
    p.add_argument(
        "scenario", help="shipped scenario name (lemans_24h, six_hours, test_race) or TOML"
    )
    p.add_argument("--replicas", type=positive_int, default=1, help="races to simulate (default 1)")
    p.add_argument("--seed", type=random_seed, default=0, help="random seed: same seed, same races")
    p.add_argument(
        "--strategy",
        default=None,
        help="strategy spec for every car (default: each entry's own), e.g. fixed:laps=12, "
        "fuel-reserve:laps=1.5, double-stint, opportunistic, plan:FILE, module.path:factory",
    )
    p.add_argument(
        "--car-strategy",
        action="append",
        default=[],
        metavar="NUMBER=SPEC",
        help="strategy of one car (repeatable), e.g. 7=opportunistic",
    )
    p.add_argument(
        "--laps-out",
        default=None,
        help="write every lap, pit stop, flag period and incident to this SQLite lap store",
    )
    p.add_argument(
        "--chunk", type=positive_int, default=256, help="replicas per batch (memory bound)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def summary(result: RaceResult) -> list[dict[str, Any]]:
    """Per car over all replicas: mean position overall and in class, class win, retirement."""
    rows = []
    for c, number in enumerate(result.car_numbers):
        rows.append(
            {
                "number": number,
                "class": result.car_classes[c],
                "team": result.car_teams[c],
                "strategy": result.strategy_names[c],
                "mean_position": float(result.finish_position[:, c].mean()),
                "mean_class_position": float(result.class_position[:, c].mean()),
                "class_win": float((result.class_position[:, c] == 1).mean()),
                "mean_laps": float(result.laps_completed[:, c].mean()),
                "mean_pit_stops": float(result.pit_stops[:, c].mean()),
                "retired": float(result.retired[:, c].mean()),
            }
        )
    rows.sort(key=lambda r: r["mean_position"])
    return rows


def _clock(seconds: float) -> str:
    return hms(seconds) if np.isfinite(seconds) else "-"


def _print_text(result: RaceResult) -> None:
    print(f"{result.scenario_name}: replica 0 of {result.replicas} (seed {result.seed})")
    head = f"{'pos':>3} {'cls':>3} {'no':>4} {'class':<9} {'laps':>4} {'time':>10}"
    print(f"{head} {'stops':>5}  team")
    out = retirements(result, 0)
    for row in result.classification(0):
        c = result.car_numbers.index(row["number"])
        status = f" (retired: {out[c][1]})" if row["retired"] and c in out else ""
        print(
            f"{row['position']:>3} {row['class_position']:>3} {row['number']:>4} "
            f"{row['class']:<9} {row['laps']:>4} {_clock(row['time_s']):>10} "
            f"{row['pit_stops']:>5}  {row['team']}{status}"
        )
    if result.replicas > 1:
        print(f"\nover {result.replicas} replicas:")
        print(f"{'no':>4} {'class':<9} {'mean pos':>8} {'class win':>9} {'retired':>7}  strategy")
        for row in summary(result):
            print(
                f"{row['number']:>4} {row['class']:<9} {row['mean_position']:>8.2f} "
                f"{row['class_win']:>9.3f} {row['retired']:>7.3f}  {row['strategy']}"
            )
    fp = result.flag_periods
    print(
        f"\nneutralisations per race: {len(fp['kind']) / result.replicas:.2f}; "
        f"incidents per race: {len(result.incidents['car']) / result.replicas:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from engine.baselines import make_strategy
    from engine.export import write_lap_store
    from engine.plan_file import PlanRefused
    from engine.race import StrategyAssignment, simulate
    from engine.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
        per_car = {}
        for item in args.car_strategy:
            number, sep, spec = item.partition("=")
            if not sep:
                raise ValueError(f"--car-strategy {item!r}: expected NUMBER=SPEC")
            scenario.entry_index(number)
            per_car[number] = make_strategy(spec)
        default = make_strategy(args.strategy) if args.strategy else None
        if args.replicas < 1:
            raise ValueError("--replicas must be >= 1")
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = simulate(
            scenario,
            StrategyAssignment(default=default, per_car=per_car),
            args.replicas,
            args.seed,
            record_laps=args.laps_out is not None,
            chunk_replicas=args.chunk,
            progress=not args.no_progress and not args.json,
        )
    except PlanRefused as exc:  # a plan: file the race cannot run as written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    written = 0
    if args.laps_out:
        label = (
            f"{scenario.name}/seed{args.seed}/replicas{args.replicas}/{args.strategy or 'entries'}"
        )
        written = write_lap_store(result, scenario, args.laps_out, label)
        print(f"wrote {written} laps to {args.laps_out}", file=sys.stderr)
    if args.json:
        out = {
            "scenario": result.scenario_name,
            "seed": result.seed,
            "replicas": result.replicas,
            "classification_replica0": result.classification(0),
            "summary": summary(result),
            "neutralisations_per_race": len(result.flag_periods["kind"]) / result.replicas,
            "laps_written": written,
            "mean_winner_laps": float(np.max(result.laps_completed, axis=1).mean()),
        }
        print(json.dumps(out))
    else:
        _print_text(result)
    return 0


if __name__ == "__main__":
    run_main(main)
