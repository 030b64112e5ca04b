"""``stintsim advise SCENARIO STATE.json``: what to do now, options ranked from a race state.

From a race state (``stintsim whatif ... --save-state STATE.json``; the file carries a
readable ``"readable"`` block, :func:`readable_state`, next to the engine's state), the options
for the car at its next line crossing are raced on common random numbers (every option the
same incidents, weather and lap noise per race): carry on with the car's strategy, pit now
with each fill (full, to the finish) and tyre choice (keep, four new of the fitted compound),
and stay out N laps then pit (full, four new). They are ranked by P(class win), then mean
class position, then the CVaR of class position (the mean of the worst ``--cvar-alpha`` share
of races), and the best is said in words. The figures are those of ``stintsim whatif
--from-state STATE.json`` with the same decisions and seed: the same :class:`PitAfter`
candidates through the same :func:`engine.evaluate.evaluate`.

    stintsim advise test_race state.json --replicas 32 --seed 7
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from data.entry import run_main
from engine.actions import Fuel, Tyres
from engine.montecarlo import CVAR_ALPHA, CVAR_METRIC, Comparison, check_cvar_alpha
from engine.readable_state import readable_state
from engine.whatif import PitAfter, WhatIf, snapshot_lap
from world_model.interface import Compound


def options(w: WhatIf, then: str, pit_in: tuple[int, ...]) -> list[PitAfter | str]:
    """The options at the car's next crossing: carry on (``then``), pit now with each fill and
    tyre choice, and stay out N laps then pit (full, four new of the fitted compound)."""
    assert w.start is not None
    car = w.focus
    c = w.scenario.entry_index(car)
    fitted = Compound(int(w.start.state["compound"][0][c]))
    four = {
        Compound.SOFT: Tyres.FOUR_SOFT,
        Compound.MEDIUM: Tyres.FOUR_MEDIUM,
        Compound.HARD: Tyres.FOUR_HARD,
        Compound.WET: Tyres.FOUR_WET,
    }[fitted]
    now = snapshot_lap(w.start, w.scenario, car) + 1
    out: list[PitAfter | str] = [then]
    for fuel in (Fuel.FULL, Fuel.TO_FINISH):
        for tyres in (Tyres.KEEP, four):
            label = "keep tyres" if tyres == Tyres.KEEP else f"4 new {fitted.name.lower()}"
            fill = "fill up" if fuel == Fuel.FULL else "fill to finish"
            out.append(
                PitAfter(now, then, fuel=fuel, tyres=tyres, name=f"pit now, {fill}, {label}")
            )
    for k in pit_in:
        out.append(PitAfter(now + k, then, tyres=four, name=f"stay out {k}"))
    return out


@dataclass(frozen=True)
class Ranked:
    label: str
    p_class_win: float
    class_position: float
    cvar_class_position: float

    def key(self) -> tuple[float, float, float]:
        return (-self.p_class_win, self.class_position, self.cvar_class_position)


def rank(comparison: Comparison) -> list[Ranked]:
    rows = [
        Ranked(
            s.label,
            s.metrics["class_win"].estimate,
            s.metrics["class_position"].estimate,
            s.metrics[CVAR_METRIC].estimate,
        )
        for s in comparison.strategies
    ]
    return sorted(rows, key=Ranked.key)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stintsim advise",
        description="Rank the options now (carry on, pit now with each fill and tyre choice, "
        "stay out N laps) from a race state by P(class win), mean class position and CVaR, on "
        "common random numbers.",
    )
    p.add_argument("scenario", help="the scenario the state belongs to (name or TOML)")
    p.add_argument("state", metavar="STATE.json", help="race state (whatif --save-state)")
    p.add_argument("--car", default=None, help="race number (default: the focus car)")
    p.add_argument(
        "--then",
        default=None,
        help="strategy after the decision (default: the car's scenario strategy)",
    )
    p.add_argument(
        "--pit-in",
        type=int,
        action="append",
        default=None,
        metavar="N",
        help="add 'stay out N laps, then pit' (repeat; default 1, 2 and 3)",
    )
    p.add_argument("--replicas", type=int, default=64, help="races per option (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same races")
    p.add_argument(
        "--cvar-alpha",
        type=float,
        default=CVAR_ALPHA,
        help=f"share of worst races the CVaR averages (default {CVAR_ALPHA})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_cvar_alpha(args.cvar_alpha)
        if args.replicas < 1:
            raise ValueError("--replicas must be >= 1")
        w = WhatIf.load(args.scenario, replicas=args.replicas, seed=args.seed, car=args.car)
        w = w.start_from(args.state)
        assert w.start is not None
        then = args.then or w.scenario.entries[w.scenario.entry_index(w.focus)].strategy
        candidates = options(w, then, tuple(args.pit_in or (1, 2, 3)))
        result = w.compare(candidates, cvar_alpha=args.cvar_alpha)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state = readable_state(w.start, w.scenario)
    ranked = rank(result.comparison)
    best = ranked[0]
    if args.json:
        print(
            json.dumps(
                {
                    "state": state,
                    "car": w.focus,
                    "replicas": args.replicas,
                    "seed": args.seed,
                    "options": [r.__dict__ for r in ranked],
                    "best": best.label,
                }
            )
        )
        return 0
    mine = next(c for c in state["cars"] if c["number"] == w.focus)
    print(
        f"{state['scenario']} at {state['race_time']} ({state['flag']}): car {w.focus} P"
        f"{mine['position']}, lap {mine['laps']}, fuel {100 * mine['fuel']:.1f} %, energy "
        f"{100 * mine['energy']:.1f} %, {mine['compound']} tyres {mine['tyre_age_laps']} laps old"
    )
    print(f"{'rank':>4}  {'option':<36} {'P(class win)':>12} {'class pos':>9} {'CVaR':>6}")
    for i, r in enumerate(ranked, 1):
        print(
            f"{i:>4}  {r.label:<36} {r.p_class_win:>12.3f} {r.class_position:>9.2f}"
            f" {r.cvar_class_position:>6.2f}"
        )
    print(
        f"advice: {best.label} (P(class win) {best.p_class_win:.3f}, mean class position "
        f"{best.class_position:.2f}, over {args.replicas} races, seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
