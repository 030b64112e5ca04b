"""``python -m engine.evaluate`` / ``stintsim evaluate``: compare strategies for one car by
Monte Carlo on common random numbers and print (or write) the comparison.

The library call is :func:`engine.evaluate.evaluate`; this module is its command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from data.entry import run_main
from engine.backends import make_backend
from engine.commands.options import add_run_arguments, load_scenario_arg
from engine.evaluate import evaluate, sample_races, write_atomic

if TYPE_CHECKING:
    from engine.race import RaceSnapshot
    from engine.scenario import Scenario
    from events.interface import ForcedEvent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine.evaluate",
        description="Compare strategies for one car by Monte Carlo: every strategy runs on the "
        "same random numbers (same weather, incidents and lap noise per race), the rest of the "
        "field keeps its scenario strategies, and differences against the first strategy are "
        "paired. Prints per-strategy figures and paired differences with confidence intervals.",
    )
    add_run_arguments(parser)
    return parser


def run_and_report(
    args: argparse.Namespace,
    scenario: Scenario,
    *,
    forced: Sequence[ForcedEvent] = (),
    forced_text: Sequence[str] = (),
    start: RaceSnapshot | None = None,
    title: str = "evaluate",
) -> int:
    """Evaluate as the parsed options say and print / write the results; the exit status
    of the evaluate and what-if commands (2 for bad input, 130 when interrupted)."""
    try:
        return _run_and_report(args, scenario, forced, forced_text, start, title)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130


def _run_and_report(
    args: argparse.Namespace,
    scenario: Scenario,
    forced: Sequence[ForcedEvent],
    forced_text: Sequence[str],
    start: RaceSnapshot | None,
    title: str,
) -> int:
    from engine import report

    backend = make_backend(args.backend, args.address, args.ray_cpus)
    try:
        ev = evaluate(
            scenario,
            args.strategy,
            args.replicas,
            args.seed,
            car=args.car,
            precision=args.precision,
            min_replicas=args.min_replicas,
            backend=backend,
            chunk_replicas=args.chunk_replicas,
            forced=forced,
            start=start,
            confidence=args.confidence,
            progress=not args.no_progress,
            forced_text=forced_text,
            cvar_alpha=args.cvar_alpha,
        )
    finally:
        backend.close()
    summary = ev.comparison.to_dict()
    summary["chunk_replicas"] = ev.chunk_replicas
    # what varies from run to run with the same seed, under one key a comparison can drop
    summary["timing"] = {
        "elapsed_s": ev.elapsed_s,
        "races_per_s": ev.races_per_s,
        "backend": args.backend,
        "cores": os.cpu_count(),
    }
    if args.out_json:
        write_atomic(args.out_json, json.dumps(summary, indent=2) + "\n")
    if args.csv:
        write_atomic(args.csv, report.comparison_csv(ev.comparison))
    if args.report:
        races = sample_races(
            scenario,
            args.strategy,
            args.seed,
            car=args.car,
            replicas=args.report_races,
            forced=forced,
            start=start,
        )
        report.write_report(args.report, ev, races, title=f"stintsim {title}: {scenario.name}")
    if args.json:
        print(json.dumps(summary))
    else:
        print(report.format_table(ev.comparison))
        print(
            f"{ev.comparison.replicas} races per strategy in {ev.elapsed_s:.1f} s "
            f"({ev.races_per_s:.1f} races/s, {os.cpu_count()} cores)"
        )
    return 130 if ev.comparison.stop_reason == "interrupted" else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario = load_scenario_arg(args.scenario)
    if scenario is None:
        return 2
    return run_and_report(args, scenario)


if __name__ == "__main__":
    run_main(main)
