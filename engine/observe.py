"""Positions, gaps and traffic from race distance, for the cars at the line and at the flag.

Race distance is laps completed plus the fraction of the current lap driven. A finished car
stays at its lap count (ties broken by the earlier finish); a retired car drops behind every
running car and keeps its distance order among the retired.
"""

from __future__ import annotations

import torch

RETIRED_OFFSET = 1.0e6
FINISH_TIEBREAK = 1.0e-7
"""Distance [laps] given up per second of finish time, so earlier finishers rank first."""
TRAFFIC_WINDOW_S = 5.0
"""Cars within this many seconds ahead count as traffic [s]."""


def distance_key(
    lap: torch.Tensor,
    rem_s: torch.Tensor,
    lap_total_s: torch.Tensor,
    finished: torch.Tensor,
    retired: torch.Tensor,
    finish_time_s: torch.Tensor,
) -> torch.Tensor:
    """``[R, C]`` float64 ranking key: higher is further ahead."""
    frac = torch.where(lap_total_s > 0, 1.0 - rem_s / lap_total_s.clamp(min=1e-9), 0.0)
    key = lap.double() + frac.clamp(0.0, 0.999999)
    key = torch.where(finished, lap.double() - FINISH_TIEBREAK * finish_time_s, key)
    return torch.where(retired, key - RETIRED_OFFSET, key)


def row_positions(
    key: torch.Tensor,
    rep: torch.Tensor,
    car: torch.Tensor,
    class_index: torch.Tensor,
    ref_lap_time_s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(overall position, class position, gap ahead in class [s], gap behind in class [s])
    of rows ``(rep, car)``; gaps are distance differences at the row's reference pace."""
    keys = key[rep]
    mine = keys.gather(1, car.unsqueeze(1))
    ahead = keys > mine
    same = class_index.unsqueeze(0) == class_index[car].unsqueeze(1)
    overall = 1 + ahead.sum(dim=1)
    cls_ahead = ahead & same
    cls_pos = 1 + cls_ahead.sum(dim=1)
    diff = keys - mine
    inf = torch.tensor(float("inf"), dtype=diff.dtype)
    gap_a = torch.where(cls_ahead, diff, inf).min(dim=1).values
    behind = (keys < mine) & same
    gap_b = torch.where(behind, -diff, inf).min(dim=1).values
    ref = ref_lap_time_s[car].double()
    gap_a = torch.where(torch.isfinite(gap_a), gap_a * ref, 0.0)
    gap_b = torch.where(torch.isfinite(gap_b), gap_b * ref, 0.0)
    return overall.float(), cls_pos.float(), gap_a.float(), gap_b.float()


def near_line_by_class(
    rem_s: torch.Tensor,
    lap_total_s: torch.Tensor,
    on_track: torch.Tensor,
    class_onehot: torch.Tensor,
) -> torch.Tensor:
    """``[R, K]`` cars of each class less than ``TRAFFIC_WINDOW_S`` past the line: the
    traffic a car crossing now finds ahead of it."""
    driven = lap_total_s - rem_s
    near = on_track & (driven > 0) & (driven < TRAFFIC_WINDOW_S)
    return near.float() @ class_onehot


def final_order(key: torch.Tensor, class_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(overall position, class position) ``[R, C]`` int64 from the ranking key."""
    order = torch.argsort(key, dim=1, descending=True, stable=True)
    r, c = key.shape
    pos = torch.empty_like(order)
    pos.scatter_(1, order, torch.arange(1, c + 1).expand(r, c).contiguous())
    ahead = key.unsqueeze(2) < key.unsqueeze(1)  # [R, C(me), C(other)] other ahead of me
    same = (class_index.unsqueeze(0) == class_index.unsqueeze(1)).unsqueeze(0)
    # Stable ties: an equal key listed earlier counts as ahead, as in the overall order.
    earlier = torch.ones(c, c, dtype=torch.bool).tril(-1).unsqueeze(0)
    tie = (key.unsqueeze(2) == key.unsqueeze(1)) & earlier
    cls = 1 + ((ahead | tie) & same).sum(dim=2)
    return pos, cls
