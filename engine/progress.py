"""Lap progress under a neutralisation: where a car is, and when it reaches the line.

A car moving from race time ``anchor`` with ``rem`` green-equivalent seconds to the line
drives at green pace, except that race time inside the neutralisation ``[ns, ne)`` with
lap-time factor ``f`` is worth ``1 / f`` green seconds; behind the safety car a car first
keeps green speed until it has gained its ``catch`` seconds (closing the gap to the car
ahead), so for it the neutralisation starts that much later. One formula, this
piecewise-linear map and its inverse, serves every question the stepper asks: the predicted
crossing time of a lap (``until = inf``), the progress up to a moment (re-anchoring when the
flag schedule changes or damage slows a car), and the green / neutral split of a finished lap
(for its fuel and wear). So an event at race time ``t`` affects exactly the laps that span it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FOREVER_S = 1.0e15
"""A race time beyond any race [s] (``until`` for crossing predictions)."""


@dataclass(frozen=True)
class Progress:
    """Per row, float64."""

    crossed: torch.Tensor
    """The car reaches the line before ``until`` (bool)."""
    cross_s: torch.Tensor
    """Race time it reaches the line [s], computed for every row (past ``until`` too)."""
    green_s: torch.Tensor
    """Green-equivalent seconds driven under green, to the crossing or ``until``."""
    neutral_s: torch.Tensor
    """Green-equivalent seconds driven at the neutralisation's pace, to the crossing or
    ``until`` (closing-up time behind the safety car counts as green)."""
    catch_used_s: torch.Tensor
    """Catch-up seconds used (green seconds gained over the safety car's pace)."""
    under_s: torch.Tensor
    """Race time spent while the neutralisation was out, to the crossing or ``until`` [s]."""


def drive(
    anchor_s: torch.Tensor,
    until_s: torch.Tensor | float,
    rem_s: torch.Tensor,
    neut_start_s: torch.Tensor,
    neut_end_s: torch.Tensor,
    factor: torch.Tensor,
    catch_s: torch.Tensor | None = None,
) -> Progress:
    """Drive rows from ``anchor_s`` (>= their pit exit) towards the line until ``until_s``."""
    end = torch.maximum(torch.as_tensor(until_s, dtype=anchor_s.dtype), anchor_s)
    # The neutralisation after the anchor (whole: the crossing may lie past `until`).
    m0 = torch.maximum(neut_start_s, anchor_s)
    m1 = torch.maximum(neut_end_s, anchor_s)
    gain = (1.0 - 1.0 / factor).clamp(min=0.0)  # green seconds lost per second of it
    span = torch.where(m1 > m0, m1 - m0, 0.0)  # (no NaN from inf - inf when none is set)
    if catch_s is not None:
        # Closing up behind the safety car: the car keeps green speed until it has gained
        # its catch-up seconds, i.e. the neutralisation starts later for it.
        chase = torch.where(gain > 0, catch_s.clamp(min=0.0) / gain.clamp(min=1e-12), 0.0)
        n0 = m0 + torch.minimum(chase, span)
    else:
        n0 = m0
    slow = torch.where(m1 > n0, m1 - n0, 0.0) / factor
    c1 = n0 - anchor_s  # green seconds before the (car's) neutralisation
    c2 = c1 + slow  # ... and through it
    cross = torch.where(
        rem_s <= c1,
        anchor_s + rem_s,
        torch.where(rem_s <= c2, n0 + (rem_s - c1) * factor, m1 + (rem_s - c2)),
    )
    stop = torch.minimum(cross, end)
    # Green-equivalent progress to `stop`: green before n0, 1/f through it, green after m1.
    green = (torch.minimum(stop, n0) - anchor_s).clamp(min=0.0) + (stop - m1).clamp(min=0.0)
    neutral = (torch.minimum(stop, m1) - n0).clamp(min=0.0) / factor
    catch_used = (torch.minimum(stop, n0) - m0).clamp(min=0.0) * gain
    return Progress(
        crossed=cross < end,
        cross_s=cross,
        green_s=green,
        neutral_s=neutral,
        catch_used_s=catch_used,
        under_s=(torch.minimum(stop, m1) - m0).clamp(min=0.0),
    )
