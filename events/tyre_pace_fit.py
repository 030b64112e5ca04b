"""What the shared sim logs say about the lap-time cost of worn tread.

``python -m events.tyre_pace_fit FILE [FILE ...] [--json]`` reads results logs that record
tread per wheel and fuel per lap (LMU / rFactor 2 XML) and fits, within each car, a green lap's
departure from the car's 10th-percentile lap against the tread its tyres had lost at the lap's
start (mean of four wheels) and the fuel it carried (fraction of tank):

    lap / car's q10 - 1 = tread_time * tread_lost + fuel_time * fuel + car's own offset

``tread_time`` (fraction of lap time per unit of tread lost) is the engine's
``Scenario.lap_model_carried_wear_time``: the pace a set carried into a stint costs, which a
lap model learned from timing data cannot know (timing never says which stops changed tyres).
The fit per file and their median are printed; the shipped default is that median.

Green laps only: no pit in- or out-lap, no lap 1 or 2 (standing start, cold tyres), no lap
under a neutralisation, and no lap more than 4 % off the car's q10 (traffic, offs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.entry import run_main

WHEELS = ("fl", "fr", "rl", "rr")
SLOW_LAP = 0.04
"""Laps further than this off the car's q10 are traffic or incidents, not tyre pace."""
MIN_CAR_LAPS = 5


@dataclass(frozen=True)
class TreadPace:
    """The fit of one session."""

    session: str
    cars: int
    laps: int
    tread_time: float
    """Lap-time fraction per unit of mean tread lost at the lap's start."""
    fuel_time: float
    """Lap-time fraction per tank of fuel carried (the same fit's other slope)."""
    tread_lost_q95: float
    """95th percentile of the tread lost the fit saw (it says nothing beyond)."""


def _rows(laps: list[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    """(car, lap time, tread lost at the start, fuel at the start) of clean green laps."""
    by_car: dict[str, list[dict[str, Any]]] = {}
    for lap in laps:
        by_car.setdefault(str(lap["car"]), []).append(lap)
    out = []
    for car, rows in by_car.items():
        rows.sort(key=lambda r: r["lap"])
        for prev, row in itertools.pairwise(rows):
            treads = [prev.get(f"tread_{w}") for w in WHEELS]
            clean = (
                int(row["lap"]) == int(prev["lap"]) + 1
                and int(row["lap"]) > 2
                and not row.get("pit_in")
                and not row.get("pit_out")
                and not prev.get("pit_in")
                and row.get("timed", 1)
                and row.get("flag") in (None, 0, "green", "GREEN")
                and row.get("lap_time_s") is not None
                and row.get("fuel_start") is not None
                and all(t is not None for t in treads)
            )
            if clean:
                lost = 1.0 - float(np.mean([float(t) for t in treads]))
                out.append((car, float(row["lap_time_s"]), lost, float(row["fuel_start"])))
    return out


def fit_rows(rows: list[tuple[str, float, float, float]], session: str) -> TreadPace | None:
    """Within-car least squares of the departure on tread lost and fuel; None if too few."""
    cars = np.array([r[0] for r in rows])
    lap = np.array([r[1] for r in rows])
    x = np.array([[r[2], r[3]] for r in rows]).reshape(-1, 2)
    dep, xs, used = [], [], []
    for car in np.unique(cars):
        m = cars == car
        if m.sum() < MIN_CAR_LAPS:
            continue
        d = lap[m] / np.percentile(lap[m], 10) - 1.0
        keep = d < SLOW_LAP
        if keep.sum() < MIN_CAR_LAPS:
            continue
        # Demeaned within the car: its own pace offset drops out.
        dep.append(d[keep] - d[keep].mean())
        xs.append(x[m][keep] - x[m][keep].mean(axis=0))
        used.append(car)
    if len(used) < 2:
        return None
    y, a = np.concatenate(dep), np.concatenate(xs)
    beta = np.linalg.lstsq(a, y, rcond=None)[0]
    lost = x[np.isin(cars, used), 0]
    q95 = float(np.quantile(lost, 0.95))
    return TreadPace(session, len(used), int(y.size), float(beta[0]), float(beta[1]), q95)


def fit_file(path: Path) -> list[TreadPace]:
    """:class:`TreadPace` of every session of a results log with tread and fuel per lap."""
    from data.ingest import read_file

    out = []
    for session in read_file(path).sessions:
        fit = fit_rows(_rows(session.laps), session.name)
        if fit is not None:
            out.append(fit)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m events.tyre_pace_fit",
        description="Fit the lap-time cost of worn tread (fraction of lap time per unit of tread "
        "lost), within each car, from results logs with tread and fuel per lap: the engine's "
        "lap_model_carried_wear_time.",
    )
    p.add_argument("files", nargs="+", help="LMU / rFactor 2 results XML with tread per lap")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fits: list[TreadPace] = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        fits.extend(fit_file(path))
    if not fits:
        print("error: no session with tread and fuel per lap in the files given", file=sys.stderr)
        return 1
    median = float(np.median([f.tread_time for f in fits]))
    if args.json:
        print(json.dumps({"fits": [asdict(f) for f in fits], "median_tread_time": median}))
        return 0
    print(f"{'session':<48} {'cars':>5} {'laps':>6} {'tread':>8} {'fuel':>8} {'lost q95':>9}")
    for f in fits:
        print(
            f"{f.session:<48} {f.cars:>5} {f.laps:>6} {f.tread_time:>8.4f} {f.fuel_time:>8.4f} "
            f"{f.tread_lost_q95:>9.2f}"
        )
    print(f"median tread_time {median:.4f} (lap-time fraction per unit of tread lost)")
    return 0


if __name__ == "__main__":
    run_main(main)
