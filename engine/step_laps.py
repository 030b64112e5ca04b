"""Drawing laps in the race stepper: the traffic a new lap starts in and ONE lap-model call
for every lap that starts in a window (a mixin of :class:`engine.stepper.ChunkSim`).

Writes, for the rows it draws: the lap's green and total time, its fuel, energy, wear and tyre
temperature, its flag and traffic, the anchor (the pit exit for a car in the pit lane) and the
predicted crossing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.chunk_context import ChunkContext
from engine.conditions import darkness
from engine.damage_cache import DamageCache
from engine.line_rows import Continuing, LapStart
from engine.observe import TRAFFIC_WINDOW_S
from engine.state import F64, RaceState, put, take
from events.models.punctures import cliff_depth
from world_model.interface import FlagState, LapConditions, update_recent_pace


def _unless(mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` with NaN where ``mask`` holds."""
    return value.masked_fill(mask, float("nan"))


class LapSteps:
    """The first laps of a race and the next lap of every car that crossed the line."""

    ctx: ChunkContext
    state: RaceState
    damage: DamageCache
    _predict: Callable[[torch.Tensor, torch.Tensor], None]
    """(engine.step_track.TrackSteps) predict the crossing of flat rows (of replicas)."""

    def _first_laps(self, now_s: float) -> None:
        """Draw every car's first lap from the grid at race time ``now_s``."""
        n = self.ctx.n_replicas * self.ctx.n_cars
        idx = torch.arange(n)
        t = torch.full((n,), now_s, dtype=F64)
        zero = torch.zeros(n)
        self._draw_laps(
            LapStart(
                idx=idx,
                t=t,
                flag=torch.full((n,), int(FlagState.GREEN)),
                out_lap=torch.zeros(n, dtype=torch.bool),
                traffic=zero,
                other_class_traffic=zero,
                slower_traffic=zero,
                hold_s=self.state.anchor_s.view(-1) - t,  # the rolling start's gaps
            )
        )

    def _next_laps(
        self, cont: Continuing, pit: torch.Tensor, hold_s: torch.Tensor, a: float
    ) -> LapStart:
        """The new laps of the continuing rows (``pit``: they stopped, ``hold_s`` in the pit
        lane): traffic is the cars that crossed the line less than TRAFFIC_WINDOW_S before
        it and did not stop; ``a`` is the window's start [s]."""
        s, f = self.state, self.ctx.field
        # float32 times relative to the window: cars in the pit lane are far in the past.
        started = torch.where(
            s.anchor_s <= s.lap_start_s, (s.lap_start_s - a).float(), -1.0e9
        ).index_select(0, cont.rep)  # [n, C]
        since = (cont.t - a).float().unsqueeze(1) - started
        near = ((since > 0) & (since < TRAFFIC_WINDOW_S)).float()
        near_class = near @ self.ctx.class_onehot  # [n, K]
        rcls = f.class_index.index_select(0, cont.car)
        traffic = near_class.sum(dim=1)
        other = traffic - near_class.gather(1, rcls.unsqueeze(1)).squeeze(1)
        slow = (near_class * f.slower_class.index_select(0, rcls)).sum(dim=1)
        return LapStart(
            idx=cont.idx,
            t=cont.t,
            flag=cont.line.flag,
            out_lap=pit,
            traffic=traffic,
            other_class_traffic=other,
            slower_traffic=slow,
            hold_s=hold_s,
            wetness=cont.line.wetness,
            track_temp_c=cont.line.track_temp_c,
        )

    def _lap_conditions(
        self, start: LapStart, rep: torch.Tensor, car: torch.Tensor
    ) -> LapConditions:
        """What the lap model conditions ``start``'s laps on (replicas ``rep``, cars ``car``)."""
        s, f, ctx = self.state, self.ctx.field, self.ctx
        idx, t = start.idx, start.t
        if start.wetness is None or start.track_temp_c is None:
            _, wet, temp = ctx.weather.at(rep, t)
        else:
            wet, temp = start.wetness, start.track_temp_c
        driver = take(s.driver, idx)
        return LapConditions(
            ref_lap_time_s=f.ref_lap_time_s.index_select(0, car),
            ref_fuel_per_lap=f.ref_fuel_per_lap.index_select(0, car),
            ref_energy_per_lap=f.ref_energy_per_lap.index_select(0, car),
            ref_wear_per_lap=f.ref_wear_per_lap.index_select(0, car),
            fuel=take(s.fuel, idx),
            energy=take(s.energy, idx),
            tread=take(s.tread, idx),
            tyre_age_laps=take(s.stint_laps if ctx.tyre_age_is_stint_laps else s.tyre_age, idx),
            compound=take(s.compound, idx),
            tyre_temp_c=take(s.tyre_temp_c, idx),
            damage=take(s.damage, idx),
            stint_time_s=(t - take(s.stint_start_s, idx)).clamp(min=0.0).float(),
            pace_mode=take(s.pace, idx),
            class_index=f.class_index.index_select(0, car),
            driver_skill=f.driver_skill.view(-1).index_select(0, car * f.max_drivers + driver),
            flag=start.flag,
            wetness=wet,
            track_temp_c=temp,
            # Darkness changes over minutes: the value at the first row's time serves all.
            night=darkness(ctx.scenario, t[:1]).expand(t.shape[0]),
            traffic=start.traffic,
            out_lap=start.out_lap.float(),
            **self._own_history(start, idx),
        )

    def _own_history(self, start: LapStart, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The lap model's inputs from the car's own earlier laps (its recent pace and previous
        lap), or none (unknown all race) where the scenario switches them off."""
        s = self.state
        if not self.ctx.scenario.lap_model_recent_pace:
            return {}
        return {
            "recent_pace_pct": take(s.recent_pace_pct, idx),
            # An out-lap's previous lap ended in the pits: unknown, as in the lap store.
            "last_lap_time_s": _unless(start.out_lap, take(s.prev_lap_s, idx)),
            "last_fuel_used": _unless(start.out_lap, take(s.prev_lap_fuel, idx)),
            "last_wear": _unless(start.out_lap, take(s.prev_lap_wear, idx)),
        }

    def _draw_laps(self, start: LapStart) -> None:
        """Draw the next lap of ``start``'s rows (one lap-model call) and predict its
        crossing."""
        s, f, ctx = self.state, self.ctx.field, self.ctx
        idx, t = start.idx, start.t
        rep = idx // ctx.n_cars
        car = idx % ctx.n_cars
        cond = self._lap_conditions(start, rep, car)
        out = ctx.lap_model.sample(cond, ctx.streams.laps, member=ctx.member.index_select(0, rep))
        # The car's own pace feeds its next laps (out-laps carry pit-lane time: skipped).
        if cond.recent_pace_pct is not None:
            recent = update_recent_pace(cond.recent_pace_pct, out.lap_time_s, cond.ref_lap_time_s)
            put(s.recent_pace_pct, idx, torch.where(start.out_lap, cond.recent_pace_pct, recent))
        loss, _ = self.damage.effects(s)
        green = out.lap_time_s.double()
        rt = ctx.risks
        if rt.cliff_on:  # the lap-time cliff of a tyre worn past it (engine.risks)
            depth = cliff_depth(cond.tread.amin(dim=1), rt.cliff_tread.index_select(0, car))
            cliff_loss = rt.cliff_lap_time_loss.index_select(0, car) * depth.square()
            green = green * (1.0 + cliff_loss.double())
        carried_time = ctx.scenario.lap_model_carried_wear_time
        if carried_time > 0.0 and ctx.tyre_age_is_stint_laps:
            # The model knows the stint's own wear, not the tread the set brought into it.
            # cond.tyre_age_laps holds the laps since the stop here.
            before = (take(s.tyre_age, idx) - cond.tyre_age_laps).clamp(min=0.0)
            carried = before * cond.ref_wear_per_lap
            green = green * (1.0 + carried_time * carried.double())
        fuel_used = out.fuel_used
        if ctx.fuel_factor is not None:  # the stint's fuel-use factor (engine.risks)
            fuel_used = fuel_used * ctx.stint_fuel_factor(s.pit_stops, idx)
        total = green * (1.0 + take(loss, idx).double()) + (
            ctx.scenario.rules.overtake_cost_s * start.slower_traffic.double()
        )
        put(s.green_lap_s, idx, out.lap_time_s)
        put(s.lap_total_s, idx, total)
        put(s.rem_s, idx, total)
        put(s.lap_start_s, idx, t)
        put(s.lap_fuel, idx, fuel_used)
        # This lap is the next one's previous lap (unknown after an out-lap, as in the store).
        put(s.prev_lap_s, idx, _unless(start.out_lap, out.lap_time_s))
        put(s.prev_lap_fuel, idx, _unless(start.out_lap, fuel_used))
        put(s.prev_lap_wear, idx, _unless(start.out_lap, out.wear.mean(dim=1)))
        put(s.lap_energy, idx, torch.where(f.has_energy.index_select(0, car), out.energy_used, 0.0))
        put(s.lap_wear, idx, out.wear)
        put(s.lap_tyre_temp_c, idx, out.tyre_temp_c)
        put(s.acc_fuel_s, idx, 0.0)
        put(s.acc_wear_s, idx, 0.0)
        put(s.lap_flag, idx, start.flag)
        put(s.traffic, idx, start.traffic)
        put(s.other_class_traffic, idx, start.other_class_traffic)
        anchor = t if start.hold_s is None else t + start.hold_s
        put(s.anchor_s, idx, anchor)
        self._predict(idx, rep)
