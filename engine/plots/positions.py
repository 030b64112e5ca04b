"""Position and gap to the class leader over race time, for one car and its class rivals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from engine.plots._laps import HOUR_S, car_rows, class_cars, race_laps

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


def position_chart(result: RaceResult, replica: int, focus: str, max_cars: int = 8) -> Figure:
    """Class position (top) and gap to the class leader (bottom) over race time for ``focus``
    and its class rivals (up to ``max_cars`` lines, the focus car drawn thicker)."""
    laps = race_laps(result, replica)
    cars = class_cars(result, focus, max_cars)
    gaps = gaps_to_class_leader(laps, cars)
    fig = Figure(figsize=(11, 7))
    ax_pos, ax_gap = fig.subplots(2, 1, sharex=True)
    for c in cars:
        cl = car_rows(laps, c)
        t = cl["race_time_s"] / HOUR_S
        width = 2.4 if c == cars[0] else 1.0
        label = f"#{result.car_numbers[c]}"
        ax_pos.step(t, cl["class_position"], where="post", linewidth=width, label=label)
        ax_gap.plot(t, gaps[c], linewidth=width, label=label)
    ax_pos.invert_yaxis()
    ax_pos.set_ylabel("class position")
    ax_pos.yaxis.get_major_locator().set_params(integer=True)
    ax_pos.set_title(
        f"Position and gap to class leader, {result.scenario_name} race {replica}, "
        f"{result.car_classes[cars[0]]}"
    )
    ax_pos.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax_gap.set_ylabel("gap to class leader [s]")
    ax_gap.set_xlabel("race time [h]")
    for ax in (ax_pos, ax_gap):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
