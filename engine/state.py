"""The race state: a dataclass of tensors with leading dimensions ``[R, C]`` (replicas, cars).

Times are ``float64`` [s] (a 24-hour race needs better than float32's 8 ms at 86,400 s so that
lap times add up to race time exactly); quantities are ``float32``; codes ``int64``.

Lap progress is kept in *green-equivalent seconds*: ``rem_s`` is how much green-flag driving
the current lap still needs, ``lap_total_s`` what the whole lap needs. A neutralisation with
lap-time factor ``f`` turns ``f`` seconds of race time into one green-equivalent second, so an
event at race time ``t`` stretches exactly the laps that span ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from engine.field import FieldTable
from world_model.interface import N_WHEELS, FlagState

F64 = torch.float64
F32 = torch.float32
I64 = torch.int64


@dataclass
class RaceState:
    """Every car of every replica; fields ``[R, C]`` unless stated."""

    lap: torch.Tensor
    """Laps completed (int64)."""
    rem_s: torch.Tensor
    """Green-equivalent seconds the current lap still needs from ``anchor_s`` [s]."""
    lap_total_s: torch.Tensor
    """Green-equivalent seconds of the whole current lap [s] (green lap + damage + traffic)."""
    lap_start_s: torch.Tensor
    """Race time the current lap began at the line [s]."""
    anchor_s: torch.Tensor
    """Race time from which ``rem_s`` counts: the last re-anchoring, or the pit exit (after
    the line while a car is in the pit lane) [s]; inf once the car is out of the race."""
    next_cross_s: torch.Tensor
    """Predicted race time of the next line crossing under the flag schedule [s] (inf for a
    car out of the race)."""
    catch_s: torch.Tensor
    """Green-equivalent seconds the car may still gain closing up behind the safety car [s]."""
    green_lap_s: torch.Tensor
    """The lap model's green lap time of the current lap [s] (float32)."""
    recent_pace_pct: torch.Tensor
    """The car's recent pace, the lap model's ``LapConditions.recent_pace_pct`` (float32,
    NaN before its first lap), updated with each lap drawn."""
    prev_lap_s: torch.Tensor
    """The lap model's green lap time of the car's lap before the current one [s] (float32;
    NaN before its first lap or where that lap touched the pits): ``LapConditions.last_lap_time_s``
    of the next lap drawn."""
    prev_lap_fuel: torch.Tensor
    """Fuel used over that lap, fraction of tank (NaN as ``prev_lap_s``)."""
    prev_lap_wear: torch.Tensor
    """Mean tread lost over that lap, four wheels (NaN as ``prev_lap_s``)."""
    fuel: torch.Tensor
    energy: torch.Tensor
    tread: torch.Tensor
    """``[R, C, 4]`` tread left, fraction."""
    tyre_age: torch.Tensor
    compound: torch.Tensor
    tyre_temp_c: torch.Tensor
    damage: torch.Tensor
    driver: torch.Tensor
    drive_total_s: torch.Tensor
    """``[R, C, D]`` driving time of each driver so far [s]."""
    stint_drive_s: torch.Tensor
    """Continuous driving time of the current driver [s]."""
    stint_start_s: torch.Tensor
    """Race time of the last pit exit (or the start) [s]."""
    stint_laps: torch.Tensor
    pace: torch.Tensor
    tyre_sets_left: torch.Tensor
    retired: torch.Tensor
    finished: torch.Tensor
    traffic: torch.Tensor
    """Cars within 5 s ahead at the start of the lap."""
    other_class_traffic: torch.Tensor
    """Of those, cars of another class."""
    lap_fuel: torch.Tensor
    """Green fuel use of the current lap drawn at its start (flag factors apply at the line)."""
    lap_energy: torch.Tensor
    lap_wear: torch.Tensor
    """``[R, C, 4]`` green wear of the current lap."""
    lap_tyre_temp_c: torch.Tensor
    acc_fuel_s: torch.Tensor
    """Green-equivalent seconds of the lap up to ``anchor_s``, weighted by the flag fuel
    factor [s]."""
    acc_wear_s: torch.Tensor
    """The same weighted by the flag wear factor [s]."""
    lap_flag: torch.Tensor
    """Worst :class:`FlagState` seen on the current lap (int64)."""
    out_lap: torch.Tensor
    """The current lap left the pits (bool)."""
    lap_pit_time_s: torch.Tensor
    """Pit-lane time served on the current lap [s]."""
    lap_driver_change: torch.Tensor
    pit_stops: torch.Tensor
    pit_time_s: torch.Tensor
    finish_time_s: torch.Tensor
    """Race time of the last crossing [s]."""
    garage_free_s: torch.Tensor
    """``[R, T]`` race time each team's garage is free again [s]."""
    neut_kind: torch.Tensor
    """``[R]`` :class:`FlagState` of the replica's latest neutralisation (GREEN: none yet);
    it applies only inside ``[neut_start_s, neut_end_s)``."""
    neut_start_s: torch.Tensor
    """``[R]``."""
    neut_end_s: torch.Tensor
    """``[R]``."""
    chequer_s: torch.Tensor
    """``[R]`` race time the chequered flag fell (inf before)."""

    @property
    def replicas(self) -> int:
        return int(self.lap.shape[0])

    def running(self) -> torch.Tensor:
        return ~(self.retired | self.finished)

    def select(self, replicas: torch.Tensor) -> RaceState:
        """The state of some replicas (an index tensor), copied."""
        return RaceState(**{f.name: getattr(self, f.name)[replicas].clone() for f in fields(self)})

    def to_lists(self) -> dict[str, list]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}

    @staticmethod
    def from_lists(data: dict[str, list]) -> RaceState:
        dtypes = {f.name: None for f in fields(RaceState)}
        missing = [k for k in dtypes if k not in data]
        if missing:
            raise ValueError(f"race snapshot lacks state field {missing[0]!r}")
        out = {}
        for k in dtypes:
            # times straight to float64: through float32 they would lose ~1e-5 s at 2000 s
            t = torch.tensor(data[k], dtype=F64 if k in _F64_FIELDS else None)
            if t.dtype == torch.float64 and k not in _F64_FIELDS:
                t = t.to(F32)
            out[k] = t
        return RaceState(**out)


_F64_FIELDS = {
    "rem_s",
    "lap_total_s",
    "lap_start_s",
    "anchor_s",
    "next_cross_s",
    "catch_s",
    "drive_total_s",
    "stint_drive_s",
    "stint_start_s",
    "pit_time_s",
    "finish_time_s",
    "garage_free_s",
    "neut_start_s",
    "neut_end_s",
    "chequer_s",
    "lap_pit_time_s",
}


def initial_state(field: FieldTable, replicas: int, track_temp_c: float) -> RaceState:
    """Every car on the grid at race time 0, full tank and allocation, new tyres, driver 1.

    The first lap is not drawn yet: the stepper draws it before the first window. Cars are
    released in entry order, ``0.25 s`` apart (a rolling start's gaps).
    """
    r, c = replicas, field.n_cars

    def zeros(dtype: torch.dtype = F32, *extra: int) -> torch.Tensor:
        return torch.zeros(r, c, *extra, dtype=dtype)

    grid_gap = (0.25 * torch.arange(c, dtype=F64)).expand(r, c).clone()
    return RaceState(
        lap=zeros(I64),
        rem_s=zeros(F64),
        lap_total_s=zeros(F64),
        lap_start_s=zeros(F64),
        anchor_s=grid_gap,
        next_cross_s=torch.full((r, c), float("inf"), dtype=F64),
        catch_s=zeros(F64),
        green_lap_s=zeros(),
        recent_pace_pct=torch.full((r, c), float("nan")),
        prev_lap_s=torch.full((r, c), float("nan")),
        prev_lap_fuel=torch.full((r, c), float("nan")),
        prev_lap_wear=torch.full((r, c), float("nan")),
        fuel=torch.ones(r, c),
        energy=torch.ones(r, c),
        tread=torch.ones(r, c, N_WHEELS),
        tyre_age=zeros(),
        compound=field.start_compound.expand(r, c).clone(),
        tyre_temp_c=torch.full((r, c), float(track_temp_c)),
        damage=zeros(),
        driver=zeros(I64),
        drive_total_s=zeros(F64, field.max_drivers),
        stint_drive_s=zeros(F64),
        stint_start_s=zeros(F64),
        stint_laps=zeros(),
        pace=torch.ones(r, c, dtype=I64),
        tyre_sets_left=(field.tyre_sets - 1.0).clamp(min=0.0).expand(r, c).clone(),
        retired=zeros(torch.bool),
        finished=zeros(torch.bool),
        traffic=zeros(),
        other_class_traffic=zeros(),
        lap_fuel=zeros(),
        lap_energy=zeros(),
        lap_wear=zeros(F32, N_WHEELS),
        lap_tyre_temp_c=zeros(),
        acc_fuel_s=zeros(F64),
        acc_wear_s=zeros(F64),
        lap_flag=zeros(I64),
        out_lap=zeros(torch.bool),
        lap_pit_time_s=zeros(F64),
        lap_driver_change=zeros(torch.bool),
        pit_stops=zeros(I64),
        pit_time_s=zeros(F64),
        finish_time_s=zeros(F64),
        garage_free_s=torch.zeros(r, field.n_teams, dtype=F64),
        neut_kind=torch.full((r,), int(FlagState.GREEN), dtype=I64),
        neut_start_s=torch.full((r,), float("inf"), dtype=F64),
        neut_end_s=torch.full((r,), float("inf"), dtype=F64),
        chequer_s=torch.full((r,), float("inf"), dtype=F64),
    )


# -- fast row access ------------------------------------------------------------------------
# ``index_select`` / ``scatter_`` cost a fraction of advanced indexing (``x[idx]``) on the
# stepper's batch sizes: every per-row read and write of the state goes through these.


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of a ``[R, C]`` (-> ``[n]``) or ``[R, C, k]`` (-> ``[n, k]``) tensor."""
    if x.dim() == 2:
        return x.view(-1).index_select(0, idx)
    return x.view(-1, x.shape[-1]).index_select(0, idx)


def put(x: torch.Tensor, idx: torch.Tensor, value: torch.Tensor | float | bool) -> None:
    """Write rows ``idx`` (unique) of ``x`` in place."""
    if x.dim() == 2:
        flat = x.view(-1)
        if not isinstance(value, torch.Tensor):
            flat.index_fill_(0, idx, value)
            return
        if value.dtype != x.dtype or value.shape != idx.shape or not value.is_contiguous():
            # (checked in Python: each skipped no-op conversion is a dispatched call)
            value = value.to(x.dtype).expand(idx.shape).contiguous()
        flat.scatter_(0, idx, value)
        return
    flat2 = x.view(-1, x.shape[-1])
    if not isinstance(value, torch.Tensor):
        flat2.index_fill_(0, idx, value)
        return
    flat2.index_copy_(0, idx, value.to(x.dtype).expand(idx.shape[0], x.shape[-1]).contiguous())


def add(x: torch.Tensor, idx: torch.Tensor, value: torch.Tensor | float) -> None:
    """Add to rows ``idx`` (unique) of a ``[R, C]`` tensor in place."""
    if not isinstance(value, torch.Tensor):
        value = torch.full(idx.shape, value, dtype=x.dtype)
    elif value.dtype != x.dtype or value.shape != idx.shape or not value.is_contiguous():
        value = value.to(x.dtype).expand(idx.shape).contiguous()
    x.view(-1).scatter_add_(0, idx, value)
