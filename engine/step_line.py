"""At the line in the race stepper: what a team sees and may do, the pit stop it chooses
(fuel, tyres, which driver gets in, repairs, the garage queue) and the lap record (a mixin
of :class:`engine.stepper.ChunkSim`).

Writes, for the rows that stop: fuel, energy, tyres, driver, damage, the team's garage, the
stint's counters and the pit-lane time of the coming (out) lap.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.actions import ACTION_TABLE, N_ACTIONS, Fuel
from engine.chunk_context import ChunkContext
from engine.damage_cache import DamageCache
from engine.legal import CarsAtLine, legal_mask
from engine.line_rows import AtLine, Continuing, LapDone, LapEnd
from engine.pitstop import StoppingCars, StopWork, fit_tyres, garage_queue, plan_stop
from engine.result import LapRecorder
from engine.state import F64, RaceState, add, put, take
from engine.strategy import Observation

TO_FINISH_MARGIN_LAPS = 0.3
"""Fuel to finish carries this much more than the laps to the flag (lap-to-lap variation of
the fuel used)."""
PACE_FACTOR = 1.01
"""Laps to the flag run this much slower than the reference pace (a 10th percentile; the
median green lap is about 1 % slower)."""
FLAG_TIME_UNCERTAINTY = 0.005
"""The chequer's time is taken late by this share of the race time left [s per s]."""


class LineSteps:
    """Observations, legal masks, pit stops and lap records of a ChunkSim."""

    ctx: ChunkContext
    state: RaceState
    damage: DamageCache
    recorder: LapRecorder | None
    stint_fuel0: torch.Tensor | None

    def _observe(self, cont: Continuing) -> tuple[Observation, torch.Tensor]:
        """The observation and legal-action mask of the continuing rows."""
        s, f, sc = self.state, self.ctx.field, self.ctx.scenario
        rules = sc.rules
        rows, rep, car, t, line = cont.idx, cont.rep, cont.car, cont.t, cont.line
        flag = line.flag
        fuel = self._fuel_reading(rows)
        energy = take(s.energy, rows)
        has_e = f.has_energy.index_select(0, car)
        ref_fuel = f.ref_fuel_per_lap.index_select(0, car)
        ref_energy = f.ref_energy_per_lap.index_select(0, car)
        laps_fuel = fuel / ref_fuel
        laps_energy = torch.where(has_e, energy / ref_energy.clamp(min=1e-9), float("inf"))
        ref_lap = f.ref_lap_time_s.index_select(0, car)
        time_left = self._time_left(rep, t, ref_lap)
        drivers = take(s.drive_total_s, rows)
        driver = take(s.driver, rows)
        n_drv = f.n_drivers.index_select(0, car)
        exists = torch.arange(f.max_drivers).unsqueeze(0) < n_drv.unsqueeze(1)
        current = drivers.gather(1, driver.unsqueeze(1)).squeeze(1)
        others = exists & (torch.arange(f.max_drivers).unsqueeze(0) != driver.unsqueeze(1))
        next_total = torch.where(others, drivers, float("inf")).amin(dim=1)
        deficit = torch.where(
            others, (rules.min_total_driving_s - drivers).clamp(min=0.0), 0.0
        ).sum(dim=1)
        tread = take(s.tread, rows)
        compound = take(s.compound, rows)
        sets = take(s.tyre_sets_left, rows)
        damage = take(s.damage, rows)
        stint_drive = take(s.stint_drive_s, rows)
        cars = CarsAtLine(
            fuel=fuel,
            energy=energy,
            has_energy=has_e,
            ref_fuel_per_lap=ref_fuel,
            ref_energy_per_lap=ref_energy,
            ref_lap_time_s=ref_lap,
            tread=tread,
            compound=compound,
            compound_allowed=f.compound_allowed.index_select(0, car),
            tyre_sets_left=sets,
            damage=damage,
            n_drivers=n_drv,
            stint_drive_s=stint_drive,
            current_total_s=current,
            next_total_s=next_total,
            others_deficit_s=deficit,
            time_left_s=time_left,
            flag=flag,
        )
        legal = legal_mask(cars, rules, sc.track.pit_lane_loss_s)
        obs = Observation(
            replica=rep + self.ctx.first_replica,
            car=car,
            race_time_s=t.float(),
            race_time_left_s=time_left.float(),
            lap=take(s.lap, rows).float(),
            class_position=line.class_pos,
            overall_position=line.overall,
            gap_ahead_s=line.gap_ahead_s,
            gap_behind_s=line.gap_behind_s,
            fuel=fuel,
            energy=energy,
            fuel_laps_left=torch.minimum(laps_fuel, laps_energy),
            tread=tread,
            tyre_age_laps=take(s.tyre_age, rows),
            compound=compound,
            tyre_sets_left=sets,
            damage=damage,
            driver=driver,
            driver_time_s=current.float(),
            stint_laps=take(s.stint_laps, rows),
            flag=flag,
            wetness=line.wetness,
            rain_forecast=self.ctx.weather.forecast(rep, t),
            ref_lap_time_s=ref_lap,
            pit_loss_s=torch.full_like(ref_lap, sc.track.pit_lane_loss_s),
        )
        assert legal.shape == (rows.numel(), N_ACTIONS)
        return obs, legal

    def _fuel_reading(self, rows: torch.Tensor) -> torch.Tensor:
        """The fuel left as the team reads it (what strategies and the legal margin see):
        the fuel at the stop less the fuel the laps since used at the planning figure. Exact
        without the fuel risk; with it, off by the stint's fuel-use factor (engine.risks)."""
        fuel = take(self.state.fuel, rows)
        if self.stint_fuel0 is None:
            return fuel
        start = take(self.stint_fuel0, rows)
        factor = self.ctx.stint_fuel_factor(self.state.pit_stops, rows)
        return (start - (start - fuel) / factor).clamp(min=0.0)

    def _time_left(self, rep: torch.Tensor, t: torch.Tensor, ref_lap: torch.Tensor) -> torch.Tensor:
        """Race time left [s] at ``t``: on the clock, or the leader's laps left times the
        car's reference lap."""
        duration, laps_target = self.ctx.duration_s, self.ctx.laps_target
        if duration is not None:
            return (duration - t).clamp(min=0.0)
        lead = self.state.lap.amax(dim=1).index_select(0, rep).double()
        return (float(laps_target or 0) - lead).clamp(min=0.0) * ref_lap.double()

    def _laps_to_flag(
        self, rep: torch.Tensor, car: torch.Tensor, t: torch.Tensor, hold_s: torch.Tensor
    ) -> torch.Tensor:
        """Laps each stopping car (``rep``, ``car``, at the line at ``t``, then ``hold_s`` in
        the pit lane) drives to the flag, counting the lap it ends on. The chequer falls at
        the overall leader's first crossing once time is up, so the leader's next predicted
        crossing and its pace place it, taken late by an uncertainty growing with the time
        left (a leader crossing just before the clock runs out means one more lap; in a
        distance race, the leader's laps to go set it); the car's own laps after the stop
        are counted up to it."""
        f, s = self.ctx.field, self.state
        duration, laps_target = self.ctx.duration_s, self.ctx.laps_target
        ref_lap = f.ref_lap_time_s.index_select(0, car).double()
        time_left = self._time_left(rep, t, ref_lap)
        running = ~(s.retired | s.finished).index_select(0, rep)
        lead_key = torch.where(
            running,
            s.lap.index_select(0, rep).double() - 1e-7 * s.lap_start_s.index_select(0, rep),
            -1e18,
        )
        leader = lead_key.argmax(dim=1)
        lead_next = s.next_cross_s.index_select(0, rep).gather(1, leader.unsqueeze(1)).squeeze(1)
        lead_lap = f.ref_lap_time_s.index_select(0, leader).double() * PACE_FACTOR
        # A leader at the line now (the stopping car itself, or one crossing in this window)
        # still holds this crossing as its next: its next one is a lap on, after its own stop.
        own_hold = torch.where(leader == car, hold_s, torch.zeros_like(hold_s))
        lead_next = torch.where(lead_next <= t, lead_next + own_hold + lead_lap, lead_next)
        slack = FLAG_TIME_UNCERTAINTY * time_left
        if duration is not None:
            after = ((duration + slack - lead_next) / lead_lap).clamp(min=0.0).ceil()
            end_s = torch.full_like(lead_next, duration)
        else:  # a distance race: the leader's laps still to go after its next crossing
            lead_laps = s.lap.index_select(0, rep).gather(1, leader.unsqueeze(1)).squeeze(1)
            after = (float(laps_target or 0) - lead_laps.double() - 1.0).clamp(min=0.0)
            end_s = t
        flag_s = torch.where(torch.isfinite(lead_next), lead_next + after * lead_lap, t + time_left)
        flag_s = torch.maximum(flag_s, end_s) + slack
        drive_s = (flag_s - t - hold_s).clamp(min=0.0)
        return (drive_s / (ref_lap * PACE_FACTOR)).ceil().clamp(min=1.0).float()

    def _serve_pit_stops(
        self, cont: Continuing, actions: torch.Tensor, pit: torch.Tensor, crawl_s: torch.Tensor
    ) -> torch.Tensor:
        """Serve the stops of the pitting rows of ``cont``; the pit-lane time of every row [s].
        ``crawl_s`` (``[n]``): time a row lost crawling in on an empty tank, added to its
        stop (it reaches the garage that much later)."""
        s, f, rules = self.state, self.ctx.field, self.ctx.scenario.rules
        rows = cont.idx
        hold = torch.zeros(rows.numel(), dtype=F64)
        put(s.out_lap, rows, pit)
        put(s.lap_pit_time_s, rows, 0.0)
        put(s.lap_driver_change, rows, False)
        if not bool(pit.any()):
            return hold
        pi = pit.nonzero().squeeze(1)
        r = rows[pi]
        a = actions[pi]
        tp = cont.t[pi]
        crawl = crawl_s[pi]
        rep, car = r // self.ctx.n_cars, r % self.ctx.n_cars
        _, repair = self.damage.effects(s)
        loss = self.ctx.scenario.track.pit_lane_loss_s

        def plan(hold_s: torch.Tensor) -> StopWork:
            stopping = StoppingCars(
                fuel=take(s.fuel, r),
                energy=take(s.energy, r),
                has_energy=f.has_energy.index_select(0, car),
                ref_fuel_per_lap=f.ref_fuel_per_lap.index_select(0, car),
                ref_energy_per_lap=f.ref_energy_per_lap.index_select(0, car),
                laps_left=self._laps_to_flag(rep, car, tp, hold_s),
                refuel_full_s=f.refuel_full_s.index_select(0, car),
                repair_time_s=take(repair, r),
            )
            return plan_stop(a, stopping, rules, margin_laps=TO_FINISH_MARGIN_LAPS)

        # Fuel to finish counts the laps after the stop: plan it once with the lane's loss,
        # then again with that plan's stationary time (the fill shrinks, never the time).
        work = plan(crawl + loss)
        if bool((ACTION_TABLE.fuel[a] == int(Fuel.TO_FINISH)).any()):
            work = plan(crawl + loss + work.stationary_s)
        arrival = tp + crawl + 0.5 * loss
        gkey = rep * f.n_teams + f.team_index.index_select(0, car)
        wait, free = garage_queue(arrival, work.stationary_s, gkey, s.garage_free_s.view(-1))
        s.garage_free_s.view(-1).copy_(free)
        stop_hold = crawl + loss + wait + work.stationary_s
        hold[pi] = stop_hold
        put(s.fuel, r, work.fuel_to)
        if self.stint_fuel0 is not None:
            put(self.stint_fuel0, r, work.fuel_to)
        put(s.energy, r, work.energy_to)
        self._change_tyres(r, rep, tp, a)
        dc = ACTION_TABLE.driver_change[a]
        if bool(dc.any()):
            self._change_driver(r, car, dc)
        rep_mask = ACTION_TABLE.repair[a]
        if bool(rep_mask.any()):
            put(s.damage, r, torch.where(rep_mask, 0.0, take(s.damage, r)))
            self.damage.changed()
        add(s.pit_stops, r, 1)
        add(s.pit_time_s, r, stop_hold)
        put(s.stint_laps, r, 0.0)
        put(s.stint_start_s, r, tp + stop_hold)
        put(s.lap_pit_time_s, r, stop_hold)
        put(s.lap_driver_change, r, dc)
        return hold

    def _change_tyres(
        self, r: torch.Tensor, rep: torch.Tensor, t: torch.Tensor, actions: torch.Tensor
    ) -> None:
        """Fit the tyres the stops of flat rows ``r`` chose: new tread and compound, the set
        counted against the allocation, new tyres at the track's temperature."""
        s = self.state
        tread, comp, reset, sets_used = fit_tyres(actions, take(s.tread, r), take(s.compound, r))
        changed = ACTION_TABLE.tyre_count[actions] > 0
        put(s.tread, r, tread)
        put(s.compound, r, comp)
        put(s.tyre_age, r, torch.where(reset, 0.0, take(s.tyre_age, r)))
        put(s.tyre_sets_left, r, (take(s.tyre_sets_left, r) - sets_used).clamp(min=0.0))
        _, _, temp = self.ctx.weather.at(rep, t)
        put(s.tyre_temp_c, r, torch.where(changed, temp, take(s.tyre_temp_c, r)))

    def _change_driver(self, r: torch.Tensor, car: torch.Tensor, change: torch.Tensor) -> None:
        """Which driver gets in where flat rows ``r`` change driver (``change``): the car's
        other driver with the least driving time so far."""
        s, f = self.state, self.ctx.field
        drivers = take(s.drive_total_s, r)
        cur = take(s.driver, r)
        d_idx = torch.arange(f.max_drivers).unsqueeze(0)
        eligible = (d_idx < f.n_drivers.index_select(0, car).unsqueeze(1)) & (
            d_idx != cur.unsqueeze(1)
        )
        nxt = torch.where(eligible, drivers, float("inf")).argmin(dim=1)
        put(s.driver, r, torch.where(change, nxt, cur))
        put(s.stint_drive_s, r, torch.where(change, 0.0, take(s.stint_drive_s, r)))

    def _lap_end(self, idx: torch.Tensor) -> LapEnd:
        """The state of flat rows ``idx`` at the end of their lap, before any stop."""
        s = self.state
        return LapEnd(
            fuel=take(s.fuel, idx),
            energy=take(s.energy, idx),
            tread=take(s.tread, idx),
            compound=take(s.compound, idx),
            tyre_age_laps=take(s.tyre_age, idx),
            tyre_temp_c=take(s.tyre_temp_c, idx),
            damage=take(s.damage, idx),
        )

    def _record(self, done: LapDone, line: AtLine, end: LapEnd, pit_in: torch.Tensor) -> None:
        """Add the completed laps to the lap records (``pit_in``: the car stops now)."""
        assert self.recorder is not None
        tread = end.tread

        def np_(x: torch.Tensor) -> np.ndarray:
            return x.numpy().copy()

        self.recorder.add(
            {
                "replica": np_(done.rep + self.ctx.first_replica),
                "car": np_(done.car),
                "lap": np_(done.lap),
                "lap_time_s": np_(done.lap_time_s),
                "race_time_s": np_(done.t),
                "position": np_(line.overall.long()),
                "class_position": np_(line.class_pos.long()),
                "pit_in": np_(pit_in.long()),
                "pit_out": np_(done.out_lap.long()),
                "pit_time_s": np_(torch.where(done.out_lap, done.pit_time_s, float("nan"))),
                "compound": np_(end.compound),
                "tyre_age_laps": np_(end.tyre_age_laps),
                "fuel_start": np_(done.fuel_start),
                "fuel_end": np_(end.fuel),
                "energy_start": np_(done.energy_start),
                "energy_end": np_(end.energy),
                "tread_fl": np_(tread[:, 0]),
                "tread_fr": np_(tread[:, 1]),
                "tread_rl": np_(tread[:, 2]),
                "tread_rr": np_(tread[:, 3]),
                "tyre_temp_c": np_(end.tyre_temp_c),
                "track_temp_c": np_(line.track_temp_c),
                "wetness": np_(line.wetness),
                "rain": np_(line.rain),
                "flag": np_(done.flag),
                "damage": np_(end.damage),
                "driver_change": np_(done.driver_change.long()),
                "driver": np_(done.driver),
                "pace_mode": np_(done.pace),
            }
        )
