"""``python -m policies.tuned`` / ``stintsim tune``: find the best fixed plan (stint length,
tyre multi-stinting, pace) for one car by a grid search on common random numbers, optionally
raced in rounds and verified on fresh races (the command line of :mod:`policies.tuned`).

The command layer sits on top of every layer: this module reaches the policies package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from data.entry import run_main
from engine.backends import add_backend_arguments
from engine.cli_types import finite_float, open_unit, positive_int, random_seed
from engine.commands.options import add_chunk_argument
from engine.montecarlo import CVAR_ALPHA
from policies.tuned import (
    DROP_CONFIDENCE,
    MIN_DROP_REPLICAS,
    PACES,
    TYRE_STINTS,
    format_table,
    tune_fixed_plan,
    verify,
)
from world_model.interface import PaceMode


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _paces(text: str) -> tuple[PaceMode, ...]:
    names = [x.strip().upper() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in PaceMode.__members__]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated paces out of save, normal, push, got {text!r}"
        )
    return tuple(PaceMode[n] for n in names)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m policies.tuned",
        description="Find the best fixed plan for one car by grid search: every combination "
        "of stint length, tyre interval and pace runs on the same random numbers (same "
        "weather, incidents and lap noise per race) and the plans are ranked by mean class "
        "position, or by its CVaR (--objective cvar) for a team that weighs the bad races "
        "more. The winner's score is optimistic (it won on these races): check it on fresh "
        "ones with `stintsim evaluate SCENARIO --strategy PLAN --seed OTHER`.",
    )
    p.add_argument(
        "scenario",
        help='shipped scenario name ("lemans_24h", "six_hours", "test_race") or a TOML path',
    )
    p.add_argument("--car", help="race number of the car (default: the scenario's focus_car)")
    p.add_argument(
        "--replicas", type=positive_int, default=128, help="races per plan (default 128)"
    )
    p.add_argument("--seed", type=random_seed, default=0, help="seed of the common random numbers")
    p.add_argument(
        "--stints",
        type=_numbers,
        default=None,
        metavar="L,L,...",
        help="stint lengths to try, in laps (default: the longest a tank allows and the three "
        "below it)",
    )
    p.add_argument(
        "--tyre-stints",
        type=_numbers,
        default=TYRE_STINTS,
        metavar="K,K,...",
        help="change tyres every K stints, K values to try (default 1,2,3,4)",
    )
    p.add_argument(
        "--paces",
        type=_paces,
        default=PACES,
        metavar="P,P,...",
        help="pace modes to try, out of save, normal, push (default all three)",
    )
    p.add_argument(
        "--objective",
        choices=("mean", "cvar"),
        default="mean",
        help="rank plans by mean class position, or by its CVaR at --cvar-alpha (default mean)",
    )
    p.add_argument(
        "--cvar-alpha",
        type=finite_float,
        default=CVAR_ALPHA,
        metavar="A",
        help=f"share of worst races the CVaR column averages, in (0, 1] (default {CVAR_ALPHA:g})",
    )
    p.add_argument(
        "--racing",
        type=int,
        default=0,
        metavar="N",
        help="race the plans in rounds of N races: after each round (once "
        f"{MIN_DROP_REPLICAS} races have run) a plan worse than the leader in the objective, "
        "paired race by race, stops running, so most of the time goes to the plans that could "
        "still win. A round of a multiple of --chunk-replicas races runs the full grid's races, "
        "any other round is one engine batch per plan (small batches cost more per race than "
        "racing saves; default 0: every plan runs every race)",
    )
    p.add_argument(
        "--drop-confidence",
        type=open_unit,
        default=DROP_CONFIDENCE,
        metavar="C",
        help="with --racing, how sure the search must be that a plan is worse than the leader "
        "to drop it, shared out over the round's comparisons (Bonferroni; default "
        f"{DROP_CONFIDENCE:g})",
    )
    add_chunk_argument(p)
    p.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="then run the --verify-top best plans again on N fresh races (seed --seed + 1) and "
        "print their comparison: the search's own figures flatter its winner, most of all when "
        "ranking by a tail that a few races make (default 0: no check)",
    )
    p.add_argument(
        "--verify-top",
        type=int,
        default=3,
        metavar="K",
        help="how many of the best plans --verify runs (default 3)",
    )
    add_backend_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--out-json", metavar="FILE", help="write the JSON summary to FILE")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from engine.backends import make_backend
    from engine.commands.options import load_scenario_arg
    from engine.evaluate import focus_car, write_atomic

    scenario = load_scenario_arg(args.scenario)
    if scenario is None:
        return 2
    if args.chunk_replicas < 1:
        print(
            f"error: --chunk-replicas must be positive, got {args.chunk_replicas}", file=sys.stderr
        )
        return 2
    if args.racing < 0:
        print(
            f"error: --racing takes a number of races per round, got {args.racing}", file=sys.stderr
        )
        return 2
    if args.verify < 0 or args.verify_top < 1:
        # checked before the search, which can take minutes
        print(
            f"error: --verify takes a number of races and --verify-top at least one plan, got "
            f"{args.verify} and {args.verify_top}",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    backend = make_backend(args.backend, args.address, args.ray_cpus)
    try:
        car = focus_car(scenario, args.car)
        tuned = tune_fixed_plan(
            scenario,
            car,
            args.replicas,
            args.seed,
            stints=args.stints,
            tyre_stints=args.tyre_stints,
            paces=args.paces,
            by_cvar=args.objective == "cvar",
            cvar_alpha=args.cvar_alpha,
            round_replicas=args.racing or None,
            drop_confidence=args.drop_confidence,
            chunk_replicas=args.chunk_replicas,
            backend=backend,
            progress=not args.no_progress,
        )
        check = None
        if args.verify > 0:
            check = verify(
                scenario,
                car,
                tuned,
                args.verify,
                args.seed + 1,
                top=args.verify_top,
                chunk_replicas=args.chunk_replicas,
                backend=backend,
                progress=not args.no_progress,
            )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        backend.close()
    summary = {"scenario": scenario.name, "car": car, **tuned.to_dict()}
    if check is not None:
        summary["verification"] = check.to_dict()
    # what varies from run to run with the same seed, under one key a comparison can drop
    summary["timing"] = {"elapsed_s": time.perf_counter() - started, "cores": os.cpu_count()}
    if args.out_json:
        write_atomic(args.out_json, json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(tuned, scenario.name, car))
        if check is not None:
            from engine.report import format_table as comparison_table

            print(f"\nthe best {len(check.strategies)} on fresh races:\n")
            print(comparison_table(check))
        print(f"{summary['timing']['elapsed_s']:.1f} s, {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    run_main(main)
