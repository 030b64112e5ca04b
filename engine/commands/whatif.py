"""``python -m engine.whatif`` / ``stintsim whatif``: compare strategies for one car under
scripted events, rule or pace changes, optionally from a mid-race state (the command line of
:class:`engine.whatif.WhatIf`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from data.entry import run_main
from engine.cli_types import non_negative_int, positive_int
from engine.commands.evaluate import run_and_report
from engine.commands.options import add_run_arguments
from engine.forcing import format_event
from engine.whatif import WhatIf, snapshot_lap

if TYPE_CHECKING:
    from engine.strategy import Strategy


def _set_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected PATH=VALUE, got {text!r}")
    path, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path.strip(), value


def _pace_value(text: str) -> tuple[str, float]:
    car, _, factor = text.partition("=")
    try:
        return car.strip(), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CAR=FACTOR, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine.whatif",
        description="Compare strategies for one car under scripted events, rule or pace "
        "changes, optionally from a mid-race state, on common random numbers.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="EVENT",
        help='force an event on every race: "sc@3h12m", "fcy@5h", "vsc@2h-2h10m", '
        '"rain@14h-17h" (optionally "x0.6" intensity), "wet@8h-9hx0.4" (the track\'s wetness '
        'itself, no soaking or drying lag), "puncture:7@lap120", "failure:51@10h", '
        '"damage:7@3hx0.5"',
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_set_value,
        metavar="PATH=VALUE",
        help='change a scenario field by dotted path, e.g. "rules.min_pit_time_s=40" or '
        '"events.weather=false" (VALUE is read as JSON, else as text)',
    )
    parser.add_argument(
        "--pace",
        action="append",
        default=[],
        type=_pace_value,
        metavar="CAR=FACTOR",
        help='scale a car\'s reference lap time, e.g. "7=0.995" (0.5 %% quicker)',
    )
    parser.add_argument(
        "--field-strategy",
        metavar="SPEC",
        help="every car but the evaluated one drives this strategy instead of its scenario "
        'strategy, e.g. "double-stint:rain=off" (a field that does not stop for rain) or '
        '"double-stint:pace=push"',
    )
    parser.add_argument("--from-state", metavar="FILE", help="start every race from this state")
    parser.add_argument(
        "--pit-after",
        action="append",
        type=non_negative_int,
        default=[],
        metavar="K",
        help="with --from-state: add the candidate 'stay out K laps, then pit' (0: pit now), "
        "continuing with the first --strategy",
    )
    parser.add_argument(
        "--save-state",
        metavar="FILE",
        help="instead of comparing, run the first --strategy (with the forced events) until "
        "the car completes --state-lap (or crosses the line after --state-after) and save "
        "that race state as JSON",
    )
    parser.add_argument("--state-lap", type=positive_int, help="lap at which --save-state saves")
    parser.add_argument(
        "--state-after", metavar="TIME", help='race time (e.g. "3h12m") after which it saves'
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        w = WhatIf.load(args.scenario, replicas=args.replicas, seed=args.seed, car=args.car)
        if args.set:
            w = w.change(**dict(args.set))
        if args.field_strategy:
            w = w.field_strategy(args.field_strategy)
        for car, factor in args.pace:
            w = w.pace(car, factor=factor)
        w = w.force(*args.force)
        if args.from_state:
            w = w.start_from(args.from_state)
            for message in w.events_in_the_past():
                print(f"warning: {message}", file=sys.stderr)
        if args.save_state:
            if (args.state_lap is None) == (args.state_after is None):
                raise ValueError("--save-state needs one of --state-lap and --state-after")
            snap = w.snapshot(args.state_lap, after=args.state_after, strategy=args.strategy[0])
            from engine.readable_state import readable_state

            snap.save(args.save_state, readable=readable_state(snap, w.scenario))
            lap = snapshot_lap(snap, w.scenario, w.focus)
            saved = {"state": args.save_state, "lap": lap, "race_time_s": snap.race_time_s}
            if args.json:
                print(json.dumps(saved))
            else:
                print(f"saved the race state at lap {lap} to {args.save_state}")
            return 0
        strategies: list[str | Strategy] = list(args.strategy)
        if args.pit_after:
            strategies += w.decisions(args.pit_after, then=args.strategy[0])
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.strategy = strategies
    return run_and_report(
        args,
        w.scenario,
        forced=w.forced,
        forced_text=[format_event(e) for e in w.forced],
        start=w.start,
        title="what-if",
    )


if __name__ == "__main__":
    run_main(main)
