"""Strategy Gantt: each car's stints over race time, coloured by compound, driver changes and
new tyres marked (a change on the same compound too), the focus car's stops labelled with
their lap, time in the pit lane and the fuel level filled to, retirements marked with their
cause, safety-car / FCY / slow-zone periods shaded, race time as h:mm:ss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from engine.plots._laps import (
    COMPOUND_COLOURS,
    HOUR_S,
    car_rows,
    race_clock,
    race_laps,
    shade_neutralisations,
)
from engine.result import retirements
from world_model.interface import Compound

if TYPE_CHECKING:
    from engine.race import RaceResult


def stints(car_laps: dict[str, np.ndarray]) -> list[tuple[float, float, int]]:
    """``(start_s, end_s, compound)`` of each stint of one car's laps (sorted by lap): a stint
    runs from the start of the lap after a stop (or the race start) to the end of the lap
    that enters the pits (or the car's last lap)."""
    if car_laps["lap"].shape[0] == 0:
        return []
    end = car_laps["race_time_s"].astype(np.float64)
    start = end - car_laps["lap_time_s"].astype(np.float64)
    pit_in = car_laps["pit_in"].astype(bool)
    stint_id = np.concatenate([[0], np.cumsum(pit_in[:-1])])
    out = []
    for k in np.unique(stint_id):
        rows = np.flatnonzero(stint_id == k)
        compound = int(car_laps["compound"][rows[0]])
        out.append((float(start[rows[0]]), float(end[rows[-1]]), compound))
    return out


def driver_changes(car_laps: dict[str, np.ndarray]) -> np.ndarray:
    """Race times [s] at which the car changed driver (start of the first lap of the new one)."""
    driver = car_laps["driver"]
    if driver.shape[0] < 2:
        return np.empty(0)
    changed = np.flatnonzero(driver[1:] != driver[:-1]) + 1
    starts = car_laps["race_time_s"] - car_laps["lap_time_s"]
    return starts[changed].astype(np.float64)


def stops(car_laps: dict[str, np.ndarray]) -> list[tuple[float, int, float, float, bool]]:
    """``(race_time_s, lap, lane_s, fuel_to, new_tyres)`` of each stop of one car's laps: the
    in-lap's crossing and number, the time in the pit lane and the fuel level on leaving
    (fraction), and whether the out-lap runs on new tyres."""
    out = []
    pit_in = np.flatnonzero(car_laps["pit_in"].astype(bool))
    for i in pit_in:
        if i + 1 >= car_laps["lap"].shape[0]:
            continue
        out.append(
            (
                float(car_laps["race_time_s"][i]),
                int(car_laps["lap"][i]),
                float(car_laps["pit_time_s"][i + 1]),
                float(car_laps["fuel_start"][i + 1]),
                bool(car_laps["tyre_age_laps"][i + 1] <= 1),
            )
        )
    return out


def strategy_gantt(
    result: RaceResult, replica: int, focus: str | None = None, cars: list[str] | None = None
) -> Figure:
    """Stints per car (rows, finishing order from the top) of one simulated race.

    Bars are coloured by compound; black triangles mark driver changes, white ones new tyres
    (on the same compound too). ``focus`` (a race number) is drawn in bold with each stop
    labelled "L<lap> <time in the pit lane>s <fuel filled to>%"; ``cars`` limits the rows
    (default: every car).
    """
    laps = race_laps(result, replica)
    numbers = result.car_numbers
    chosen = [numbers.index(n) for n in cars] if cars else list(range(len(numbers)))
    order = sorted(chosen, key=lambda c: int(result.finish_position[replica, c]))
    fig = Figure(figsize=(11, 1.2 + 0.42 * len(order)))
    ax = fig.add_subplot()
    compounds_seen: set[int] = set()
    out = {c: v for c, v in retirements(result, replica).items() if c in chosen}
    changes_seen = False
    tyres_seen = False
    for row, c in enumerate(order):
        y = len(order) - 1 - row
        cl = car_rows(laps, c)
        bars = stints(cl)
        compounds_seen |= {b[2] for b in bars}
        ax.broken_barh(
            [(s / HOUR_S, (e - s) / HOUR_S) for s, e, _ in bars],
            (y - 0.35, 0.7),
            facecolors=[COMPOUND_COLOURS.get(k, "white") for _, _, k in bars],
            edgecolors="black",
            linewidths=0.6,
            label=f"#{numbers[c]}",
        )
        t = driver_changes(cl)
        if t.size:
            changes_seen = True
            ax.plot(t / HOUR_S, np.full(t.shape, y + 0.42), "v", color="black", markersize=5)
        made = stops(cl)
        fresh = [at for at, _, _, _, new in made if new]
        if fresh:
            tyres_seen = True
            ax.plot(
                np.array(fresh) / HOUR_S,
                np.full(len(fresh), y - 0.42),
                "^",
                color="white",
                markeredgecolor="black",
                markersize=5,
            )
        if c in out:
            when = out[c][0] if np.isfinite(out[c][0]) else bars[-1][1] if bars else 0.0
            _mark_retirement(ax, when, y, out[c][1])
        if focus is not None and numbers[c] == focus:
            for at, lap, lane_s, fuel_to, _ in made:
                ax.annotate(
                    f"L{lap} {lane_s:.0f}s {100 * fuel_to:.0f}%",
                    (at / HOUR_S, y),
                    xytext=(2, 0),
                    textcoords="offset points",
                    fontsize=6,
                    ha="left",
                    va="center",
                )
    # tick y = len - 1 - row: the bottom tick is the last finisher, the top one the winner
    bottom_up = order[::-1]
    ax.set_yticks(range(len(order)), [f"#{numbers[c]} {result.car_classes[c]}" for c in bottom_up])
    if focus is not None and focus in numbers and numbers.index(focus) in order:
        ax.get_yticklabels()[bottom_up.index(numbers.index(focus))].set_fontweight("bold")
    shading = shade_neutralisations([ax], result, replica)
    race_clock(ax)
    ax.set_ylabel("car (finishing order)")
    strategy = ""
    if focus is not None and focus in numbers:
        strategy = f", car #{focus}: {result.strategy_names[numbers.index(focus)]}"
    ax.set_title(f"Strategy Gantt, {result.scenario_name} race {replica}{strategy}")
    _legend(ax, compounds_seen, changes_seen, tyres_seen, bool(out), shading)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


RETIRED_COLOUR = "#b00020"


def _mark_retirement(ax: Axes, when_s: float, y: float, cause: str) -> None:
    ax.plot(when_s / HOUR_S, y, "X", color=RETIRED_COLOUR, markersize=7, zorder=4)
    ax.annotate(
        cause,
        (when_s / HOUR_S, y),
        xytext=(5, 0),
        textcoords="offset points",
        fontsize=7,
        color=RETIRED_COLOUR,
        va="center",
    )


def _legend(
    ax: Axes,
    compounds_seen: set[int],
    changes_seen: bool,
    tyres_seen: bool,
    retired: bool,
    shading: list[Patch],
) -> None:
    """Compounds, the markers that occur, and the neutralisation kinds shaded."""
    handles: list = [
        Patch(facecolor=COMPOUND_COLOURS[k], edgecolor="black", label=Compound(k).name.lower())
        for k in sorted(compounds_seen)
        if k in COMPOUND_COLOURS
    ]
    if changes_seen:
        handles.append(
            Line2D([], [], marker="v", color="black", linestyle="none", label="driver change")
        )
    if tyres_seen:
        handles.append(
            Line2D(
                [],
                [],
                marker="^",
                color="white",
                markeredgecolor="black",
                linestyle="none",
                label="new tyres",
            )
        )
    if retired:
        handles.append(
            Line2D(
                [], [], marker="X", color=RETIRED_COLOUR, linestyle="none", label="retired (cause)"
            )
        )
    handles += shading
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
