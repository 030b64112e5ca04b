"""Selecting one race's laps from a batch of recorded races, and shared plot styling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from world_model.interface import Compound, FlagState

if TYPE_CHECKING:
    from engine.race import RaceResult

COMPOUND_COLOURS: dict[int, str] = {
    int(Compound.SOFT): "#d62728",
    int(Compound.MEDIUM): "#f2c12e",
    int(Compound.HARD): "#9a9a9a",
    int(Compound.WET): "#1f77b4",
}
"""Tyre colours as the sidewall markings (soft red, medium yellow, hard grey/white, wet blue)."""

TREAD_COLUMNS = ("tread_fl", "tread_fr", "tread_rl", "tread_rr")


def race_laps(result: RaceResult, replica: int) -> dict[str, np.ndarray]:
    """The laps of row ``replica`` of ``result``, every column sorted by (car, lap)."""
    if result.laps is None:
        raise ValueError("the race has no lap records; simulate with record_laps=True")
    if not 0 <= replica < result.replicas:
        raise ValueError(f"replica {replica} is not in 0..{result.replicas - 1}")
    laps = result.laps
    # lap records carry the global replica index (a chunk's rows start at first_replica)
    rows = np.flatnonzero(np.asarray(laps["replica"]) == result.first_replica + replica)
    order = np.lexsort((np.asarray(laps["lap"])[rows], np.asarray(laps["car"])[rows]))
    rows = rows[order]
    return {k: np.asarray(v)[rows] for k, v in laps.items()}


def car_rows(laps: dict[str, np.ndarray], car_index: int) -> dict[str, np.ndarray]:
    """The laps of one car (by index into ``RaceResult.car_numbers``)."""
    mask = laps["car"] == car_index
    return {k: v[mask] for k, v in laps.items()}


def class_cars(result: RaceResult, car: str, limit: int = 8) -> list[int]:
    """Indices of ``car`` and the other cars of its class (at most ``limit``, ``car`` first)."""
    c = result.car_numbers.index(car)
    same = [i for i, k in enumerate(result.car_classes) if k == result.car_classes[c] and i != c]
    return [c, *same[: limit - 1]]


HOUR_S = 3600.0


NEUTRAL_STYLES: dict[int, tuple[str, str]] = {
    int(FlagState.SAFETY_CAR): ("safety car", "#ff9f1c"),
    int(FlagState.FCY): ("full-course yellow", "#ffe066"),
    int(FlagState.SLOW_ZONE): ("slow zone", "#fff3b0"),
}
"""Neutralisation kind -> (legend label, shading colour)."""


def race_clock(ax: Axes) -> None:
    """Label an x axis in hours of race time as the race clock, h:mm:ss."""
    from engine.readable_state import hms

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: hms(x * HOUR_S)))
    ax.set_xlabel("race time [h:mm:ss]")


def neutralisations(result: RaceResult, replica: int) -> list[tuple[int, float, float]]:
    """``(kind, start_s, end_s)`` of the safety-car, FCY and slow-zone periods of a race."""
    fp = result.flag_periods
    rows = np.flatnonzero(np.asarray(fp["replica"]) == result.first_replica + replica)
    return [
        (int(fp["kind"][i]), float(fp["start_s"][i]), float(fp["end_s"][i]))
        for i in rows
        if int(fp["kind"][i]) in NEUTRAL_STYLES
    ]


def shade_neutralisations(axes: list[Axes], result: RaceResult, replica: int) -> list[Patch]:
    """Shade each neutralisation of the race on every axis (x in hours); the legend handles,
    one per kind that occurs."""
    kinds: set[int] = set()
    for kind, start, end in neutralisations(result, replica):
        kinds.add(kind)
        for ax in axes:
            ax.axvspan(
                start / HOUR_S,
                end / HOUR_S,
                color=NEUTRAL_STYLES[kind][1],
                alpha=0.35,
                linewidth=0,
                zorder=0,
                gid=f"neutral:{FlagState(kind).name.lower()}",
            )
    return [
        Patch(facecolor=NEUTRAL_STYLES[k][1], alpha=0.35, label=NEUTRAL_STYLES[k][0])
        for k in sorted(kinds)
    ]
