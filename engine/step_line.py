"""At the line in the race stepper: what a team sees and may do, the pit stop it chooses
and the lap record (a mixin of :class:`ChunkSim`)."""

from __future__ import annotations

import numpy as np
import torch

from engine.actions import ACTION_TABLE, N_ACTIONS
from engine.legal import CarsAtLine, legal_mask
from engine.pitstop import fit_tyres, garage_queue, plan_stop
from engine.state import F64, add, put, take
from engine.strategy import Observation


class LineSteps:
    """Observations, legal masks, pit stops and lap records of a ChunkSim."""

    def _observe(
        self,
        rows: torch.Tensor,
        t: torch.Tensor,
        overall: torch.Tensor,
        cls_pos: torch.Tensor,
        gap_a: torch.Tensor,
        gap_b: torch.Tensor,
        wet: torch.Tensor,
        flag: torch.Tensor,
    ) -> tuple[Observation, torch.Tensor]:
        s, f, rules = self.state, self.field, self.sc.rules
        rep, car = rows // self.C, rows % self.C
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
        legal = legal_mask(cars, rules, self.sc.track.pit_lane_loss_s)
        obs = Observation(
            replica=rep + self.first_replica,
            car=car,
            race_time_s=t.float(),
            race_time_left_s=time_left.float(),
            lap=take(s.lap, rows).float(),
            class_position=cls_pos,
            overall_position=overall,
            gap_ahead_s=gap_a,
            gap_behind_s=gap_b,
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
            wetness=wet,
            rain_forecast=self.weather.forecast(rep, t),
            ref_lap_time_s=ref_lap,
            pit_loss_s=torch.full_like(ref_lap, self.sc.track.pit_lane_loss_s),
        )
        assert legal.shape == (rows.numel(), N_ACTIONS)
        return obs, legal

    def _fuel_reading(self, rows: torch.Tensor) -> torch.Tensor:
        """The fuel left as the team reads it (what strategies and the legal margin see):
        the fuel at the stop less the laps run at the planning figure. Exact without the fuel
        risk; with it, off by the stint's fuel-use factor (:mod:`engine.risks`)."""
        fuel = take(self.state.fuel, rows)
        if self._fuel_factor is None:
            return fuel
        start = take(self._stint_fuel0, rows)
        return (start - (start - fuel) / self.stint_fuel_factor(rows)).clamp(min=0.0)

    def _time_left(self, rep: torch.Tensor, t: torch.Tensor, ref_lap: torch.Tensor) -> torch.Tensor:
        if self.duration is not None:
            return (self.duration - t).clamp(min=0.0)
        lead = self.state.lap.amax(dim=1).index_select(0, rep).double()
        return (float(self.laps_target or 0) - lead).clamp(min=0.0) * ref_lap.double()

    def _pit_stops(
        self, rows: torch.Tensor, t: torch.Tensor, actions: torch.Tensor, pit: torch.Tensor
    ) -> torch.Tensor:
        """Serve the stops of the pitting rows; the pit-lane time of every row [s]."""
        s, f, rules = self.state, self.field, self.sc.rules
        hold = torch.zeros(rows.numel(), dtype=F64)
        put(s.out_lap, rows, pit)
        put(s.lap_pit_time_s, rows, 0.0)
        put(s.lap_driver_change, rows, False)
        if not bool(pit.any()):
            return hold
        pi = pit.nonzero().squeeze(1)
        r = rows[pi]
        a = actions[pi]
        tp = t[pi]
        rep, car = r // self.C, r % self.C
        _, repair = self._damage_effects()
        ref_lap = f.ref_lap_time_s.index_select(0, car)
        laps_left = (self._time_left(rep, tp, ref_lap) / ref_lap.double()).float() + 1.0
        work = plan_stop(
            a,
            take(s.fuel, r),
            take(s.energy, r),
            f.has_energy.index_select(0, car),
            f.ref_fuel_per_lap.index_select(0, car),
            f.ref_energy_per_lap.index_select(0, car),
            laps_left,
            f.refuel_full_s.index_select(0, car),
            take(repair, r),
            rules,
        )
        loss = self.sc.track.pit_lane_loss_s
        arrival = tp + 0.5 * loss
        gkey = rep * f.n_teams + f.team_index.index_select(0, car)
        wait, free = garage_queue(arrival, work.stationary_s, gkey, s.garage_free_s.view(-1))
        s.garage_free_s.view(-1).copy_(free)
        stop_hold = loss + wait + work.stationary_s
        hold[pi] = stop_hold
        put(s.fuel, r, work.fuel_to)
        if self._fuel_factor is not None:
            put(self._stint_fuel0, r, work.fuel_to)
        put(s.energy, r, work.energy_to)
        tread, comp, reset, sets_used = fit_tyres(a, take(s.tread, r), take(s.compound, r))
        changed = ACTION_TABLE.tyre_count[a] > 0
        put(s.tread, r, tread)
        put(s.compound, r, comp)
        put(s.tyre_age, r, torch.where(reset, 0.0, take(s.tyre_age, r)))
        put(s.tyre_sets_left, r, (take(s.tyre_sets_left, r) - sets_used).clamp(min=0.0))
        _, _, temp = self.weather.at(rep, tp)
        put(s.tyre_temp_c, r, torch.where(changed, temp, take(s.tyre_temp_c, r)))
        dc = ACTION_TABLE.driver_change[a]
        if bool(dc.any()):
            drivers = take(s.drive_total_s, r)
            cur = take(s.driver, r)
            d_idx = torch.arange(f.max_drivers).unsqueeze(0)
            eligible = (d_idx < f.n_drivers.index_select(0, car).unsqueeze(1)) & (
                d_idx != cur.unsqueeze(1)
            )
            nxt = torch.where(eligible, drivers, float("inf")).argmin(dim=1)
            put(s.driver, r, torch.where(dc, nxt, cur))
            put(s.stint_drive_s, r, torch.where(dc, 0.0, take(s.stint_drive_s, r)))
        rep_mask = ACTION_TABLE.repair[a]
        if bool(rep_mask.any()):
            put(s.damage, r, torch.where(rep_mask, 0.0, take(s.damage, r)))
            self._dmg_dirty = True
        add(s.pit_stops, r, 1)
        add(s.pit_time_s, r, stop_hold)
        put(s.stint_laps, r, 0.0)
        put(s.stint_start_s, r, tp + stop_hold)
        put(s.lap_pit_time_s, r, stop_hold)
        put(s.lap_driver_change, r, dc)
        return hold

    def _record(
        self,
        idx: torch.Tensor,
        t: torch.Tensor,
        lap_time: torch.Tensor,
        overall: torch.Tensor,
        cls_pos: torch.Tensor,
        pit_in: torch.Tensor,
        pit_out: torch.Tensor,
        pit_time: torch.Tensor,
        fuel_start: torch.Tensor,
        energy_start: torch.Tensor,
        temp: torch.Tensor,
        wet: torch.Tensor,
        rain: torch.Tensor,
        flag: torch.Tensor,
        driver_change: torch.Tensor,
        driver: torch.Tensor,
        pace: torch.Tensor,
        end: dict[str, torch.Tensor],
    ) -> None:
        s = self.state
        assert self.recorder is not None
        rep, car = idx // self.C, idx % self.C
        tread = end["tread"]

        def np_(x: torch.Tensor) -> np.ndarray:
            return x.numpy().copy()

        self.recorder.add(
            {
                "replica": np_(rep + self.first_replica),
                "car": np_(car),
                "lap": np_(take(s.lap, idx)),
                "lap_time_s": np_(lap_time),
                "race_time_s": np_(t),
                "position": np_(overall.long()),
                "class_position": np_(cls_pos.long()),
                "pit_in": np_(pit_in.long()),
                "pit_out": np_(pit_out.long()),
                "pit_time_s": np_(torch.where(pit_out, pit_time, float("nan"))),
                "compound": np_(end["compound"]),
                "tyre_age_laps": np_(end["tyre_age_laps"]),
                "fuel_start": np_(fuel_start),
                "fuel_end": np_(end["fuel_end"]),
                "energy_start": np_(energy_start),
                "energy_end": np_(end["energy_end"]),
                "tread_fl": np_(tread[:, 0]),
                "tread_fr": np_(tread[:, 1]),
                "tread_rl": np_(tread[:, 2]),
                "tread_rr": np_(tread[:, 3]),
                "tyre_temp_c": np_(end["tyre_temp_c"]),
                "track_temp_c": np_(temp),
                "wetness": np_(wet),
                "rain": np_(rain),
                "flag": np_(flag),
                "damage": np_(end["damage"]),
                "driver_change": np_(driver_change.long()),
                "driver": np_(driver),
                "pace_mode": np_(pace),
            }
        )
