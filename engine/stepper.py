"""The batched race stepper: one chunk of replicas, every car, advanced in clock windows.

Each window of race time ``[a, b)``:

1. every running car serves pit-lane time, then drives; a neutralisation stretches the laps
   that span it (:mod:`engine.progress`); the line crossings inside the window are found and
   timed exactly;
2. the cars that crossed complete their lap (fuel, energy and wear of the lap scaled by the
   flags they met), the chequered flag is checked, every strategy is called ONCE for all of
   its cars that crossed, in every replica, with a legal-action mask; pit stops are served
   (garage queue per team); the lap model is called ONCE to draw every new lap; the rest of
   the window is driven on the new lap;
3. the event model draws the window's incidents for the whole ``[R, C]`` field (fixed shape:
   common random numbers), applies damage, punctures and retirements, and race control
   deploys neutralisations (starting at least one window later, so causality holds).

The stepper is a SimPy process (:mod:`engine.clock`); race control's processes own the flags.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
import torch

from engine.actions import ACTION_TABLE, N_ACTIONS
from engine.clock import RaceControl
from engine.conditions import FlagFactors, WeatherGrid, darkness, draw_weather
from engine.field import FieldTable
from engine.legal import CarsAtLine, legal_mask
from engine.observe import distance_key, final_order, near_line_by_class, row_positions
from engine.pitstop import fit_tyres, garage_queue, plan_stop
from engine.progress import advance
from engine.result import LapRecorder, RaceResult, incident_columns
from engine.rng import chunk_generators
from engine.scenario import Scenario
from engine.state import F64, RaceState, initial_state
from engine.strategy import Observation, Strategy, check_decisions
from events.interface import CarExposure, EventModel, ForcedEvent, ForcedKind
from world_model.interface import FlagState, LapConditions, LapModel

_NEUTRAL_KINDS = (int(FlagState.FCY), int(FlagState.SAFETY_CAR), int(FlagState.SLOW_ZONE))


@dataclass
class Pending:
    """Decisions the stepper waits for (the externally controlled car's rows)."""

    replicas: torch.Tensor
    obs: Observation
    legal: torch.Tensor
    positions: torch.Tensor
    """Where these rows sit among the window's deciding rows."""


class ChunkSim:
    """One chunk of replicas of a race, on its own SimPy environment and random streams."""

    def __init__(
        self,
        scenario: Scenario,
        car_strategies: Sequence[Strategy],
        replicas: int,
        seed: int,
        chunk: int,
        first_replica: int,
        lap_model: LapModel,
        event_model: EventModel | None,
        forced: Sequence[ForcedEvent] = (),
        start: RaceState | None = None,
        start_time_s: float = 0.0,
        record_laps: bool = False,
        controlled_car: int | None = None,
        keep_log: bool = False,
    ) -> None:
        self.sc = scenario
        self.field = FieldTable.build(scenario)
        self.R, self.C = replicas, self.field.n_cars
        self.seed = seed
        self.first_replica = first_replica
        self.gens = chunk_generators(seed, chunk)
        self.lap_model = lap_model
        self.event_model = event_model
        self.forced = tuple(scenario.forced_events) + tuple(forced)
        self.window = scenario.race.window_s
        self.duration = scenario.race.duration_s
        self.laps_target = scenario.race.laps
        self.flagf = FlagFactors.from_scenario(scenario)
        self.member = torch.arange(replicas) + first_replica
        self.class_onehot = torch.nn.functional.one_hot(
            self.field.class_index, self.field.n_classes
        ).float()
        self.strategies = list(car_strategies)
        groups: dict[int, int] = {}
        self.group_objs: list[Strategy] = []
        group_of_car = []
        for st in self.strategies:
            if id(st) not in groups:
                groups[id(st)] = len(self.group_objs)
                self.group_objs.append(st)
            group_of_car.append(groups[id(st)])
        self.group_of_car = torch.tensor(group_of_car)
        self.controlled_car = controlled_car
        self.recorder = LapRecorder() if record_laps else None
        self.incident_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("replica", "car", "race_time_s", "kind", "damage")
        }
        needs_events = (
            scenario.events.incidents
            or scenario.events.weather
            or any(e.kind in (ForcedKind.DAMAGE,) for e in self.forced)
        )
        if needs_events and event_model is None:
            raise ValueError(
                f"scenario {scenario.name!r} needs an event model (incidents, weather or "
                "scripted damage are on) and none was given"
            )
        self.params = event_model.draw_params(replicas, self.gens["params"]) if event_model else {}
        self.horizon_s = self._horizon_s()
        self.weather: WeatherGrid = draw_weather(
            scenario,
            event_model,
            self.params,
            replicas,
            self.horizon_s,
            self.gens["weather"],
            self.forced,
        )
        self.env = simpy.Environment(initial_time=start_time_s)
        if start is None:
            temp0 = float(self.weather.track_temp_c[0, 0])
            self.state = initial_state(self.field, replicas, temp0)
            self._needs_first_laps = True
        else:
            self.state = start
            self._needs_first_laps = False
        self.control = RaceControl(self.env, self.state, keep_log)
        self._dmg_dirty = True
        self._dmg_loss = torch.zeros(self.R, self.C)
        self._dmg_repair = torch.zeros(self.R, self.C)
        self._forced_car = [e for e in self.forced if e.car is not None]
        self._forced_done = [torch.zeros(self.R, dtype=torch.bool) for _ in self._forced_car]
        for e in self.forced:
            if e.kind in (ForcedKind.SAFETY_CAR, ForcedKind.FCY, ForcedKind.SLOW_ZONE):
                kind = {
                    ForcedKind.SAFETY_CAR: FlagState.SAFETY_CAR,
                    ForcedKind.FCY: FlagState.FCY,
                    ForcedKind.SLOW_ZONE: FlagState.SLOW_ZONE,
                }[e.kind]
                begin = float(e.start_s or 0.0)
                self.control.forced(kind, begin, self._forced_end(e, kind, begin), self.window)
        if self.duration is not None:
            self.control.race_clock(self.duration)
        self.pending: Pending | None = None
        self.pending_actions: torch.Tensor | None = None
        self.decision_needed: simpy.Event | None = None
        self._decisions_given: simpy.Event | None = None
        self.process = self.env.process(self._run())

    # -- setup --------------------------------------------------------------------------------

    def _horizon_s(self) -> float:
        slowest = float(self.field.ref_lap_time_s.max())
        if self.duration is not None:
            return self.duration + 6.0 * slowest + 3600.0
        assert self.laps_target is not None
        return self.laps_target * slowest * 2.0 + 3600.0

    def _forced_end(self, e: ForcedEvent, kind: FlagState, begin: float) -> torch.Tensor:
        """``[R]`` end of a scripted neutralisation: scripted, drawn by the event model
        (from the parameter stream, so incident draws stay common), or the rules' default."""
        if e.end_s is not None:
            return torch.full((self.R,), float(e.end_s), dtype=F64)
        draw = getattr(self.event_model, "neutralisation_duration", None)
        if draw is not None:
            return begin + draw(self.params, kind, self.gens["params"]).double()
        default = self.sc.rules.flag_rule(kind).default_duration_s
        return torch.full((self.R,), begin + default, dtype=F64)

    def _damage_effects(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._dmg_dirty:
            if self.event_model is not None and bool((self.state.damage > 0).any()):
                loss, repair = self.event_model.damage_effects(self.params, self.state.damage)
                self._dmg_loss = torch.where(self.state.damage > 0, loss.float(), 0.0)
                self._dmg_repair = torch.where(self.state.damage > 0, repair.float(), 0.0)
            else:
                self._dmg_loss.zero_()
                self._dmg_repair.zero_()
            self._dmg_dirty = False
        return self._dmg_loss, self._dmg_repair

    # -- the clock ----------------------------------------------------------------------------

    def _run(self) -> Generator:
        if self._needs_first_laps:
            self._first_laps()
        limit = self.horizon_s
        while bool(self.state.running().any()):
            # The window [a, b) is resolved at its start: race control's events inside it
            # (a flag coming in at t in (a, b]) run after, so they cannot rewrite its schedule.
            a = float(self.env.now)
            b = a + self.window
            yield from self._window(a, b)
            yield self.env.timeout(self.window)
            if b > limit:
                # A car that cannot reach the line any more (a stop longer than the race).
                self.state.retired |= self.state.running()

    def run(self) -> None:
        self.env.run(until=self.process)

    def over(self) -> bool:
        return not self.process.is_alive

    # -- laps ---------------------------------------------------------------------------------

    def _first_laps(self) -> None:
        idx = torch.arange(self.R * self.C)
        t = torch.full((idx.numel(),), float(self.env.now), dtype=F64)
        zero = torch.zeros(idx.numel())
        self._draw_laps(
            idx,
            t,
            torch.full((idx.numel(),), int(FlagState.GREEN)),
            torch.zeros(idx.numel(), dtype=torch.bool),
            zero,
            zero,
            zero,
        )

    def _draw_laps(
        self,
        idx: torch.Tensor,
        t: torch.Tensor,
        flag: torch.Tensor,
        out_lap: torch.Tensor,
        traffic: torch.Tensor,
        other_traffic: torch.Tensor,
        slow_traffic: torch.Tensor,
    ) -> None:
        """Draw the next lap of flat rows ``idx`` starting at race times ``t``."""
        s, f = self.state, self.field
        rep = idx // self.C
        car = idx % self.C
        _, wet, temp = self.weather.at(rep, t)
        driver = s.driver.view(-1)[idx]
        cond = LapConditions(
            ref_lap_time_s=f.ref_lap_time_s[car],
            ref_fuel_per_lap=f.ref_fuel_per_lap[car],
            ref_energy_per_lap=f.ref_energy_per_lap[car],
            ref_wear_per_lap=f.ref_wear_per_lap[car],
            fuel=s.fuel.view(-1)[idx],
            energy=s.energy.view(-1)[idx],
            tread=s.tread.view(-1, 4)[idx],
            tyre_age_laps=s.tyre_age.view(-1)[idx],
            compound=s.compound.view(-1)[idx],
            tyre_temp_c=s.tyre_temp_c.view(-1)[idx],
            damage=s.damage.view(-1)[idx],
            stint_time_s=(t - s.stint_start_s.view(-1)[idx]).clamp(min=0.0).float(),
            pace_mode=s.pace.view(-1)[idx],
            class_index=f.class_index[car],
            driver_skill=f.driver_skill[car, driver],
            flag=flag,
            wetness=wet,
            track_temp_c=temp,
            night=darkness(self.sc, t),
            traffic=traffic,
            out_lap=out_lap.float(),
        )
        out = self.lap_model.sample(cond, self.gens["laps"], member=self.member[rep])
        loss, _ = self._damage_effects()
        green = out.lap_time_s.double()
        total = green * (1.0 + loss.view(-1)[idx].double()) + (
            self.sc.rules.overtake_cost_s * slow_traffic.double()
        )
        s.green_lap_s.view(-1)[idx] = out.lap_time_s
        s.lap_total_s.view(-1)[idx] = total
        s.rem_s.view(-1)[idx] = total
        s.lap_start_s.view(-1)[idx] = t
        s.lap_fuel.view(-1)[idx] = out.fuel_used
        s.lap_energy.view(-1)[idx] = torch.where(f.has_energy[car], out.energy_used, 0.0)
        s.lap_wear.view(-1, 4)[idx] = out.wear
        s.lap_tyre_temp_c.view(-1)[idx] = out.tyre_temp_c
        s.acc_fuel_s.view(-1)[idx] = 0.0
        s.acc_wear_s.view(-1)[idx] = 0.0
        s.lap_flag.view(-1)[idx] = flag
        s.traffic.view(-1)[idx] = traffic
        s.other_class_traffic.view(-1)[idx] = other_traffic

    # -- one window ---------------------------------------------------------------------------

    def _neutral(self) -> tuple[torch.Tensor, ...]:
        s = self.state
        kind = s.neut_kind
        return (
            kind,
            s.neut_start_s.unsqueeze(1),
            s.neut_end_s.unsqueeze(1),
            self.flagf.time[kind].unsqueeze(1),
        )

    def _sc_catch_up(self, a: float, b: float) -> torch.Tensor | None:
        """Green-equivalent seconds each car may gain closing up behind the safety car."""
        s = self.state
        sc = (s.neut_kind == int(FlagState.SAFETY_CAR)) & (s.neut_start_s < b) & (s.neut_end_s > a)
        if not bool(sc.any()):
            return None
        on_track = s.running() & (s.hold_s <= 0)
        driven = torch.where(on_track, 1.0 - s.rem_s / s.lap_total_s.clamp(min=1e-9), -1e9)
        order = torch.argsort(driven, dim=1, descending=True)
        sorted_d = driven.gather(1, order)
        ahead = torch.cat([sorted_d[:, :1], sorted_d[:, :-1]], dim=1)
        gap_frac = torch.zeros_like(sorted_d)
        gap_frac.scatter_(1, order, (ahead - sorted_d))
        gap_s = gap_frac * s.lap_total_s - self.sc.track.sc_min_gap_s
        gap_s = torch.where(on_track & sc.unsqueeze(1), gap_s.clamp(min=0.0), 0.0)
        return gap_s

    def _window(self, a: float, b: float) -> Generator:
        s = self.state
        running = s.running()
        key = distance_key(s.lap, s.rem_s, s.lap_total_s, s.finished, s.retired, s.finish_time_s)
        leader = torch.where(running, key, -float("inf")).argmax(dim=1)
        kind, ns, ne, factor = self._neutral()
        inf = torch.tensor(float("inf"), dtype=F64)
        p = advance(
            a,
            b,
            torch.where(running, s.hold_s, inf),
            torch.where(running, s.rem_s, inf),
            ns,
            ne,
            factor,
            self._sc_catch_up(a, b),
        )
        s.hold_s = torch.where(running, p.hold_left_s, s.hold_s)
        s.rem_s = torch.where(running, s.rem_s - (p.green_s + p.neutral_s), s.rem_s)
        fk = self.flagf.fuel[kind].unsqueeze(1)
        wk = self.flagf.wear[kind].unsqueeze(1)
        s.acc_fuel_s += p.green_s + p.neutral_s * fk
        s.acc_wear_s += p.green_s + p.neutral_s * wk
        s.lap_flag = torch.where(p.neutral_race_s > 0, kind.unsqueeze(1), s.lap_flag)
        track_s = torch.where(running, p.track_s, 0.0)
        crossed = p.crossed & running
        if bool(crossed.any()):
            yield from self._crossings(b, p.cross_s, crossed, leader)
        self._incidents(a, b, track_s)

    def _flag_at(self, rep: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.state
        under = (s.neut_start_s[rep] <= t) & (t < s.neut_end_s[rep])
        return torch.where(under, s.neut_kind[rep], int(FlagState.GREEN))

    def _crossings(
        self, b: float, cross_s: torch.Tensor, crossed: torch.Tensor, leader: torch.Tensor
    ) -> Generator:
        s, f = self.state, self.field
        C = self.C
        idx = crossed.view(-1).nonzero().squeeze(1)
        rep, car = idx // C, idx % C
        t = cross_s.view(-1)[idx]

        # Complete the lap.
        lap_time = t - s.lap_start_s.view(-1)[idx]
        total = s.lap_total_s.view(-1)[idx].clamp(min=1e-9)
        frac_f = (s.acc_fuel_s.view(-1)[idx] / total).float()
        frac_w = (s.acc_wear_s.view(-1)[idx] / total).float()
        fuel_start = s.fuel.view(-1)[idx]
        energy_start = s.energy.view(-1)[idx]
        fuel = fuel_start - s.lap_fuel.view(-1)[idx] * frac_f
        energy = energy_start - s.lap_energy.view(-1)[idx] * frac_f
        dry = (fuel < 0) | (energy < 0)
        s.fuel.view(-1)[idx] = fuel.clamp(min=0.0)
        s.energy.view(-1)[idx] = energy.clamp(min=0.0)
        tread = s.tread.view(-1, 4)[idx] - s.lap_wear.view(-1, 4)[idx] * frac_w.unsqueeze(1)
        s.tread.view(-1, 4)[idx] = tread.clamp(min=0.0)
        s.tyre_age.view(-1)[idx] += 1.0
        s.tyre_temp_c.view(-1)[idx] = s.lap_tyre_temp_c.view(-1)[idx]
        s.lap.view(-1)[idx] += 1
        s.stint_laps.view(-1)[idx] += 1.0
        s.stint_drive_s.view(-1)[idx] += lap_time
        driver = s.driver.view(-1)[idx]
        s.drive_total_s.view(-1, f.max_drivers)[idx, driver] += lap_time
        s.finish_time_s.view(-1)[idx] = t
        s.rem_s.view(-1)[idx] = s.lap_total_s.view(-1)[idx]  # at the line: nothing driven
        lap_flag = s.lap_flag.view(-1)[idx].clone()
        pit_time_lap = s.lap_pit_time_s.view(-1)[idx].clone()
        out_lap_done = s.out_lap.view(-1)[idx].clone()
        dc_done = s.lap_driver_change.view(-1)[idx].clone()
        pace_done = s.pace.view(-1)[idx].clone()
        if bool(dry.any()):
            s.retired.view(-1)[idx[dry]] = True
        new_lap = s.lap.view(-1)[idx]

        # The chequered flag: the leader's first crossing once time (or distance) is up.
        is_leader = car == leader[rep]
        if self.duration is not None:
            flag_now = is_leader & (t >= self.duration) & ~dry
        else:
            flag_now = is_leader & (new_lap >= int(self.laps_target or 0)) & ~dry
        if bool(flag_now.any()):
            s.chequer_s.scatter_reduce_(0, rep[flag_now], t[flag_now], reduce="amin")
        finishing = (t >= s.chequer_s[rep]) & ~dry
        if bool(finishing.any()):
            s.finished.view(-1)[idx[finishing]] = True
        cont = ~finishing & ~dry

        lap_end = None
        if self.recorder is not None:  # the lap's end state, before any stop changes it
            lap_end = {
                "fuel_end": s.fuel.view(-1)[idx],
                "energy_end": s.energy.view(-1)[idx],
                "tread": s.tread.view(-1, 4)[idx],
                "compound": s.compound.view(-1)[idx],
                "tyre_age_laps": s.tyre_age.view(-1)[idx],
                "tyre_temp_c": s.tyre_temp_c.view(-1)[idx],
                "damage": s.damage.view(-1)[idx],
            }

        # Positions at the line (every crossing row, for the record and the strategies).
        key = distance_key(s.lap, s.rem_s, s.lap_total_s, s.finished, s.retired, s.finish_time_s)
        overall, cls_pos, gap_a, gap_b = row_positions(
            key, rep, car, f.class_index, f.ref_lap_time_s
        )
        rain, wet, temp = self.weather.at(rep, t)
        flag_line = self._flag_at(rep, t)

        ci = cont.nonzero().squeeze(1)
        n = int(ci.numel())
        actions = torch.zeros(n, dtype=torch.int64)
        pit = torch.zeros(n, dtype=torch.bool)
        if n:
            obs, legal = self._observe(
                idx[ci],
                t[ci],
                overall[ci],
                cls_pos[ci],
                gap_a[ci],
                gap_b[ci],
                wet[ci],
                flag_line[ci],
            )
            ext = torch.zeros(n, dtype=torch.bool)
            if self.controlled_car is not None:
                ext = car[ci] == self.controlled_car
            grp = self.group_of_car[car[ci]]
            for g, strat in enumerate(self.group_objs):
                sel = ((grp == g) & ~ext).nonzero().squeeze(1)
                if sel.numel() == 0:
                    continue
                o, lg = obs.index(sel), legal[sel]
                act = strat.decide(o, lg, self.gens["strategies"])
                check_decisions(act, lg, getattr(strat, "name", type(strat).__name__))
                actions[sel] = act
            if bool(ext.any()):
                sel = ext.nonzero().squeeze(1)
                self.pending = Pending(
                    replicas=rep[ci][sel], obs=obs.index(sel), legal=legal[sel], positions=sel
                )
                self._decisions_given = self.env.event()
                assert self.decision_needed is not None
                self.decision_needed.succeed()
                yield self._decisions_given
                assert self.pending_actions is not None
                check_decisions(self.pending_actions, legal[sel], "controlled car")
                actions[sel] = self.pending_actions
                self.pending = None
                self.pending_actions = None
            pit = ACTION_TABLE.pit[actions]
            s.pace.view(-1)[idx[ci]] = ACTION_TABLE.pace[actions]
            hold = self._pit_stops(idx[ci], t[ci], actions, pit)
        else:
            hold = torch.zeros(0, dtype=F64)

        if self.recorder is not None:
            pit_in = torch.zeros(idx.numel(), dtype=torch.bool)
            pit_in[ci] = pit
            assert lap_end is not None
            self._record(
                idx,
                t,
                lap_time,
                overall,
                cls_pos,
                pit_in,
                out_lap_done,
                pit_time_lap,
                fuel_start,
                energy_start,
                temp,
                wet,
                rain,
                lap_flag,
                dc_done,
                driver,
                pace_done,
                lap_end,
            )
        if n == 0:
            return

        # Draw the next lap of every continuing car, then drive the rest of the window.
        rows = idx[ci]
        rrep, rcar, rt = rep[ci], car[ci], t[ci]
        on_track = s.running() & (s.hold_s <= 0)
        near = near_line_by_class(s.rem_s, s.lap_total_s, on_track, self.class_onehot)[rrep]
        rcls = f.class_index[rcar]
        traffic = near.sum(dim=1)
        other = traffic - near.gather(1, rcls.unsqueeze(1)).squeeze(1)
        slow = (near * f.slower_class[rcls]).sum(dim=1)
        self._draw_laps(rows, rt, flag_line[ci], pit, traffic, other, slow)
        kind = s.neut_kind[rrep]
        p = advance(
            rt,
            b,
            hold,
            s.rem_s.view(-1)[rows],
            s.neut_start_s[rrep],
            s.neut_end_s[rrep],
            self.flagf.time[kind],
        )
        s.hold_s.view(-1)[rows] = p.hold_left_s
        used = p.green_s + p.neutral_s
        s.rem_s.view(-1)[rows] = (s.rem_s.view(-1)[rows] - used).clamp(min=1e-6)
        s.acc_fuel_s.view(-1)[rows] += p.green_s + p.neutral_s * self.flagf.fuel[kind]
        s.acc_wear_s.view(-1)[rows] += p.green_s + p.neutral_s * self.flagf.wear[kind]
        under = p.neutral_race_s > 0
        s.lap_flag.view(-1)[rows] = torch.where(under, kind, s.lap_flag.view(-1)[rows])

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
        fuel = s.fuel.view(-1)[rows]
        energy = s.energy.view(-1)[rows]
        has_e = f.has_energy[car]
        ref_fuel = f.ref_fuel_per_lap[car]
        ref_energy = f.ref_energy_per_lap[car]
        laps_fuel = fuel / ref_fuel
        laps_energy = torch.where(has_e, energy / ref_energy.clamp(min=1e-9), float("inf"))
        ref_lap = f.ref_lap_time_s[car]
        time_left = self._time_left(rep, t, ref_lap)
        drivers = s.drive_total_s.view(-1, f.max_drivers)[rows]
        driver = s.driver.view(-1)[rows]
        n_drv = f.n_drivers[car]
        exists = torch.arange(f.max_drivers).unsqueeze(0) < n_drv.unsqueeze(1)
        current = drivers.gather(1, driver.unsqueeze(1)).squeeze(1)
        others = exists & (torch.arange(f.max_drivers).unsqueeze(0) != driver.unsqueeze(1))
        next_total = torch.where(others, drivers, float("inf")).min(dim=1).values
        deficit = torch.where(
            others, (rules.min_total_driving_s - drivers).clamp(min=0.0), 0.0
        ).sum(dim=1)
        tread = s.tread.view(-1, 4)[rows]
        compound = s.compound.view(-1)[rows]
        sets = s.tyre_sets_left.view(-1)[rows]
        damage = s.damage.view(-1)[rows]
        stint_drive = s.stint_drive_s.view(-1)[rows]
        cars = CarsAtLine(
            fuel=fuel,
            energy=energy,
            has_energy=has_e,
            ref_fuel_per_lap=ref_fuel,
            ref_energy_per_lap=ref_energy,
            ref_lap_time_s=ref_lap,
            tread=tread,
            compound=compound,
            compound_allowed=f.compound_allowed[car],
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
            lap=s.lap.view(-1)[rows].float(),
            class_position=cls_pos,
            overall_position=overall,
            gap_ahead_s=gap_a,
            gap_behind_s=gap_b,
            fuel=fuel,
            energy=energy,
            fuel_laps_left=torch.minimum(laps_fuel, laps_energy),
            tread=tread,
            tyre_age_laps=s.tyre_age.view(-1)[rows],
            compound=compound,
            tyre_sets_left=sets,
            damage=damage,
            driver=driver,
            driver_time_s=current.float(),
            stint_laps=s.stint_laps.view(-1)[rows],
            flag=flag,
            wetness=wet,
            rain_forecast=self.weather.forecast(rep, t),
            ref_lap_time_s=ref_lap,
            pit_loss_s=torch.full_like(ref_lap, self.sc.track.pit_lane_loss_s),
        )
        assert legal.shape == (rows.numel(), N_ACTIONS)
        return obs, legal

    def _time_left(self, rep: torch.Tensor, t: torch.Tensor, ref_lap: torch.Tensor) -> torch.Tensor:
        if self.duration is not None:
            return (self.duration - t).clamp(min=0.0)
        lead = self.state.lap.max(dim=1).values[rep].double()
        return (float(self.laps_target or 0) - lead).clamp(min=0.0) * ref_lap.double()

    def _pit_stops(
        self, rows: torch.Tensor, t: torch.Tensor, actions: torch.Tensor, pit: torch.Tensor
    ) -> torch.Tensor:
        """Serve the stops of the pitting rows; the pit-lane time of every row [s]."""
        s, f, rules = self.state, self.field, self.sc.rules
        hold = torch.zeros(rows.numel(), dtype=F64)
        s.out_lap.view(-1)[rows] = pit
        s.lap_pit_time_s.view(-1)[rows] = 0.0
        s.lap_driver_change.view(-1)[rows] = False
        if not bool(pit.any()):
            return hold
        pi = pit.nonzero().squeeze(1)
        r = rows[pi]
        a = actions[pi]
        tp = t[pi]
        rep, car = r // self.C, r % self.C
        _, repair = self._damage_effects()
        ref_lap = f.ref_lap_time_s[car]
        laps_left = (self._time_left(rep, tp, ref_lap) / ref_lap.double()).float() + 1.0
        work = plan_stop(
            a,
            s.fuel.view(-1)[r],
            s.energy.view(-1)[r],
            f.has_energy[car],
            f.ref_fuel_per_lap[car],
            f.ref_energy_per_lap[car],
            laps_left,
            f.refuel_full_s[car],
            repair.view(-1)[r],
            rules,
        )
        loss = self.sc.track.pit_lane_loss_s
        arrival = tp + 0.5 * loss
        gkey = rep * f.n_teams + f.team_index[car]
        wait, free = garage_queue(arrival, work.stationary_s, gkey, s.garage_free_s.view(-1))
        s.garage_free_s.view(-1).copy_(free)
        stop_hold = loss + wait + work.stationary_s
        hold[pi] = stop_hold
        s.fuel.view(-1)[r] = work.fuel_to
        s.energy.view(-1)[r] = work.energy_to
        tread, comp, reset, sets_used = fit_tyres(a, s.tread.view(-1, 4)[r], s.compound.view(-1)[r])
        changed = ACTION_TABLE.tyre_count[a] > 0
        s.tread.view(-1, 4)[r] = tread
        s.compound.view(-1)[r] = comp
        s.tyre_age.view(-1)[r] = torch.where(reset, 0.0, s.tyre_age.view(-1)[r])
        s.tyre_sets_left.view(-1)[r] = (s.tyre_sets_left.view(-1)[r] - sets_used).clamp(min=0.0)
        _, _, temp = self.weather.at(rep, tp)
        s.tyre_temp_c.view(-1)[r] = torch.where(changed, temp, s.tyre_temp_c.view(-1)[r])
        dc = ACTION_TABLE.driver_change[a]
        if bool(dc.any()):
            drivers = s.drive_total_s.view(-1, f.max_drivers)[r]
            cur = s.driver.view(-1)[r]
            d_idx = torch.arange(f.max_drivers).unsqueeze(0)
            eligible = (d_idx < f.n_drivers[car].unsqueeze(1)) & (d_idx != cur.unsqueeze(1))
            nxt = torch.where(eligible, drivers, float("inf")).argmin(dim=1)
            s.driver.view(-1)[r] = torch.where(dc, nxt, cur)
            s.stint_drive_s.view(-1)[r] = torch.where(dc, 0.0, s.stint_drive_s.view(-1)[r])
        rep_mask = ACTION_TABLE.repair[a]
        if bool(rep_mask.any()):
            s.damage.view(-1)[r] = torch.where(rep_mask, 0.0, s.damage.view(-1)[r])
            self._dmg_dirty = True
        s.pit_stops.view(-1)[r] += 1
        s.pit_time_s.view(-1)[r] += stop_hold
        s.stint_laps.view(-1)[r] = 0.0
        s.stint_start_s.view(-1)[r] = tp + stop_hold
        s.lap_pit_time_s.view(-1)[r] = stop_hold
        s.lap_driver_change.view(-1)[r] = dc
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
                "lap": np_(s.lap.view(-1)[idx]),
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

    # -- incidents ----------------------------------------------------------------------------

    def _forced_car_events(self, a: float, b: float) -> dict[str, torch.Tensor] | None:
        if not self._forced_car:
            return None
        s = self.state
        damage = torch.zeros(self.R, self.C)
        puncture = torch.zeros(self.R, self.C, dtype=torch.bool)
        failure = torch.zeros(self.R, self.C, dtype=torch.bool)
        when = torch.full((self.R, self.C), float("nan"), dtype=F64)
        any_ev = False
        for ev, done in zip(self._forced_car, self._forced_done, strict=True):
            c = self.sc.entry_index(str(ev.car))
            if ev.lap is not None:
                hit = (s.lap[:, c] == ev.lap - 1) & ~done & s.running()[:, c]
                at = torch.full((self.R,), b, dtype=F64)
            else:
                start = float(ev.start_s or 0.0)
                hit = torch.full((self.R,), a <= start < b) & ~done & s.running()[:, c]
                at = torch.full((self.R,), start, dtype=F64)
            if not bool(hit.any()):
                continue
            any_ev = True
            done |= hit
            when[hit, c] = at[hit]
            if ev.kind == ForcedKind.PUNCTURE:
                puncture[hit, c] = True
            elif ev.kind == ForcedKind.FAILURE:
                failure[hit, c] = True
            elif ev.kind == ForcedKind.DAMAGE:
                damage[hit, c] = ev.intensity
        if not any_ev:
            return None
        return {"damage": damage, "puncture": puncture, "failure": failure, "time_s": when}

    def _incidents(self, a: float, b: float, track_s: torch.Tensor) -> None:
        s, f, rules = self.state, self.field, self.sc.rules
        running = s.running()
        drawn = None
        if self.sc.events.incidents and self.event_model is not None:
            rep_all = torch.arange(self.R).unsqueeze(1).expand(self.R, self.C)
            t_b = torch.full((self.R,), b, dtype=F64)
            _, wet, _ = self.weather.at(torch.arange(self.R), t_b)
            exposure = CarExposure(
                dt_s=track_s.float(),
                race_time_s=torch.full((self.R, self.C), b),
                traffic=s.traffic,
                faster_class_traffic=s.other_class_traffic,
                pace_mode=s.pace,
                tread_min=s.tread.min(dim=2).values,
                class_index=f.class_index.expand(self.R, self.C),
                driver_skill=f.driver_skill[torch.arange(self.C).unsqueeze(0), s.driver],
                wetness=wet.unsqueeze(1).expand(self.R, self.C),
                night=darkness(self.sc, torch.tensor([b], dtype=F64)).expand(self.R, self.C),
            )
            del rep_all
            drawn = self.event_model.car_incidents(self.params, exposure, self.gens["incidents"])
        forced = self._forced_car_events(a, b)
        if drawn is None and forced is None:
            return
        if drawn is not None:
            damage = drawn.damage.float()
            puncture = drawn.puncture.bool()
            failure = drawn.failure.bool() | drawn.retired.bool()
            when = drawn.time_s.double()
            contact = drawn.contact.bool()
        else:
            damage = torch.zeros(self.R, self.C)
            puncture = torch.zeros(self.R, self.C, dtype=torch.bool)
            failure = torch.zeros(self.R, self.C, dtype=torch.bool)
            when = torch.full((self.R, self.C), float("nan"), dtype=F64)
            contact = torch.zeros(self.R, self.C, dtype=torch.bool)
        if forced is not None:
            damage = torch.maximum(damage, forced["damage"])
            puncture = puncture | forced["puncture"]
            failure = failure | forced["failure"]
            when = torch.where(torch.isnan(when), forced["time_s"], when)
        damage = torch.where(running, damage, 0.0)
        puncture &= running
        failure &= running
        contact &= running
        hit = (damage > 0) | puncture | failure | contact
        if not bool(hit.any()):
            if self.sc.events.incidents and self.event_model is not None:
                self._neutralise(torch.zeros(self.R), when, b)
            return
        when = torch.where(torch.isnan(when), torch.full_like(when, b), when)
        # Damage stretches what is left of the current lap by the change of its time loss.
        if bool((damage > 0).any()):
            old_loss, _ = self._damage_effects()
            old_loss = old_loss.clone()
            s.damage = (s.damage + damage).clamp(max=1.0)
            self._dmg_dirty = True
            new_loss, _ = self._damage_effects()
            s.rem_s = s.rem_s * ((1.0 + new_loss.double()) / (1.0 + old_loss.double()))
        if bool(puncture.any()):
            worst = s.tread.argmin(dim=2, keepdim=True)
            flat = torch.zeros_like(s.tread, dtype=torch.bool).scatter_(2, worst, True)
            s.tread = torch.where(flat & puncture.unsqueeze(2), 0.0, s.tread)
            s.rem_s = s.rem_s + puncture.double() * rules.puncture_loss_s
        if bool(failure.any()):
            s.retired |= failure
        hr, hc = hit.nonzero(as_tuple=True)
        kinds = np.where(
            failure[hr, hc].numpy(),
            "failure",
            np.where(
                puncture[hr, hc].numpy(),
                "puncture",
                np.where(contact[hr, hc].numpy(), "contact", "damage"),
            ),
        )
        self.incident_parts["replica"].append((hr + self.first_replica).numpy())
        self.incident_parts["car"].append(hc.numpy())
        self.incident_parts["race_time_s"].append(when[hr, hc].numpy())
        self.incident_parts["kind"].append(kinds.astype(np.str_))
        self.incident_parts["damage"].append(damage[hr, hc].numpy())
        severity = torch.where(failure | puncture, 1.0, damage).amax(dim=1)
        if self.event_model is not None and self.sc.events.incidents:
            self._neutralise(severity, torch.where(hit, when, float("inf")), b)

    def _neutralise(self, severity: torch.Tensor, when: torch.Tensor, b: float) -> None:
        """Race control's answer to the window's incidents (drawn every window: fixed shape)."""
        assert self.event_model is not None
        s = self.state
        neut = self.event_model.neutralisation(self.params, severity, self.gens["incidents"])
        kind = neut.kind.long()
        wanted = (severity > 0) & torch.isin(kind, torch.tensor(_NEUTRAL_KINDS))
        free = (s.neut_kind == int(FlagState.GREEN)) | (s.neut_end_s <= b)
        go = wanted & free & torch.isinf(s.chequer_s)
        if not bool(go.any()):
            return
        reps = go.nonzero().squeeze(1)
        first = torch.nan_to_num(when, nan=float("inf")).amin(dim=1)[reps]
        first = torch.where(torch.isfinite(first), first, b)
        start = torch.maximum(
            first + self.sc.rules.neutralisation_delay_s, torch.full_like(first, b)
        )
        end = start + neut.duration_s[reps].double()
        self.control.deploy(reps, kind[reps], start, end)

    # -- the outcome --------------------------------------------------------------------------

    def result(self, strategy_names: list[str]) -> RaceResult:
        s, f = self.state, self.field
        key = distance_key(s.lap, s.rem_s, s.lap_total_s, s.finished, s.retired, s.finish_time_s)
        pos, cls = final_order(key, f.class_index)
        fl = self.control.flags
        return RaceResult(
            scenario_name=self.sc.name,
            seed=self.seed,
            replicas=self.R,
            car_numbers=[e.number for e in self.sc.entries],
            car_classes=[e.car_class for e in self.sc.entries],
            car_teams=[e.team for e in self.sc.entries],
            strategy_names=strategy_names,
            finish_position=pos.numpy(),
            class_position=cls.numpy(),
            laps_completed=s.lap.numpy().copy(),
            finish_time_s=s.finish_time_s.numpy().copy(),
            pit_stops=s.pit_stops.numpy().copy(),
            pit_time_s=s.pit_time_s.numpy().copy(),
            retired=s.retired.numpy().copy(),
            flag_periods={
                "replica": np.asarray(fl.replica, dtype=np.int64) + self.first_replica,
                "kind": np.asarray(fl.kind, dtype=np.int64),
                "start_s": np.asarray(fl.start_s, dtype=np.float64),
                "end_s": np.asarray(fl.end_s, dtype=np.float64),
            },
            incidents=incident_columns(self.incident_parts),
            laps=self.recorder.columns() if self.recorder is not None else None,
            first_replica=self.first_replica,
        )
