"""The rows of a line crossing, as the stepper's phases hand them on.

A window's crossing cars are flat rows ``idx`` (``replica * C + car``) of the ``[R, C]``
state. :class:`LapDone` is what completing the lap produced, :class:`AtLine` what every
crossing car meets at the line, :class:`Continuing` the subset still racing (they decide,
stop and draw a new lap), :class:`LapStart` the next laps to draw. Every field is ``[n]``
(``[n, 4]`` per wheel) over the rows of its class.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class LapDone:
    """Cars that completed a lap at the line in this window."""

    idx: torch.Tensor
    """Flat state rows (int64)."""
    rep: torch.Tensor
    """Chunk-local replica of each row (int64)."""
    car: torch.Tensor
    """Car index of each row (int64)."""
    t: torch.Tensor
    """Race time of the crossing [s] (float64)."""
    lap: torch.Tensor
    """Laps completed, this one included (int64)."""
    lap_time_s: torch.Tensor
    """Time of the lap just completed [s] (float64)."""
    fuel_start: torch.Tensor
    """Fuel at the lap's start, fraction of tank."""
    energy_start: torch.Tensor
    """Virtual energy at the lap's start, fraction of allocation."""
    driver: torch.Tensor
    """Driver who drove the lap (int64)."""
    flag: torch.Tensor
    """Worst ``FlagState`` the lap met (int64)."""
    pit_time_s: torch.Tensor
    """Pit-lane time of the stop before the lap [s] (an out lap's)."""
    out_lap: torch.Tensor
    """The lap began in the pit lane (bool)."""
    driver_change: torch.Tensor
    """The stop before the lap changed driver (bool)."""
    pace: torch.Tensor
    """``PaceMode`` the lap was driven in (int64)."""
    dry: torch.Tensor
    """The car ran out of fuel on the lap and is out of the race (bool)."""
    crawl_s: torch.Tensor
    """Time the car lost crawling on to the pits after running dry on the lap, where the
    rules let it (``Rules.dry_crawl_s``; 0 for every other row) [s] (float64)."""


@dataclass(frozen=True)
class LapEnd:
    """The state at the end of the completed lap, before a stop changes it (lap records)."""

    fuel: torch.Tensor
    energy: torch.Tensor
    tread: torch.Tensor
    """``[n, 4]``."""
    compound: torch.Tensor
    tyre_age_laps: torch.Tensor
    tyre_temp_c: torch.Tensor
    damage: torch.Tensor


@dataclass(frozen=True)
class AtLine:
    """What a crossing car meets at the line."""

    overall: torch.Tensor
    """Overall position, 1 = leading (float32)."""
    class_pos: torch.Tensor
    """Position in class (float32)."""
    gap_ahead_s: torch.Tensor
    """Gap to the car ahead in class [s] (float32)."""
    gap_behind_s: torch.Tensor
    """Gap to the car behind in class [s] (float32)."""
    rain: torch.Tensor
    wetness: torch.Tensor
    track_temp_c: torch.Tensor
    flag: torch.Tensor
    """``FlagState`` at the line at the crossing (int64)."""

    def select(self, rows: torch.Tensor) -> AtLine:
        """The entries of positions ``rows`` (int64)."""
        return AtLine(**{f.name: getattr(self, f.name).index_select(0, rows) for f in fields(self)})


@dataclass(frozen=True)
class Continuing:
    """The crossing cars still racing (not finished, not out): they decide, may stop, and
    start a new lap."""

    idx: torch.Tensor
    rep: torch.Tensor
    car: torch.Tensor
    t: torch.Tensor
    line: AtLine
    positions: torch.Tensor
    """Where these rows sit among the window's crossing rows (int64)."""

    @property
    def n(self) -> int:
        return int(self.idx.numel())


@dataclass(frozen=True)
class LapStart:
    """Laps to draw: flat rows ``idx`` start a lap at the line at race times ``t``."""

    idx: torch.Tensor
    t: torch.Tensor
    """Race time at the line [s] (float64)."""
    flag: torch.Tensor
    """``FlagState`` at the line (int64)."""
    out_lap: torch.Tensor
    """The lap starts in the pit lane (bool)."""
    traffic: torch.Tensor
    """Cars that crossed the line less than ``TRAFFIC_WINDOW_S`` before (float32)."""
    other_class_traffic: torch.Tensor
    """Of those, of another class (float32)."""
    slower_traffic: torch.Tensor
    """Of those, of a slower class: each costs ``overtake_cost_s`` (float32)."""
    hold_s: torch.Tensor | None = None
    """Pit-lane time before the car moves off [s] (float64); None: none."""
    wetness: torch.Tensor | None = None
    """Track wetness at ``t`` when already known (with ``track_temp_c``); None: read it."""
    track_temp_c: torch.Tensor | None = None
