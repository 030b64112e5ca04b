"""Positions, gaps and traffic from race distance, for the cars at the line and at the flag.

Race distance is laps completed plus the fraction of the current lap driven. A finished car
stays at its lap count (ties broken by the earlier finish); a retired car drops behind every
running car and keeps its distance order among the retired.
"""

from __future__ import annotations

import numpy as np
import torch

RETIRED_OFFSET = 1.0e6
FINISH_TIEBREAK = 1.0e-7
"""Distance [laps] given up per second of finish time, so earlier finishers rank first."""
LINE_TIEBREAK = 1.0e-9
"""Distance [laps] a car at the line gives up per second it crossed after the window's start,
so of the cars crossing in one window the earlier ranks first (45 s of a window stay far
below the 1e-6 lap a car short of the line is behind it)."""
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


KEY_RESOLUTION_LAPS = 2.0**-34
"""Race distances closer than this [laps] count as equal and keep the entry order: about
10 ns of a lap, and for finished cars (ranked by ``FINISH_TIEBREAK`` per second of finish
time) finish times less than 0.6 ms apart."""
_KEY_LIMIT = 2.0**21
"""Bound of the ranking key's magnitude [laps] (retired cars sit near -1e6)."""


def _descending_orders(key: torch.Tensor, class_index: torch.Tensor) -> tuple[np.ndarray, ...]:
    """(overall order, class-then-distance order) ``[R, C]`` of the ranking key.

    The key is quantised to :data:`KEY_RESOLUTION_LAPS` and the entry index packed into its
    low bits, so every key is distinct and any sort gives the one stable order: numpy's
    quicksort of int64 (SIMD on this hardware) is several times faster than torch's sort on
    rows of a few dozen cars. The class order is a stable sort of the classes along the
    overall order (a radix sort of small integers).
    """
    c = key.shape[1]
    car_bits = max(int(c - 1).bit_length(), 1)
    if 55 + car_bits > 62:
        raise ValueError(f"{c} cars do not fit the ranking key")
    q = np.rint(key.numpy().clip(-_KEY_LIMIT, _KEY_LIMIT) * (1.0 / KEY_RESOLUTION_LAPS))
    # Larger is further ahead; among equal distances the lower entry index ranks first.
    unique = (q.astype(np.int64) << car_bits) + (c - 1 - np.arange(c, dtype=np.int64))
    overall = np.argsort(-unique, axis=1)
    classes = class_index.numpy().astype(np.int8 if int(class_index.max()) < 128 else np.int64)
    by_class = np.argsort(classes[overall], axis=1, kind="stable")
    return overall, np.take_along_axis(overall, by_class, axis=1)


def field_positions(
    key: torch.Tensor, class_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(overall position, class position, distance to the car ahead in class [laps], distance
    to the car behind in class [laps]) of every car, ``[R, C]``.

    Keys closer than :data:`KEY_RESOLUTION_LAPS` keep the entry order. Gaps are 0 for the
    class leader (ahead) and for the last car of a class (behind).
    """
    r, c = key.shape
    ranks = torch.arange(c).expand(r, c)
    order_np, corder_np = _descending_orders(key, class_index)
    order, corder = torch.from_numpy(order_np), torch.from_numpy(corder_np)
    overall = torch.empty_like(order).scatter_(1, order, ranks + 1)
    crank = torch.empty_like(corder).scatter_(1, corder, ranks)
    counts = torch.bincount(class_index, minlength=int(class_index.max()) + 1)
    class_start = torch.cumsum(counts, 0) - counts
    cls_pos = crank - class_start[class_index].unsqueeze(0) + 1
    ks = key.gather(1, corder)
    cs = class_index[corder]
    same = cs[:, 1:] == cs[:, :-1]
    step = torch.where(same, ks[:, :-1] - ks[:, 1:], 0.0)
    zero = torch.zeros(r, 1, dtype=key.dtype)
    gap_ahead = torch.empty_like(key).scatter_(1, corder, torch.cat([zero, step], dim=1))
    gap_behind = torch.empty_like(key).scatter_(1, corder, torch.cat([step, zero], dim=1))
    return overall, cls_pos, gap_ahead, gap_behind


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
    overall, cls_pos, _, _ = field_positions(key, class_index)
    return overall, cls_pos
