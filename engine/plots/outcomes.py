"""Outcome distributions of several strategies side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from engine.montecarlo import Outcomes


def _grouped_shares(ax, values: Mapping[str, np.ndarray], xlabel: str) -> None:
    positions = np.unique(np.concatenate([v for v in values.values()]))
    width = 0.8 / len(values)
    for i, (label, v) in enumerate(values.items()):
        share = np.array([np.mean(v == p) for p in positions])
        offset = (i - (len(values) - 1) / 2) * width
        ax.bar(positions + offset, share, width=width, label=label)
    ax.set_xticks(positions)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of races")
    ax.grid(axis="y", alpha=0.3)


def outcome_distributions(outcomes: Mapping[str, Outcomes]) -> Figure:
    """Class and overall finishing positions (grouped bars, one series per strategy) and laps
    completed (box per strategy) of the evaluated car."""
    fig = Figure(figsize=(13, 4.5))
    ax_class, ax_overall, ax_laps = fig.subplots(1, 3)
    _grouped_shares(ax_class, {k: o.class_position for k, o in outcomes.items()}, "class position")
    ax_class.set_title("Class position")
    ax_class.legend(fontsize=8)
    _grouped_shares(
        ax_overall, {k: o.overall_position for k, o in outcomes.items()}, "overall position"
    )
    ax_overall.set_title("Overall position")
    labels = list(outcomes)
    ax_laps.boxplot([o.laps for o in outcomes.values()], tick_labels=labels)
    ax_laps.set_ylabel("laps completed")
    ax_laps.set_title("Laps completed")
    ax_laps.tick_params(axis="x", labelrotation=15)
    n = len(next(iter(outcomes.values())))
    fig.suptitle(f"Outcome distributions ({n} races per strategy, same random numbers)")
    fig.tight_layout()
    return fig
