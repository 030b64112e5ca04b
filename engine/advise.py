"""``stintsim advise SCENARIO STATE.json``: what to do now, options ranked from a race state.

From a race state (``stintsim whatif ... --save-state STATE.json``; the file carries a
readable ``"readable"`` block, :func:`readable_state`, next to the engine's state), the options
for the car at its next line crossing are raced on common random numbers (every option the
same incidents, weather and lap noise per race): carry on with the car's strategy, pit now
with each fill (full, to the finish) and tyre choice (by default keep and four new of the fitted
compound; ``--tyres`` names others, ``--tyres all`` every choice the class may fit;
``--driver-change`` adds each with a driver change), and stay out N laps then pit (full, four
new). They are ranked by P(class win), then mean
class position, then the CVaR of class position (the mean of the worst ``--cvar-alpha`` share
of races), and the best is said in words. The figures are those of ``stintsim whatif
--from-state STATE.json`` with the same decisions and seed: the same :class:`PitAfter`
candidates through the same :func:`engine.evaluate.evaluate`.

    stintsim advise test_race state.json --replicas 32 --seed 7

``--agent CHECKPOINT`` adds what a trained agent (``python -m engine.train``'s ``agent.pt``,
or any strategy spec) would do at that crossing, in words (:mod:`engine.agent_words`).
``--follow RECORDING`` replays an LMU / rF2 shared-memory recording as if live and advises at
every line crossing of the car (:mod:`engine.follow`); with ``--json`` it prints one JSON
object per crossing (JSON lines), each as the replay reaches it: ``crossing``, ``record``,
``lap``, ``car``, ``recorded`` (the readable state the recording gives,
:mod:`engine.recorded_state`), ``from_recording`` (the car's values taken from it), and then
``state``, ``options``, ``best`` and ``agent`` as for a saved state (or ``skipped``, why).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from data.entry import run_main
from data.errors import IngestError
from engine.actions import Fuel, Tyres
from engine.agent_words import AgentChoice, agent_choice, agent_spec
from engine.baselines import make_strategy
from engine.follow import follow
from engine.montecarlo import CVAR_ALPHA, CVAR_METRIC, Comparison, check_cvar_alpha
from engine.readable_state import readable_state
from engine.recorded_state import recorded_state
from engine.strategy import Strategy
from engine.whatif import PitAfter, WhatIf, snapshot_lap
from world_model.interface import Compound

FOUR_NEW = {
    Compound.SOFT: Tyres.FOUR_SOFT,
    Compound.MEDIUM: Tyres.FOUR_MEDIUM,
    Compound.HARD: Tyres.FOUR_HARD,
    Compound.WET: Tyres.FOUR_WET,
}
TYRE_CHOICES = (*(t.name.lower() for t in Tyres), "all")
"""``--tyres`` values: a tyre choice of the action table, or every one the class may fit."""


def tyre_choices(w: WhatIf, names: list[str] | None) -> list[Tyres]:
    """The tyre choices of the pit-now options: ``names`` (``all``: keep, the two most worn,
    and four new of each compound the car's class may fit), by default keep and four new of
    the fitted compound."""
    assert w.start is not None
    c = w.scenario.entry_index(w.focus)
    fitted = Compound(int(w.start.state["compound"][0][c]))
    if not names:
        return [Tyres.KEEP, FOUR_NEW[fitted]]
    if "all" in names:
        allowed = w.scenario.class_of(w.scenario.entries[c]).compound_codes
        return [Tyres.KEEP, Tyres.TWO_SAME, *(FOUR_NEW[Compound(k)] for k in sorted(allowed))]
    return list(dict.fromkeys(Tyres[n.upper()] for n in names))


def _tyre_label(tyres: Tyres, fitted: Compound) -> str:
    if tyres == Tyres.KEEP:
        return "keep tyres"
    if tyres == Tyres.TWO_SAME:
        return f"2 new {fitted.name.lower()}"
    assert tyres.compound is not None
    return f"4 new {tyres.compound.name.lower()}"


def options(
    w: WhatIf,
    then: str,
    pit_in: tuple[int, ...],
    tyres: list[Tyres] | None = None,
    driver_change: bool = False,
) -> list[PitAfter | str]:
    """The options at the car's next crossing: carry on (``then``), pit now with each fill
    and tyre choice (``tyres``, default keep and four new of the fitted compound; with
    ``driver_change`` each also with a driver change), and stay out N laps then pit (full,
    four new of the fitted compound)."""
    assert w.start is not None
    car = w.focus
    c = w.scenario.entry_index(car)
    fitted = Compound(int(w.start.state["compound"][0][c]))
    now = snapshot_lap(w.start, w.scenario, car) + 1
    out: list[PitAfter | str] = [then]
    changes = (False, True) if driver_change else (False,)
    for fuel in (Fuel.FULL, Fuel.TO_FINISH):
        for tyre in tyres or [Tyres.KEEP, FOUR_NEW[fitted]]:
            for change in changes:
                fill = "fill up" if fuel == Fuel.FULL else "fill to finish"
                name = f"pit now, {fill}, {_tyre_label(tyre, fitted)}"
                name += ", driver change" if change else ""
                out.append(
                    PitAfter(now, then, fuel=fuel, tyres=tyre, driver_change=change, name=name)
                )
    for k in pit_in:
        out.append(PitAfter(now + k, then, tyres=FOUR_NEW[fitted], name=f"stay out {k}"))
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
        "common random numbers; with --follow, at every line crossing of a shared-memory "
        "recording replayed as if live; with --agent, also what a trained agent would do.",
    )
    p.add_argument("scenario", help="the scenario the state belongs to (name or TOML)")
    p.add_argument(
        "state",
        metavar="STATE.json",
        nargs="?",
        help="race state (whatif --save-state); leave out with --follow",
    )
    p.add_argument(
        "--follow",
        metavar="RECORDING",
        default=None,
        help="replay an LMU / rF2 shared-memory recording (JSON) as if live and advise at "
        "every line crossing of the car (the recording's state replaces the engine's fuel, "
        "energy, tread, compound and driver of the car where it has them)",
    )
    p.add_argument(
        "--agent",
        metavar="CHECKPOINT",
        default=None,
        help="also say in words what this agent would do now: a checkpoint of python -m "
        "engine.train (agent.pt) or any strategy spec",
    )
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
    p.add_argument(
        "--tyres",
        action="append",
        choices=TYRE_CHOICES,
        default=None,
        metavar="CHOICE",
        help="a tyre choice of the pit-now options (repeat): keep, two_same, four_soft, "
        "four_medium, four_hard, four_wet, or all (every choice the car's class may fit); "
        "default keep and four new of the fitted compound",
    )
    p.add_argument(
        "--driver-change",
        action="store_true",
        help="also race each pit-now option with a driver change",
    )
    p.add_argument("--replicas", type=int, default=64, help="races per option (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same races")
    p.add_argument(
        "--cvar-alpha",
        type=float,
        default=CVAR_ALPHA,
        help=f"share of worst races the CVaR averages (default {CVAR_ALPHA})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON on stdout: one object; with --follow one object per line crossing "
        "(JSON lines, each printed as the replay reaches it)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="with --follow, do not report each crossing on stderr as the replay goes",
    )
    return p


@dataclass(frozen=True)
class Advice:
    """The ranked options from one race state, and the agent's choice when asked."""

    state: dict[str, Any]
    ranked: list[Ranked]
    agent: AgentChoice | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "options": [r.__dict__ for r in self.ranked],
            "best": self.ranked[0].label,
            "agent": None if self.agent is None else asdict(self.agent),
        }


def advise(w: WhatIf, args: argparse.Namespace, agent: Strategy | None) -> Advice:
    """Rank the options of ``w``'s focus car from ``w.start``; ask ``agent`` if given."""
    assert w.start is not None
    then = args.then or w.scenario.entries[w.scenario.entry_index(w.focus)].strategy
    tyres = tyre_choices(w, args.tyres)
    candidates = options(w, then, tuple(args.pit_in or (1, 2, 3)), tyres, args.driver_change)
    result = w.compare(candidates, cvar_alpha=args.cvar_alpha)
    choice = None if agent is None else agent_choice(w, agent)
    return Advice(readable_state(w.start, w.scenario), rank(result.comparison), choice)


def _check(args: argparse.Namespace) -> None:
    check_cvar_alpha(args.cvar_alpha)
    if args.replicas < 1:
        raise ValueError("--replicas must be >= 1")
    if (args.state is None) == (args.follow is None):
        raise ValueError("give a race state STATE.json or --follow RECORDING (one of them)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check(args)
        w = WhatIf.load(args.scenario, replicas=args.replicas, seed=args.seed, car=args.car)
        agent = None if args.agent is None else make_strategy(agent_spec(args.agent))
        if args.follow is not None:
            return _follow(w, args, agent)
        advice = advise(w.start_from(args.state), args, agent)
    except (OSError, ValueError, KeyError, IngestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        head = {"car": w.focus, "replicas": args.replicas, "seed": args.seed}
        print(json.dumps({**head, **advice.to_dict()}))
        return 0
    print(_format(advice, w.focus, args))
    return 0


def _format(advice: Advice, car: str, args: argparse.Namespace) -> str:
    state, ranked = advice.state, advice.ranked
    best = ranked[0]
    mine = next(c for c in state["cars"] if c["number"] == car)
    lines = [
        f"{state['scenario']} at {state['race_time']} ({state['flag']}): car {car} P"
        f"{mine['position']}, lap {mine['laps']}, fuel {100 * mine['fuel']:.1f} %, energy "
        f"{100 * mine['energy']:.1f} %, {mine['compound']} tyres {mine['tyre_age_laps']} laps old",
        f"{'rank':>4}  {'option':<36} {'P(class win)':>12} {'class pos':>9} {'CVaR':>6}",
    ]
    for i, r in enumerate(ranked, 1):
        lines.append(
            f"{i:>4}  {r.label:<36} {r.p_class_win:>12.3f} {r.class_position:>9.2f}"
            f" {r.cvar_class_position:>6.2f}"
        )
    lines.append(
        f"advice: {best.label} (P(class win) {best.p_class_win:.3f}, mean class position "
        f"{best.class_position:.2f}, over {args.replicas} races, seed {args.seed})"
    )
    if advice.agent is not None:
        lines.append(
            f"agent {advice.agent.agent} would (at lap {advice.agent.lap}): {advice.agent.words}"
        )
    return "\n".join(lines)


def _recorded_line(recorded: dict[str, Any], car: str) -> str:
    mine = next(c for c in recorded["cars"] if c["number"] == car)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    tread = "-" if mine["tread"] is None else f"{100 * min(mine['tread']):.0f} % (least)"
    return (
        f"recording at {recorded['race_time']} ({recorded['flag']}): car {car} P"
        f"{mine['position']}, lap {mine['laps']}, fuel {pct(mine['fuel'])}, energy "
        f"{pct(mine['energy'])}, tread {tread}, {mine['compound'] or '-'} tyres, driver "
        f"{mine['driver'] or '-'}"
    )


def _follow(w: WhatIf, args: argparse.Namespace, agent: Strategy | None) -> int:
    """Advise at every crossing of the focus car in the recording, printing as it goes."""
    crossings = 0
    for point in follow(w, args.follow):
        crossings += 1
        if not args.no_progress:
            print(
                f"{args.follow}: crossing {point.crossing}, lap {point.lap} at "
                f"{point.recorded['race_time']} (record {point.record})",
                file=sys.stderr,
                flush=True,
            )
        head = {
            "crossing": point.crossing,
            "record": point.record,
            "lap": point.lap,
            "car": w.focus,
            "recorded": point.recorded,
            "from_recording": list(point.from_recording),
        }
        if point.start is None:
            if args.json:
                print(json.dumps({**head, "skipped": point.skipped}), flush=True)
            else:
                print(f"crossing {point.crossing}, lap {point.lap}: skipped ({point.skipped})")
            continue
        advice = advise(point.start, args, agent)
        if args.json:
            print(json.dumps({**head, **advice.to_dict()}), flush=True)
            continue
        taken = ", ".join(point.from_recording) or "nothing"
        print(
            f"== crossing {point.crossing}: lap {point.lap} of car {w.focus}"
            f" (record {point.record}; from the recording: {taken})\n"
            f"{_recorded_line(point.recorded, w.focus)}\n{_format(advice, w.focus, args)}",
            flush=True,
        )
    if crossings == 0:
        end = recorded_state(args.follow, w.focus)
        if not any(c["number"] == w.focus for c in end["cars"]):
            raise IngestError(args.follow, "mVehicles", f"no car #{w.focus} in the recording")
        print(
            f"{args.follow}: car {w.focus} completed no lap by the recording's end at "
            f"{end['race_time']}: no line crossing to advise at",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_main(main)
