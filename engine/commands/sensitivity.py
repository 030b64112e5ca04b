"""Which assumption does a decision hang on? Vary one risk parameter, watch the best plan.

``python -m engine.commands.sensitivity SCENARIO --param risks.push.failure_factor --values 1,2,4
--strategy double-stint --strategy double-stint:pace=push`` evaluates every strategy (on the
focus car, the rest of the field on its scenario defaults) at each value of the parameter,
on the same seed: every value sees the same races (common random numbers across strategies
and values), so the table shows how the parameter, not the luck of the draw, moves the best
plan by mean class position and by its tail (the CVaR of class position, the mean of the
worst ``--cvar-alpha`` share of races). ``--param`` is any dotted scenario path
(``scenario_with``); the risk priors are the ones it is for (:mod:`engine.risks`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data.entry import run_main
from engine.backends import add_backend_arguments, make_backend
from engine.commands.options import add_chunk_argument, load_scenario_arg
from engine.evaluate import evaluate
from engine.montecarlo import CVAR_ALPHA, CVAR_METRIC, Interval
from engine.scenario import Scenario, scenario_with


@dataclass(frozen=True)
class SensitivityRow:
    """Every strategy at one value of the parameter."""

    value: float
    mean: dict[str, Interval]
    """Strategy label -> mean class position."""
    cvar: dict[str, Interval]
    """Strategy label -> CVaR of class position."""
    mean_vs_first: dict[str, Interval]
    """Label -> paired difference of mean class position against the first strategy."""
    cvar_vs_first: dict[str, Interval]
    """Label -> paired difference of the CVaR against the first strategy."""

    @property
    def best_mean(self) -> str:
        return min(self.mean, key=lambda k: self.mean[k].estimate)

    @property
    def best_cvar(self) -> str:
        return min(self.cvar, key=lambda k: self.cvar[k].estimate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "best_mean": self.best_mean,
            "best_cvar": self.best_cvar,
            "strategies": [
                {
                    "label": k,
                    "class_position": self.mean[k].to_dict(),
                    "cvar_class_position": self.cvar[k].to_dict(),
                    "class_position_vs_first": self.mean_vs_first[k].to_dict(),
                    "cvar_vs_first": self.cvar_vs_first[k].to_dict(),
                }
                for k in self.mean
            ],
        }


def sensitivity(
    scenario: Scenario,
    param: str,
    values: Sequence[float],
    strategies: Sequence[str],
    replicas: int,
    seed: int,
    **evaluate_kwargs: Any,
) -> list[SensitivityRow]:
    """One :class:`SensitivityRow` per value of the dotted scenario path ``param``."""
    if not values:
        raise ValueError("give at least one value")
    rows = []
    for value in values:
        changed = scenario_with(scenario, **{param: value})
        ev = evaluate(changed, strategies, replicas, seed, **evaluate_kwargs)
        comp = ev.comparison
        first = comp.strategies[0].label
        zero = Interval(0.0, 0.0, 0.0)
        rows.append(
            SensitivityRow(
                value=float(value),
                mean={s.label: s.metrics["class_position"] for s in comp.strategies},
                cvar={s.label: s.metrics[CVAR_METRIC] for s in comp.strategies},
                mean_vs_first={first: zero}
                | {d.candidate: d.metrics["class_position"] for d in comp.differences},
                cvar_vs_first={first: zero}
                | {d.candidate: d.metrics[CVAR_METRIC] for d in comp.differences},
            )
        )
    return rows


def format_rows(param: str, rows: Sequence[SensitivityRow], cvar_alpha: float) -> str:
    """A text table: one line per value and strategy, the best plans marked."""
    tail = f"CVaR{cvar_alpha:.0%}"
    head = f"{param:>28} {'strategy':<34} {'mean class pos':>22} {tail + ' class pos':>24}"
    lines = [head, "-" * len(head)]
    for row in rows:
        for label in row.mean:
            m, c = row.mean[label], row.cvar[label]
            marks = ("M" if label == row.best_mean else " ") + (
                "T" if label == row.best_cvar else " "
            )
            lines.append(
                f"{row.value:>28g} {label[:31]:<31} {marks} "
                f"{m.estimate:>6.2f} [{m.low:>5.2f}, {m.high:>5.2f}] "
                f"{c.estimate:>8.2f} [{c.low:>5.2f}, {c.high:>5.2f}]"
            )
    lines.append("M: best mean class position at that value; T: best tail (lowest CVaR).")
    return "\n".join(lines)


def plot(param: str, rows: Sequence[SensitivityRow], path: str, cvar_alpha: float) -> None:
    """Mean and CVaR of class position of every strategy against the parameter (PNG/PDF)."""
    from matplotlib.figure import Figure

    from engine.report import atomic_output

    fig = Figure(figsize=(11, 4.2))
    ax_mean, ax_tail = fig.subplots(1, 2)
    xs = [r.value for r in rows]
    for label in rows[0].mean:
        for ax, key in ((ax_mean, "mean"), (ax_tail, "cvar")):
            iv = [getattr(r, key)[label] for r in rows]
            ax.errorbar(
                xs,
                [i.estimate for i in iv],
                yerr=[[i.estimate - i.low for i in iv], [i.high - i.estimate for i in iv]],
                marker="o",
                capsize=3,
                label=label,
            )
    ax_mean.set_title("Mean class position")
    ax_tail.set_title(f"CVaR{cvar_alpha:.0%} of class position")
    for ax in (ax_mean, ax_tail):
        ax.set_xlabel(param)
        ax.set_ylabel("class position (lower is better)")
        ax.grid(alpha=0.3)
    ax_mean.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=path.rsplit(".", 1)[-1])


def _values(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {text!r}") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.commands.sensitivity",
        description="Vary one scenario parameter (a risk prior) over values and show how the "
        "best of a set of strategies, by mean class position and by its tail (CVaR), moves. "
        "Every value and strategy runs on the same seed's races (common random numbers).",
    )
    p.add_argument("scenario", help='shipped scenario name ("six_hours", ...) or a TOML path')
    p.add_argument(
        "--param",
        required=True,
        help="dotted scenario path of the parameter, e.g. risks.push.failure_factor, "
        "risks.fuel.stint_cv, risks.tyre_cliff.tread, risks.slick_wet.off_per_h",
    )
    p.add_argument(
        "--values", required=True, type=_values, help="comma-separated values, e.g. 1,2,4"
    )
    p.add_argument(
        "--strategy",
        action="append",
        required=True,
        metavar="SPEC",
        help="strategy of the evaluated car (engine.baselines.make_strategy spec); repeat",
    )
    p.add_argument("--replicas", type=int, default=256, help="races per strategy and value")
    p.add_argument("--seed", type=int, default=0, help="seed of the common random numbers")
    p.add_argument("--car", help="race number of the evaluated car (default: focus_car)")
    p.add_argument(
        "--cvar-alpha",
        type=float,
        default=CVAR_ALPHA,
        metavar="A",
        help=f"share of worst races the CVaR averages (default {CVAR_ALPHA:g})",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (0.95)")
    add_chunk_argument(p)
    add_backend_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--plot", metavar="FILE", help="write mean and CVaR against the value (.png/.pdf)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario = load_scenario_arg(args.scenario)
    if scenario is None:
        return 2
    backend = make_backend(args.backend, args.address, args.ray_cpus)
    try:
        rows = sensitivity(
            scenario,
            args.param,
            args.values,
            args.strategy,
            args.replicas,
            args.seed,
            car=args.car,
            backend=backend,
            chunk_replicas=args.chunk_replicas,
            confidence=args.confidence,
            cvar_alpha=args.cvar_alpha,
            progress=not args.no_progress,
        )
        if args.plot:
            plot(args.param, rows, args.plot, args.cvar_alpha)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        backend.close()
    if args.json:
        out = {
            "scenario": scenario.name,
            "param": args.param,
            "replicas": args.replicas,
            "seed": args.seed,
            "cvar_alpha": args.cvar_alpha,
            "rows": [r.to_dict() for r in rows],
        }
        print(json.dumps(out))
    else:
        print(format_rows(args.param, rows, args.cvar_alpha))
    return 0


if __name__ == "__main__":
    run_main(main)
