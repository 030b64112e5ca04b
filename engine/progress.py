"""Lap progress under a neutralisation: where a car is, and when it reaches the line.

A car moving from race time ``anchor`` with ``rem`` green-equivalent seconds to the line
drives at green pace, except that race time inside the neutralisation ``[ns, ne)`` with
lap-time factor ``f`` is worth ``1 / f`` green seconds (plus, behind the safety car, up to
``catch`` extra green seconds while it closes the gap to the car ahead). One formula, this
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
    """Green-equivalent seconds driven under the neutralisation, to the crossing or ``until``."""
    catch_used_s: torch.Tensor
    """Of ``neutral_s``, the extra seconds gained closing up behind the safety car."""


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
    # The whole neutralisation after the anchor (for the crossing, which may lie past until).
    m0 = torch.maximum(neut_start_s, anchor_s)
    m1 = torch.maximum(neut_end_s, anchor_s)
    dm = (m1 - m0).clamp(min=0.0)
    slow = dm / factor
    extra = dm - slow
    if catch_s is not None:
        slow = slow + torch.minimum(catch_s, extra).clamp(min=0.0)
    c1 = m0 - anchor_s  # green seconds before the neutralisation
    c2 = c1 + slow  # ... and through it
    f_eff = torch.where(slow > 0, dm / slow.clamp(min=1e-12), 1.0)
    cross = torch.where(
        rem_s <= c1,
        anchor_s + rem_s,
        torch.where(rem_s <= c2, m0 + (rem_s - c1) * f_eff, m1 + (rem_s - c2)),
    )
    stop = torch.minimum(cross, end)
    # Green-equivalent progress to `stop`: green before m0, the neutral part at f_eff, green after.
    green_before = (torch.minimum(stop, m0) - anchor_s).clamp(min=0.0)
    neutral_race = (torch.minimum(stop, m1) - m0).clamp(min=0.0)
    neutral = neutral_race / f_eff
    green_after = (stop - m1).clamp(min=0.0)
    catch_used = (neutral - neutral_race / factor).clamp(min=0.0)
    return Progress(
        crossed=cross < end,
        cross_s=cross,
        green_s=green_before + green_after,
        neutral_s=neutral,
        catch_used_s=catch_used,
    )
