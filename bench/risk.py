"""Benchmark of risk-aware strategy: the IQN agent acting on CVaR against the risk-neutral one.

Trains both agents with ``python -m engine.train --algo iqn --decision stint`` (one with
``--cvar-alpha``), or loads them from ``--agents DIR`` (``DIR/neutral/agent.pt`` and
``DIR/cvar/agent.pt``, as this command writes them), races both on the same fresh races
(common random numbers, an evaluation seed never trained on) and prints the paired
differences, CVaR agent minus risk-neutral agent, in class positions (lower is better):

    python -m bench.risk --json
    python -m bench.risk --agents runs/risk --replicas 2048 --json

``cvar_difference`` is the difference of the CVaR of class position at ``--cvar-alpha`` (the
mean of the worst share of races; a negative value: the CVaR agent's tail is better),
``mean_difference`` that of the mean class position (a positive value: the risk-neutral
agent's mean is better); each ``{"estimate", "low", "high"}`` with 95 % paired intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from data.entry import run_main
from engine.cli_types import finite_float, positive_int, random_seed

AGENTS = ("neutral", "cvar")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.risk",
        description="Train (or load) a risk-neutral IQN agent and one acting on the CVaR of its "
        "return, race both on the same fresh races and print the paired differences of the "
        "mean and the CVaR of class position (CVaR agent minus risk-neutral agent).",
    )
    p.add_argument("--scenario", default="six_hours", help="scenario name or TOML path")
    p.add_argument(
        "--agents",
        type=Path,
        default=None,
        metavar="DIR",
        help="load DIR/neutral/agent.pt and DIR/cvar/agent.pt instead of training them",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/risk"),
        help="where trained agents are written (DIR/neutral, DIR/cvar; default runs/risk)",
    )
    p.add_argument(
        "--cvar-alpha",
        type=finite_float,
        default=0.1,
        help="CVaR level the risk-aware agent acts on and the tail is measured at (default 0.1)",
    )
    p.add_argument(
        "--budget",
        default="24000",
        help="training budget of each agent, as engine.train --budget (default 24000)",
    )
    p.add_argument(
        "--train-replicas", type=positive_int, default=128, help="races per training generation"
    )
    p.add_argument("--train-seed", type=random_seed, default=0, help="training seed (default 0)")
    p.add_argument(
        "--replicas", type=positive_int, default=2048, help="evaluation races (default 2048)"
    )
    p.add_argument(
        "--seed",
        type=random_seed,
        default=1,
        help="evaluation seed (default 1; training races use seeds from 2**30 up)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _train(args: argparse.Namespace) -> Path:
    from engine.commands.train import main as train_main

    for name in AGENTS:
        argv = [
            "--scenario",
            args.scenario,
            "--algo",
            "iqn",
            "--decision",
            "stint",
            "--budget",
            args.budget,
            "--replicas",
            str(args.train_replicas),
            "--seed",
            str(args.train_seed),
            "--eval-replicas",
            "0",
            "--out",
            str(args.out / name),
            "--json",
        ]
        if name == "cvar":
            argv += ["--cvar-alpha", str(args.cvar_alpha)]
        if args.no_progress:
            argv.append("--no-progress")
        code = train_main(argv)
        if code:
            raise SystemExit(code)
    return args.out


def _interval(iv: Any) -> dict[str, float]:
    return {"estimate": iv.estimate, "low": iv.low, "high": iv.high}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0.0 < args.cvar_alpha <= 1.0:
        print(f"error: --cvar-alpha must be in (0, 1], got {args.cvar_alpha}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    folder = args.agents
    if folder is not None:
        missing = [str(folder / n / "agent.pt") for n in AGENTS]
        missing = [m for m in missing if not Path(m).is_file()]
        if missing:
            print(f"error: --agents {folder}: no checkpoint {missing[0]}", file=sys.stderr)
            return 2
    else:
        folder = _train(args)
    train_s = time.perf_counter() - started

    import numpy as np

    from engine.evaluate import evaluate
    from engine.montecarlo import paired_cvar_difference
    from engine.scenario import load_scenario
    from policies.agents import load

    scenario = load_scenario(args.scenario)
    agents = {n: load(folder / n / "agent.pt", name=n) for n in AGENTS}
    ev = evaluate(
        scenario,
        [agents[n] for n in AGENTS],
        args.replicas,
        args.seed,
        cvar_alpha=args.cvar_alpha,
        progress=not args.no_progress,
    )
    neutral = ev.outcomes["neutral"].class_position.astype(np.float64)
    risk = ev.outcomes["cvar"].class_position.astype(np.float64)
    rng = np.random.default_rng(args.seed)
    cvar_diff = paired_cvar_difference(neutral, risk, rng, args.cvar_alpha)
    pair = ev.comparison.differences[0].metrics["class_position"]
    out = {
        "scenario": scenario.name,
        "races": args.replicas,
        "seed": args.seed,
        "cvar_alpha": args.cvar_alpha,
        "cvar_difference": _interval(cvar_diff),
        "mean_difference": _interval(pair),
        "agents": {
            n: {
                "checkpoint": str(folder / n / "agent.pt"),
                "mean_class_position": float(ev.outcomes[n].class_position.mean()),
                "p_retired": float(ev.outcomes[n].retired.mean()),
                "stint_option_share": _option_shares(agents[n]),
            }
            for n in AGENTS
        },
        "train_s": train_s if args.agents is None else 0.0,
        "evaluate_s": ev.elapsed_s,
    }
    if args.json:
        print(json.dumps(out))
    else:
        d, m = out["cvar_difference"], out["mean_difference"]
        print(
            f"{scenario.name}, {args.replicas} races: CVaR agent minus risk-neutral agent, "
            f"CVaR {args.cvar_alpha:g} of class position {d['estimate']:+.2f} "
            f"[{d['low']:+.2f}, {d['high']:+.2f}], mean {m['estimate']:+.2f} "
            f"[{m['low']:+.2f}, {m['high']:+.2f}]"
        )
    return 0


def _option_shares(agent: Any) -> dict[str, float] | None:
    """Share of stints started with each option (None for a lap-level agent)."""
    from engine.stint import STINT_OPTIONS

    stint = getattr(agent, "_stint", None)
    if stint is None:
        return None
    counts = stint.option_counts.double()
    total = float(counts.sum()) or 1.0
    return {str(o): float(c) / total for o, c in zip(STINT_OPTIONS, counts, strict=True)}


if __name__ == "__main__":
    run_main(main)
