"""Lap progress of many cars over one window of race time, with a neutralisation inside it.

One formula serves every row (the whole field at a window's start, and the cars that crossed
the line for the rest of the window): a car first serves its pit-lane time, then drives; race
time under a neutralisation with lap-time factor ``f`` is worth ``1 / f`` green seconds (more
for a car closing up to the car ahead behind the safety car). The line crossing is found by
inverting that piecewise-linear map, so the crossing time is exact for the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Progress:
    """Per row (float64 unless stated)."""

    hold_left_s: torch.Tensor
    """Pit-lane time still to serve after the window [s]."""
    track_s: torch.Tensor
    """Race time spent driving in the window [s]."""
    crossed: torch.Tensor
    """The car reached the line in the window (bool)."""
    cross_s: torch.Tensor
    """Race time of the crossing [s] (meaningless where not crossed)."""
    green_s: torch.Tensor
    """Green-equivalent seconds driven under green, up to the crossing if any."""
    neutral_s: torch.Tensor
    """Green-equivalent seconds driven under the neutralisation, up to the crossing if any."""
    neutral_race_s: torch.Tensor
    """Race time driven under the neutralisation in the window [s]."""


def advance(
    start_s: torch.Tensor | float,
    end_s: float,
    hold_s: torch.Tensor,
    rem_s: torch.Tensor,
    neut_start_s: torch.Tensor,
    neut_end_s: torch.Tensor,
    factor: torch.Tensor,
    catch_up_s: torch.Tensor | None = None,
) -> Progress:
    """Drive each row from ``start_s`` to ``end_s``.

    ``rem_s``: green-equivalent seconds to the line; ``[neut_start_s, neut_end_s)`` the
    neutralisation with lap-time ``factor`` (``inf`` bounds where none); ``catch_up_s`` extra
    green-equivalent seconds a car may gain closing up behind the safety car (>= 0).
    """
    span = end_s - start_s
    hold_used = torch.minimum(hold_s, torch.as_tensor(span, dtype=hold_s.dtype))
    track_start = start_s + hold_used
    dt = end_s - track_start
    n0 = torch.minimum(torch.maximum(neut_start_s, track_start), torch.full_like(dt, end_s))
    n1 = torch.minimum(torch.maximum(neut_end_s, track_start), torch.full_like(dt, end_s))
    dn = (n1 - n0).clamp(min=0.0)
    neutral_eq = dn / factor
    if catch_up_s is not None:
        neutral_eq = neutral_eq + torch.minimum(catch_up_s, dn - neutral_eq).clamp(min=0.0)
    consumed = (dt - dn) + neutral_eq
    crossed = consumed >= rem_s
    c1 = n0 - track_start
    c2 = c1 + neutral_eq
    f_eff = torch.where(neutral_eq > 0, dn / neutral_eq.clamp(min=1e-12), 1.0)
    cross = torch.where(
        rem_s <= c1,
        track_start + rem_s,
        torch.where(rem_s <= c2, n0 + (rem_s - c1) * f_eff, n1 + (rem_s - c2)),
    )
    upto = torch.minimum(consumed, rem_s)
    neutral_upto = torch.minimum((upto - c1).clamp(min=0.0), neutral_eq)
    return Progress(
        hold_left_s=hold_s - hold_used,
        track_s=dt,
        crossed=crossed,
        cross_s=cross,
        green_s=upto - neutral_upto,
        neutral_s=neutral_upto,
        neutral_race_s=dn,
    )
