"""Position and gap to the class leader over race time, for one car and its class rivals
(the nearest finishers highlighted, the rest of the class faint), with neutralisations shaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from engine.plots._laps import (
    HOUR_S,
    car_rows,
    class_cars,
    race_clock,
    race_laps,
    shade_neutralisations,
)
from engine.result import retirements

if TYPE_CHECKING:
    from engine.race import RaceResult


def gaps_to_class_leader(laps: dict[str, np.ndarray], cars: list[int]) -> dict[int, np.ndarray]:
    """Per car, its gap [s] at each of its laps to the first car of ``cars`` to complete
    that many laps (the classic race-history gap: positive = behind)."""
    first: dict[int, float] = {}
    for c in cars:
        cl = car_rows(laps, c)
        for lap, t in zip(cl["lap"].tolist(), cl["race_time_s"].tolist(), strict=True):
            first[lap] = min(first.get(lap, np.inf), t)
    out = {}
    for c in cars:
        cl = car_rows(laps, c)
        leader = np.array([first[lap] for lap in cl["lap"].tolist()], dtype=np.float64)
        out[c] = cl["race_time_s"].astype(np.float64) - leader
    return out


def rivals(result: RaceResult, replica: int, focus: str, limit: int) -> list[int]:
    """``focus`` and the class cars that finished nearest it in class (``limit`` in all,
    ``focus`` first): the rivals a strategist watches, whatever the class's size."""
    cars = class_cars(result, focus, limit=result.n_cars)
    position = result.class_position[replica]
    mine = int(position[cars[0]])
    nearest = sorted(cars[1:], key=lambda c: (abs(int(position[c]) - mine), int(position[c])))
    return [cars[0], *nearest[: limit - 1]]


def position_chart(result: RaceResult, replica: int, focus: str, max_cars: int = 8) -> Figure:
    """Class position (top) and gap to the class leader (bottom) over race time for ``focus``
    and the ``max_cars - 1`` class rivals that finished nearest it (the focus car thicker,
    each in the legend, a retirement marked x with its cause); the class's other cars are faint
    grey lines outside the legend, other classes are left out, so a 60-car field stays
    readable. Safety-car, FCY and slow-zone periods are shaded; race time reads h:mm:ss."""
    laps = race_laps(result, replica)
    everyone = class_cars(result, focus, limit=result.n_cars)
    shown = rivals(result, replica, focus, max_cars)
    gaps = gaps_to_class_leader(laps, everyone)
    out = retirements(result, replica)
    fig = Figure(figsize=(11, 7))
    ax_pos, ax_gap = fig.subplots(2, 1, sharex=True)
    for c in [c for c in everyone if c not in shown]:
        cl = car_rows(laps, c)
        t = cl["race_time_s"] / HOUR_S
        faint = {"color": "0.7", "linewidth": 0.6, "alpha": 0.5, "zorder": 1}
        ax_pos.step(t, cl["class_position"], where="post", **faint)
        ax_gap.plot(t, gaps[c], **faint)
    for c in shown:
        cl = car_rows(laps, c)
        t = cl["race_time_s"] / HOUR_S
        width = 2.4 if c == shown[0] else 1.0
        label = f"#{result.car_numbers[c]}" + (f" ({out[c][1]})" if c in out else "")
        (line,) = ax_pos.step(
            t, cl["class_position"], where="post", linewidth=width, label=label, zorder=3
        )
        ax_gap.plot(t, gaps[c], linewidth=width, label=label, color=line.get_color(), zorder=3)
        if c in out and t.size:
            ax_pos.plot(t[-1], cl["class_position"][-1], "x", color=line.get_color(), zorder=4)
    shading = shade_neutralisations([ax_pos, ax_gap], result, replica)
    ax_pos.invert_yaxis()
    ax_pos.set_ylabel("class position")
    ax_pos.yaxis.get_major_locator().set_params(integer=True)
    ax_pos.set_title(
        f"Position and gap to class leader, {result.scenario_name} race {replica}, "
        f"{result.car_classes[shown[0]]}"
    )
    handles, _ = ax_pos.get_legend_handles_labels()
    ax_pos.legend(
        handles=[*handles, *shading], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8
    )
    ax_gap.set_ylabel("gap to class leader [s]")
    race_clock(ax_gap)
    for ax in (ax_pos, ax_gap):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
