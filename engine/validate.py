"""``stintsim validate`` (``python -m engine.validate``): do simulated races look like a real one?

For a real race in a lap store: build its scenario from its own timing data (or take one),
simulate N races, write them into a lap store of the same schema and compute
:func:`data.race_stats.race_stats` on the real race and on every simulated one. Each statistic
is printed with the real value, the simulated 5 / 50 / 95 % quantiles and the real value's
quantile among the simulated ones; values outside 5-95 % are flagged.

    python -m engine.validate --db /tmp/stintsim/lapstore.sqlite \\
        --session wec_2026_lemans_24h_race --replicas 64 --seed 0 --leave-out --plot lm26.png

``--leave-out`` first refits the event posterior (``events.fit``) on every race of the store
but this one, so a race is never validated against a model fitted on it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from data.class_names import ClassMapError, load_class_map
from data.entry import run_main
from data.race_stats import race_stats, session_ids

LOW_Q, HIGH_Q = 0.05, 0.95


@dataclass(frozen=True)
class StatCheck:
    """One statistic: the real value against its simulated distribution."""

    name: str
    real: float
    simulated: np.ndarray
    """The statistic of every simulated race that has it."""

    @property
    def quantiles(self) -> tuple[float, float, float]:
        q = np.quantile(self.simulated, (LOW_Q, 0.5, HIGH_Q))
        return float(q[0]), float(q[1]), float(q[2])

    @property
    def real_quantile(self) -> float:
        """Share of simulated races below the real value (ties count half)."""
        below = float((self.simulated < self.real).sum())
        ties = float((self.simulated == self.real).sum())
        return (below + 0.5 * ties) / self.simulated.size

    @property
    def inside(self) -> bool:
        lo, _, hi = self.quantiles
        return lo <= self.real <= hi

    def as_dict(self) -> dict[str, Any]:
        lo, mid, hi = self.quantiles
        return {
            "statistic": self.name,
            "real": self.real,
            "q05": lo,
            "q50": mid,
            "q95": hi,
            "real_quantile": self.real_quantile,
            "inside": self.inside,
            "simulated_races": int(self.simulated.size),
        }


def compare(real: dict[str, float], simulated: list[dict[str, float]]) -> list[StatCheck]:
    """A check per real statistic that at least one simulated race has (NaNs left out)."""
    checks = []
    for name, value in real.items():
        sims = np.array([s[name] for s in simulated if name in s and np.isfinite(s[name])])
        if np.isfinite(value) and sims.size:
            checks.append(StatCheck(name, float(value), sims))
    return checks


def _session_id(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT session_id FROM sessions WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [r[0] for r in conn.execute("SELECT name FROM sessions ORDER BY session_id")]
        raise ValueError(f"no session {name!r} in table sessions (sessions: {', '.join(names)})")
    return int(row[0])


def refit_events(db: Path, leave_out: str, steps: int, seed: int, out: Path) -> Path:
    """Fit the event posterior on every race of ``db`` but ``leave_out``; the file written."""
    from events import observations as obs
    from events.fit import DEFAULT_NUTS, fit_all
    from events.posterior import complete_with_priors, save_posterior

    conn = obs.connect(db)
    try:
        train = [r for r in obs.races(conn) if r.name != leave_out]
        draws, report = fit_all(
            conn, train, steps=steps, draws=200, seed=seed, progress=False, nuts=DEFAULT_NUTS
        )
    finally:
        conn.close()
    import torch

    draws, prior_only = complete_with_priors(draws, torch.Generator().manual_seed(seed))
    metadata = {
        "command": f"engine.validate leave-out refit without {leave_out}",
        "data": {"db": str(db), "train": [r.name for r in train], "holdout": [leave_out]},
        "seed": seed,
        "steps": steps,
        "models": report,
        "prior_only_parameters": prior_only,
    }
    save_posterior(out, draws, metadata)
    return out


def validate(
    db: Path,
    session: str,
    *,
    scenario_path: str | None,
    replicas: int,
    seed: int,
    leave_out: bool,
    fit_steps: int,
    class_map: dict[str, str] | None,
    workdir: Path,
    progress: bool = False,
) -> tuple[list[StatCheck], dict[str, float]]:
    """(checks, timings [s]) of the real race ``session`` against ``replicas`` simulated ones."""
    from engine.export import write_lap_store
    from engine.race import StrategyAssignment, simulate
    from engine.scenario import load_scenario, parse_scenario
    from engine.scenario_builder import build_table

    timings: dict[str, float] = {}
    start = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        sid = _session_id(conn, session)
        real = race_stats(conn, sid, class_map)
    finally:
        conn.close()
    if scenario_path is not None:
        scenario = load_scenario(scenario_path)
    else:
        table = build_table(db, session, f"{session}-rebuilt", class_map=class_map)
        scenario = parse_scenario(table, f"built from {session}")
    timings["build_s"] = time.perf_counter() - start
    if leave_out:
        start = time.perf_counter()
        posterior = refit_events(db, session, fit_steps, seed, workdir / "leave_out.pt")
        scenario = replace(scenario, events=replace(scenario.events, model=str(posterior)))
        timings["refit_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result = simulate(
        scenario, StrategyAssignment(), replicas, seed, record_laps=True, progress=progress
    )
    timings["simulate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    sim_db = workdir / "simulated.sqlite"
    label = f"validate/{session}/seed{seed}"
    write_lap_store(result, scenario, sim_db, label)
    with sqlite3.connect(sim_db) as sim:
        simulated = [race_stats(sim, s) for s in session_ids(sim, label + "/")]
    timings["statistics_s"] = time.perf_counter() - start
    return compare(real, simulated), timings


def format_table(checks: list[StatCheck]) -> str:
    lines = [
        f"{'statistic':<30} {'real':>9} {'sim 5 %':>9} {'sim 50 %':>9} {'sim 95 %':>9} "
        f"{'real q':>6}"
    ]
    for c in checks:
        lo, mid, hi = c.quantiles
        flag = "" if c.inside else "  OUTSIDE"
        lines.append(
            f"{c.name:<30} {c.real:>9.4g} {lo:>9.4g} {mid:>9.4g} {hi:>9.4g} "
            f"{c.real_quantile:>6.2f}{flag}"
        )
    inside = sum(c.inside for c in checks)
    lines.append(
        f"\ninside the simulated 5-95 % range: {inside}/{len(checks)} "
        f"({100.0 * inside / max(len(checks), 1):.0f} %)"
    )
    return "\n".join(lines)


def plot(checks: list[StatCheck], path: Path, title: str) -> None:
    """One small panel per statistic: the simulated histogram, the real value as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 6
    rows = max(1, -(-len(checks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows), squeeze=False)
    for ax, c in zip(axes.flat, checks, strict=False):
        ax.hist(c.simulated, bins=20, color="0.7")
        ax.axvline(c.real, color="tab:blue" if c.inside else "tab:red", lw=2)
        ax.set_title(c.name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(checks) :]:
        ax.axis("off")
    fig.suptitle(f"{title}: simulated (grey) and real (line; red outside 5-95 %)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.validate",
        description="Compare a real race's statistics with those of races simulated from its "
        "scenario: real value, simulated 5/50/95 % quantiles and the real value's quantile.",
    )
    p.add_argument("--db", required=True, type=Path, help="lap store holding the real race")
    p.add_argument("--session", required=True, help="the real race (sessions.name)")
    p.add_argument(
        "--scenario",
        default=None,
        help="scenario (shipped name or TOML) to simulate; default: built from the race's "
        "own timing data by engine.scenario_builder",
    )
    p.add_argument("--replicas", type=int, default=64, help="races to simulate (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same result")
    p.add_argument(
        "--leave-out",
        action="store_true",
        help="refit the event posterior on the store's other races first (events.fit)",
    )
    p.add_argument(
        "--fit-steps", type=int, default=150, help="SVI steps per model of that refit (150)"
    )
    p.add_argument(
        "--class-map",
        default=None,
        help="TOML with a [classes] table of session class name = engine class",
    )
    p.add_argument("--plot", type=Path, default=None, help="write the panels to this image")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.replicas < 2:
        print("error: --replicas must be at least 2", file=sys.stderr)
        return 2
    if not args.db.is_file():
        print(f"error: {args.db}: no such lap store", file=sys.stderr)
        return 2
    from engine.scenario import ScenarioError

    try:
        class_map = load_class_map(args.class_map) if args.class_map else None
        with tempfile.TemporaryDirectory(prefix="stintsim-validate-") as tmp:
            checks, timings = validate(
                args.db.resolve(),
                args.session,
                scenario_path=args.scenario,
                replicas=args.replicas,
                seed=args.seed,
                leave_out=args.leave_out,
                fit_steps=args.fit_steps,
                class_map=class_map,
                workdir=Path(tmp),
                progress=not args.no_progress and not args.json,
            )
    except (ClassMapError, ScenarioError, ValueError, sqlite3.Error) as exc:
        print(f"error: {args.db}: {exc}", file=sys.stderr)
        return 2
    if args.plot is not None:
        plot(checks, args.plot, args.session)
    inside = sum(c.inside for c in checks)
    if args.json:
        out = {
            "session": args.session,
            "replicas": args.replicas,
            "seed": args.seed,
            "leave_out": args.leave_out,
            "inside": inside,
            "statistics": len(checks),
            "inside_share": inside / max(len(checks), 1),
            "timings_s": timings,
            "checks": [c.as_dict() for c in checks],
        }
        print(json.dumps(out))
    else:
        print(f"{args.session}: {args.replicas} simulated races (seed {args.seed})")
        print(format_table(checks))
        print("time [s]: " + ", ".join(f"{k[:-2]} {v:.1f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    run_main(main)
