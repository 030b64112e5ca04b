"""What the shared sim logs can say about the engine's risk priors (:mod:`engine.risks`).

``python -m events.risk_fit FILE [--json]`` reads a results log that records fuel per lap
(LMU / rFactor 2 XML: ``fuel`` and ``fuelUsed``; LMU: ``ve`` / ``veUsed``) and measures how
much a car's fuel (and virtual-energy) use per lap varies:

- ``lap_cv``: lap to lap within a stint (the lap model's per-lap noise);
- ``stint_cv``: a stint's mean use per lap around the car's own mean over its stints, less
  the part the lap noise explains (``lap_cv² / laps``), pooled over cars with two or more
  stints: the fuel risk's ``stint_cv`` (how far a stint's fuel use strays from the team's
  planning figure).

Green laps only: no pit in- or out-lap, no lap 1 and no lap under a neutralisation. The
numbers are small-sample: a 60-minute online race gives one or two stints a car.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.entry import run_main


@dataclass(frozen=True)
class UseSpread:
    """Spread of one consumable's use per green lap."""

    channel: str
    cars: int
    """Cars with a usable stint."""
    laps: int
    """Green laps used."""
    lap_cv: float
    """Lap-to-lap coefficient of variation within a stint (pooled)."""
    stint_cv: float
    """Stint-to-stint coefficient of variation of the mean use per lap, net of lap noise
    (pooled over cars with two or more stints; NaN where none)."""
    stint_pairs: int
    """Stints that entered ``stint_cv``."""


def _green_laps(laps: list[dict[str, Any]], flagged: set[tuple[str, int]]) -> dict[str, list]:
    """Per car: stints as lists of (fuel used, energy used) of green laps."""
    by_car: dict[str, list[dict[str, Any]]] = {}
    for lap in laps:
        by_car.setdefault(str(lap["car"]), []).append(lap)
    out: dict[str, list] = {}
    for car, rows in by_car.items():
        rows.sort(key=lambda r: r["lap"])
        stints: list[list[tuple[float, float]]] = [[]]
        prev = None
        for row in rows:
            clean = (
                prev is not None
                and not row.get("pit_in")
                and not row.get("pit_out")
                and not prev.get("pit_in")
                and row["lap"] > 1
                and (car, int(row["lap"])) not in flagged
            )
            if clean:
                fuel = _used(prev.get("fuel_end"), row.get("fuel_end"))
                energy = _used(row.get("energy_start"), row.get("energy_end"))
                stints[-1].append((fuel, energy))
            if row.get("pit_in"):
                stints.append([])
            prev = row
        out[car] = [s for s in stints if s]
    return out


def _used(start: Any, end: Any) -> float:
    if start is None or end is None:
        return math.nan
    used = float(start) - float(end)
    return used if used > 0 else math.nan


def spread(stints_by_car: dict[str, list], channel: int, name: str, min_laps: int = 5) -> UseSpread:
    """:class:`UseSpread` of column ``channel`` (0 fuel, 1 energy) of every car's stints."""
    lap_dev: list[float] = []
    stint_terms: list[float] = []
    cars = laps = 0
    for stints in stints_by_car.values():
        usable = []
        for stint in stints:
            v = np.array([row[channel] for row in stint], dtype=float)
            v = v[np.isfinite(v)]
            if v.size >= min_laps:
                usable.append(v)
        if not usable:
            continue
        cars += 1
        laps += sum(v.size for v in usable)
        for v in usable:
            lap_dev.extend((v / v.mean() - 1.0).tolist())
        if len(usable) >= 2:
            means = np.array([v.mean() for v in usable])
            ratio = means / means.mean()
            stint_terms.extend(((ratio - 1.0) ** 2 * len(usable) / (len(usable) - 1)).tolist())
    lap_cv = float(np.std(lap_dev, ddof=1)) if len(lap_dev) > 1 else math.nan
    if stint_terms:
        mean_laps = laps / max(1, sum(len(s) for s in stints_by_car.values()))
        raw = float(np.mean(stint_terms))
        stint_cv = math.sqrt(max(0.0, raw - lap_cv**2 / max(mean_laps, 1.0)))
    else:
        stint_cv = math.nan
    return UseSpread(name, cars, laps, lap_cv, stint_cv, len(stint_terms))


def fit_file(path: Path) -> list[UseSpread]:
    """Fuel and energy spreads of every session of a results log."""
    from data.ingest import read_file

    result = read_file(path)
    out = []
    for session in result.sessions:
        flagged = {
            (str(lap["car"]), int(lap["lap"]))
            for lap in session.laps
            if lap.get("flag") not in (None, 0, "green", "GREEN")
        }
        stints = _green_laps(session.laps, flagged)
        out.append(spread(stints, 0, "fuel"))
        out.append(spread(stints, 1, "energy"))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m events.risk_fit",
        description="Measure the lap-to-lap and stint-to-stint spread of fuel and virtual-energy "
        "use per green lap in a results log (the fuel risk's stint_cv prior).",
    )
    p.add_argument("file", help="LMU / rFactor 2 results XML with fuel per lap")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    spreads = fit_file(path)
    if args.json:
        print(json.dumps({"file": str(path), "spreads": [asdict(s) for s in spreads]}))
        return 0
    print(f"{'channel':<8} {'cars':>5} {'laps':>6} {'lap CV':>8} {'stint CV':>9} {'stints':>7}")
    for s in spreads:
        print(
            f"{s.channel:<8} {s.cars:>5} {s.laps:>6} {s.lap_cv:>8.4f} {s.stint_cv:>9.4f} "
            f"{s.stint_pairs:>7}"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
