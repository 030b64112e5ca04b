"""Fuel, virtual energy and tyre tread of one car over race time, one line per strategy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from engine.plots._laps import (
    HOUR_S,
    TREAD_COLUMNS,
    car_rows,
    race_clock,
    race_laps,
    shade_neutralisations,
)

if TYPE_CHECKING:
    from engine.race import RaceResult


def fuel_and_tyre_traces(races: Mapping[str, RaceResult], replica: int, car: str) -> Figure:
    """Fuel left, energy left (for cars with a virtual-energy allocation) and mean tread left
    at the end of each lap of ``car`` in race ``replica``, one line per strategy (``races``
    maps strategy label -> recorded races on the same seed)."""
    rows = {}
    for label, result in races.items():
        rows[label] = car_rows(race_laps(result, replica), result.car_numbers.index(car))
    has_energy = any(
        "energy_end" in r and bool(np.any(np.isfinite(r["energy_end"]) & (r["energy_end"] < 1.0)))
        for r in rows.values()
    )
    panels = 3 if has_energy else 2
    fig = Figure(figsize=(11, 2.6 * panels + 0.8))
    axes = fig.subplots(panels, 1, sharex=True)
    ax_fuel, ax_tread = axes[0], axes[-1]
    for label, r in rows.items():
        t = r["race_time_s"] / HOUR_S
        ax_fuel.plot(t, r["fuel_end"], label=label)
        if has_energy:
            axes[1].plot(t, r["energy_end"], label=label)
        tread = np.mean(np.stack([r[c] for c in TREAD_COLUMNS]), axis=0)
        ax_tread.plot(t, tread, label=label)
    ax_fuel.set_ylabel("fuel left [tank]")
    ax_fuel.set_title(f"Fuel, energy and tyre wear of car #{car}, race {replica}")
    ax_fuel.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if has_energy:
        axes[1].set_ylabel("energy left [allocation]")
    ax_tread.set_ylabel("mean tread left")
    shade_neutralisations(list(axes), next(iter(races.values())), replica)
    race_clock(ax_tread)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
