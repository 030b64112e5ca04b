"""Options declared once for the commands that share them (``evaluate``, ``whatif``, ``tune``),
and the scenario argument every command loads the same way."""

from __future__ import annotations

import argparse
import sys

from engine.backends import add_backend_arguments
from engine.cli_types import finite_float, non_negative_int, open_unit, positive_int, random_seed
from engine.evaluate import DEFAULT_CHUNK_REPLICAS
from engine.montecarlo import CVAR_ALPHA
from engine.scenario import Scenario


def add_chunk_argument(parser: argparse.ArgumentParser) -> None:
    """``--chunk-replicas``, as every command that runs Monte Carlo chunks takes it."""
    parser.add_argument(
        "--chunk-replicas",
        type=positive_int,
        default=DEFAULT_CHUNK_REPLICAS,
        metavar="N",
        help="races per simulate call, the unit of progress, early stops and Ray tasks; results "
        "depend on it. Larger chunks run faster: the 24-hour race took 0.17 s a race in chunks "
        f"of 128 and 0.09 s in chunks of 512 (default {DEFAULT_CHUNK_REPLICAS})",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``whatif``."""
    parser.add_argument(
        "scenario",
        help='shipped scenario name ("lemans_24h", "six_hours", "test_race") or a TOML path',
    )
    parser.add_argument(
        "--strategy",
        action="append",
        required=True,
        metavar="SPEC",
        help="strategy for the evaluated car, as engine.baselines.make_strategy reads it "
        '(e.g. "fixed:laps=12", "double-stint", "plan:FILE", "module.path:factory"); repeat '
        "to compare; differences are against the first",
    )
    parser.add_argument(
        "--replicas",
        type=positive_int,
        default=256,
        help="races per strategy (maximum with --precision; default 256)",
    )
    parser.add_argument(
        "--seed", type=random_seed, default=0, help="seed of the common random numbers"
    )
    parser.add_argument("--car", help="race number of the evaluated car (default: focus_car)")
    parser.add_argument(
        "--precision",
        type=finite_float,
        metavar="W",
        help="stop once every interval half-width on mean class position (each strategy and "
        "each paired difference) is below W positions",
    )
    parser.add_argument(
        "--min-replicas",
        type=positive_int,
        default=32,
        help="with --precision: races per strategy before it may stop (default 32)",
    )
    add_chunk_argument(parser)
    parser.add_argument("--confidence", type=open_unit, default=0.95, help="interval level (0.95)")
    parser.add_argument(
        "--cvar-alpha",
        type=finite_float,
        default=CVAR_ALPHA,
        metavar="A",
        help="share of worst races the CVaR of class position averages, in (0, 1]; read "
        "the tail above a strategy's retirement rate with a level larger than that rate "
        f"(default {CVAR_ALPHA:g})",
    )
    add_backend_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help="write every figure as CSV rows (section, strategy, metric, estimate, low, high, "
        "replicas, and the CVaR rows' level in cvar_alpha)",
    )
    parser.add_argument("--out-json", metavar="FILE", help="write the JSON summary to FILE")
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write a report (.pdf: multi-page PDF; .html: one page) with the table, outcome "
        "distributions and the Gantt, position, fuel and tyre plots of sample races",
    )
    parser.add_argument(
        "--report-races",
        type=non_negative_int,
        default=4,
        help="races per strategy recorded lap by lap for the report's plots (default 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_scenario_arg(name: str) -> Scenario | None:
    """The scenario a command line names, or None after printing why it cannot be loaded
    (the command then exits with status 2)."""
    from engine.scenario import load_scenario

    try:
        return load_scenario(name)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: cannot load scenario {name!r}: {err}", file=sys.stderr)
        return None
