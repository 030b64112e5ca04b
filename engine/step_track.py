"""Cars on track in the race stepper: progress under the flag schedule, predicted crossings,
the safety car's bunching and the race-distance ranking (a mixin of
:class:`engine.stepper.ChunkSim`).

Writes, for the rows it moves: the lap's remaining green-equivalent seconds, the fuel and wear
weights, the worst flag met, the safety-car catch-up budget, the anchor and the predicted
crossing (:mod:`engine.progress` does the arithmetic).
"""

from __future__ import annotations

import simpy
import torch

from engine.chunk_context import ChunkContext
from engine.observe import FINISH_TIEBREAK, RETIRED_OFFSET
from engine.progress import FOREVER_S, drive
from engine.state import F64, RaceState, add, put, take
from world_model.interface import FlagState

_SEVERITY = torch.tensor([0, 1, 3, 4, 2, 5])
"""Rank of each FlagState code (green < local yellow < slow zone < FCY < safety car): a lap
records the worst neutralisation it met."""


class TrackSteps:
    """Progress of the cars of a ChunkSim between line crossings."""

    ctx: ChunkContext
    state: RaceState
    env: simpy.Environment

    def _schedule(
        self, idx: torch.Tensor, rep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kind, start, end, lap-time factor) of the neutralisation met by flat rows ``idx``
        (replicas ``rep``). The factor applies to the fastest car's pace: under a
        neutralisation every car runs the same speed, so a slower car's own factor is
        smaller (and never below 1)."""
        s = self.state
        kind = s.neut_kind.index_select(0, rep)
        scale = self.ctx.neutral_scale.index_select(0, idx % self.ctx.n_cars)
        factor = (self.ctx.flag_factors.time.index_select(0, kind) * scale).clamp(min=1.0)
        return (
            kind,
            s.neut_start_s.index_select(0, rep),
            s.neut_end_s.index_select(0, rep),
            factor,
        )

    def _predict(self, idx: torch.Tensor, rep: torch.Tensor) -> None:
        """Predict the line crossing of flat rows ``idx`` (replicas ``rep``)."""
        s = self.state
        _, ns, ne, f = self._schedule(idx, rep)
        p = drive(
            take(s.anchor_s, idx),
            FOREVER_S,
            take(s.rem_s, idx),
            ns,
            ne,
            f,
            take(s.catch_s, idx),
        )
        put(s.next_cross_s, idx, p.cross_s)

    def _settle(self, idx: torch.Tensor, rep: torch.Tensor, t: torch.Tensor | float) -> None:
        """Move the anchor of flat rows ``idx`` to race time ``t`` (rows still in the pit lane
        past ``t`` keep theirs): progress, fuel and wear weights, flags, safety-car catch-up."""
        s, flagf = self.state, self.ctx.flag_factors
        anchor = take(s.anchor_s, idx)
        t = torch.as_tensor(t, dtype=F64).expand_as(anchor)
        moving = anchor < t
        kind, ns, ne, f = self._schedule(idx, rep)
        p = drive(anchor, t, take(s.rem_s, idx), ns, ne, f, take(s.catch_s, idx))
        green = torch.where(moving, p.green_s, 0.0)
        neutral = torch.where(moving, p.neutral_s, 0.0)
        put(s.rem_s, idx, (take(s.rem_s, idx) - green - neutral).clamp(min=1e-6))
        add(s.acc_fuel_s, idx, green + neutral * flagf.fuel.index_select(0, kind))
        add(s.acc_wear_s, idx, green + neutral * flagf.wear.index_select(0, kind))
        flag = take(s.lap_flag, idx)
        under = moving & (p.under_s > 0)
        worse = under & (_SEVERITY.index_select(0, kind) > _SEVERITY.index_select(0, flag))
        put(s.lap_flag, idx, torch.where(worse, kind, flag))
        add(s.catch_s, idx, -torch.where(moving, p.catch_used_s, 0.0))
        put(s.anchor_s, idx, torch.maximum(anchor, t))

    def _replica_rows(self, replicas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat rows and their replica of every running car of ``replicas``."""
        running = self.state.running()[replicas]
        r_idx, c_idx = running.nonzero(as_tuple=True)
        rep = replicas[r_idx]
        return rep * self.ctx.n_cars + c_idx, rep

    def _reschedule(self, replicas: torch.Tensor, before: bool) -> None:
        """Race control is about to change (``before``) or has changed the flag schedule of
        ``replicas``: settle every car at the current time, then predict again."""
        idx, rep = self._replica_rows(replicas)
        if idx.numel() == 0:
            return
        now = float(self.env.now)
        if before:
            self._settle(idx, rep, now)
            return
        s = self.state
        sc = s.neut_kind.index_select(0, rep) == int(FlagState.SAFETY_CAR)
        put(s.catch_s, idx, 0.0)
        if bool(sc.any()):
            self._sc_budget(replicas[s.neut_kind[replicas] == int(FlagState.SAFETY_CAR)], now)
        self._predict(idx, rep)

    def _sc_budget(self, replicas: torch.Tensor, now: float) -> None:
        """Green seconds each car of ``replicas`` may gain closing up to the car ahead on the
        road behind the safety car (the field bunches), from the gaps at deployment."""
        s = self.state
        running = s.running()[replicas]
        anchor = s.anchor_s[replicas]
        on_track = running & (anchor <= now)
        total = s.lap_total_s[replicas].clamp(min=1e-9)
        done = torch.where(on_track, 1.0 - s.rem_s[replicas] / total, -1.0e9)
        order = torch.argsort(done, dim=1, descending=True)
        sorted_d = done.gather(1, order)
        ahead = torch.cat([sorted_d[:, :1], sorted_d[:, :-1]], dim=1)
        gap = torch.empty_like(done).scatter_(1, order, ahead - sorted_d)
        budget = (gap * total - self.ctx.scenario.track.sc_min_gap_s).clamp(min=0.0)
        s.catch_s[replicas] = torch.where(on_track, budget, 0.0)

    def _key(self, t: float) -> torch.Tensor:
        """``[R, C]`` race-distance ranking key at race time ``t`` (see engine.observe)."""
        s = self.state
        span = (s.next_cross_s - s.lap_start_s).clamp(min=1e-9)
        frac = ((t - s.lap_start_s) / span).clamp(0.0, 0.999999)
        frac = torch.nan_to_num(frac, nan=0.0)
        key = s.lap.double() + frac
        key = torch.where(s.finished, s.lap.double() - FINISH_TIEBREAK * s.finish_time_s, key)
        return torch.where(s.retired, key - RETIRED_OFFSET, key)

    def _flag_at(self, rep: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``FlagState`` of replicas ``rep`` at race times ``t``."""
        s = self.state
        under = (s.neut_start_s.index_select(0, rep) <= t) & (t < s.neut_end_s.index_select(0, rep))
        return torch.where(under, s.neut_kind.index_select(0, rep), int(FlagState.GREEN))
