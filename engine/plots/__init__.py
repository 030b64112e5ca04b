"""Matplotlib figures of simulated races and evaluation outcomes.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
figure state, no display needed), ready for ``savefig`` or a PDF / HTML report. Race figures
read ``RaceResult.laps`` (simulate with ``record_laps=True``) for one replica.
"""

from engine.plots.gantt import strategy_gantt
from engine.plots.outcomes import outcome_distributions
from engine.plots.positions import position_chart
from engine.plots.traces import fuel_and_tyre_traces

__all__ = ["fuel_and_tyre_traces", "outcome_distributions", "position_chart", "strategy_gantt"]
