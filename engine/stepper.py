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
from engine.observe import (
    FINISH_TIEBREAK,
    RETIRED_OFFSET,
    TRAFFIC_WINDOW_S,
    field_positions,
    final_order,
)
from engine.pitstop import fit_tyres, garage_queue, plan_stop
from engine.progress import FOREVER_S, drive
from engine.result import LapRecorder, RaceResult, incident_columns
from engine.rng import chunk_generators
from engine.scenario import Scenario
from engine.state import F64, RaceState, add, initial_state, put, take
from engine.strategy import Observation, Strategy, check_decisions
from events.interface import CarExposure, EventModel, ForcedEvent, ForcedKind
from world_model.interface import FlagState, LapConditions, LapModel

_NEUTRAL_KINDS = (int(FlagState.FCY), int(FlagState.SAFETY_CAR), int(FlagState.SLOW_ZONE))
_SEVERITY = torch.tensor([0, 1, 3, 4, 2, 5])
"""Rank of each FlagState code (green < local yellow < slow zone < FCY < safety car): a lap
records the worst neutralisation it met."""


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
        self._all_replicas = torch.arange(replicas)
        self._car_rc = torch.arange(self.C).expand(replicas, self.C)
        self._class_rc = self.field.class_index.expand(replicas, self.C)
        ref = self.field.ref_lap_time_s.double()
        self._neutral_scale = ref.min() / ref
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
        self.control.on_reschedule = self._reschedule
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
                end = self._forced_end(e, kind, begin)
                if bool((end > start_time_s).any()):  # a resumed race skips flags of its past
                    self.control.forced(kind, begin, end, self.window)
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
                stuck = self.state.running()
                self.state.retired |= stuck
                self.state.next_cross_s[stuck] = float("inf")
                self.state.anchor_s[stuck] = float("inf")

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
            hold_s=self.state.anchor_s.view(-1) - t,  # the rolling start's gaps
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
        hold_s: torch.Tensor | None = None,
        weather: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Draw the next lap of flat rows ``idx`` starting at the line at race times ``t``
        (moving off after ``hold_s`` in the pit lane) and predict its crossing; ``weather``:
        the rows' (wetness, track temperature) when already known."""
        s, f = self.state, self.field
        rep = idx // self.C
        car = idx % self.C
        if weather is None:
            _, wet, temp = self.weather.at(rep, t)
        else:
            wet, temp = weather
        driver = take(s.driver, idx)
        cond = LapConditions(
            ref_lap_time_s=f.ref_lap_time_s.index_select(0, car),
            ref_fuel_per_lap=f.ref_fuel_per_lap.index_select(0, car),
            ref_energy_per_lap=f.ref_energy_per_lap.index_select(0, car),
            ref_wear_per_lap=f.ref_wear_per_lap.index_select(0, car),
            fuel=take(s.fuel, idx),
            energy=take(s.energy, idx),
            tread=take(s.tread, idx),
            tyre_age_laps=take(s.tyre_age, idx),
            compound=take(s.compound, idx),
            tyre_temp_c=take(s.tyre_temp_c, idx),
            damage=take(s.damage, idx),
            stint_time_s=(t - take(s.stint_start_s, idx)).clamp(min=0.0).float(),
            pace_mode=take(s.pace, idx),
            class_index=f.class_index.index_select(0, car),
            driver_skill=f.driver_skill[car, driver],
            flag=flag,
            wetness=wet,
            track_temp_c=temp,
            # Darkness changes over minutes: the value at the first row's time serves all.
            night=darkness(self.sc, t[:1]).expand(t.shape[0]),
            traffic=traffic,
            out_lap=out_lap.float(),
        )
        out = self.lap_model.sample(
            cond, self.gens["laps"], member=self.member.index_select(0, rep)
        )
        loss, _ = self._damage_effects()
        green = out.lap_time_s.double()
        total = green * (1.0 + take(loss, idx).double()) + (
            self.sc.rules.overtake_cost_s * slow_traffic.double()
        )
        put(s.green_lap_s, idx, out.lap_time_s)
        put(s.lap_total_s, idx, total)
        put(s.rem_s, idx, total)
        put(s.lap_start_s, idx, t)
        put(s.lap_fuel, idx, out.fuel_used)
        put(s.lap_energy, idx, torch.where(f.has_energy.index_select(0, car), out.energy_used, 0.0))
        put(s.lap_wear, idx, out.wear)
        put(s.lap_tyre_temp_c, idx, out.tyre_temp_c)
        put(s.acc_fuel_s, idx, 0.0)
        put(s.acc_wear_s, idx, 0.0)
        put(s.lap_flag, idx, flag)
        put(s.traffic, idx, traffic)
        put(s.other_class_traffic, idx, other_traffic)
        anchor = t if hold_s is None else t + hold_s
        put(s.anchor_s, idx, anchor)
        self._predict(idx, rep)

    # -- one window ---------------------------------------------------------------------------

    def _schedule(
        self, idx: torch.Tensor, rep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kind, start, end, lap-time factor) of the neutralisation met by flat rows ``idx``
        (replicas ``rep``). The factor applies to the fastest car's pace: under a
        neutralisation every car runs the same speed, so a slower car's own factor is
        smaller (and never below 1)."""
        s = self.state
        kind = s.neut_kind.index_select(0, rep)
        scale = self._neutral_scale.index_select(0, idx % self.C)
        factor = (self.flagf.time.index_select(0, kind) * scale).clamp(min=1.0)
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
        s = self.state
        anchor = take(s.anchor_s, idx)
        t = torch.as_tensor(t, dtype=F64).expand_as(anchor)
        moving = anchor < t
        kind, ns, ne, f = self._schedule(idx, rep)
        p = drive(anchor, t, take(s.rem_s, idx), ns, ne, f, take(s.catch_s, idx))
        green = torch.where(moving, p.green_s, 0.0)
        neutral = torch.where(moving, p.neutral_s, 0.0)
        put(s.rem_s, idx, (take(s.rem_s, idx) - green - neutral).clamp(min=1e-6))
        add(s.acc_fuel_s, idx, green + neutral * self.flagf.fuel.index_select(0, kind))
        add(s.acc_wear_s, idx, green + neutral * self.flagf.wear.index_select(0, kind))
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
        return rep * self.C + c_idx, rep

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
        budget = (gap * total - self.sc.track.sc_min_gap_s).clamp(min=0.0)
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

    def _window(self, a: float, b: float) -> Generator:
        s = self.state
        idx = (s.next_cross_s < b).view(-1).nonzero().squeeze(1)
        if idx.numel():
            key = self._key(a)
            yield from self._crossings(b, idx, key, a)
        self._incidents(a, b)

    def _flag_at(self, rep: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.state
        under = (s.neut_start_s.index_select(0, rep) <= t) & (t < s.neut_end_s.index_select(0, rep))
        return torch.where(under, s.neut_kind.index_select(0, rep), int(FlagState.GREEN))

    def _crossings(self, b: float, idx: torch.Tensor, key: torch.Tensor, a: float) -> Generator:
        """Everything that happens to the cars (flat rows ``idx``) that reach the line in
        the window ``[a, b)``; ``key`` is the field's race-distance key at ``a``."""
        s, f = self.state, self.field
        C = self.C
        rep, car = idx // C, idx % C
        t = take(s.next_cross_s, idx)
        self._settle(idx, rep, t)

        # Complete the lap.
        lap_time = t - take(s.lap_start_s, idx)
        total = take(s.lap_total_s, idx).clamp(min=1e-9)
        frac_f = (take(s.acc_fuel_s, idx) / total).float()
        frac_w = (take(s.acc_wear_s, idx) / total).float()
        fuel_start = take(s.fuel, idx)
        energy_start = take(s.energy, idx)
        fuel = fuel_start - take(s.lap_fuel, idx) * frac_f
        energy = energy_start - take(s.lap_energy, idx) * frac_f
        dry = (fuel < 0) | (energy < 0)
        put(s.fuel, idx, fuel.clamp(min=0.0))
        put(s.energy, idx, energy.clamp(min=0.0))
        tread = take(s.tread, idx) - take(s.lap_wear, idx) * frac_w.unsqueeze(1)
        put(s.tread, idx, tread.clamp(min=0.0))
        add(s.tyre_age, idx, 1.0)
        put(s.tyre_temp_c, idx, take(s.lap_tyre_temp_c, idx))
        add(s.lap, idx, 1)
        add(s.stint_laps, idx, 1.0)
        add(s.stint_drive_s, idx, lap_time)
        driver = take(s.driver, idx)
        s.drive_total_s.view(-1).scatter_add_(0, idx * f.max_drivers + driver, lap_time)
        put(s.finish_time_s, idx, t)
        put(s.lap_start_s, idx, t)  # at the line: nothing of the next lap driven yet
        lap_flag = take(s.lap_flag, idx)
        pit_time_lap = take(s.lap_pit_time_s, idx)
        out_lap_done = take(s.out_lap, idx)
        dc_done = take(s.lap_driver_change, idx)
        pace_done = take(s.pace, idx)
        if bool(dry.any()):
            put(s.retired, idx[dry], True)
        new_lap = take(s.lap, idx)

        # The chequered flag: the leader's first crossing once time (or distance) is up.
        if self.duration is not None:
            due = b >= self.duration
        else:
            due = int(new_lap.max()) >= int(self.laps_target or 0)
        if due:
            is_leader = car == key.argmax(dim=1).index_select(0, rep)
            if self.duration is not None:
                flag_now = is_leader & (t >= self.duration) & ~dry
            else:
                flag_now = is_leader & (new_lap >= int(self.laps_target or 0)) & ~dry
            if bool(flag_now.any()):
                s.chequer_s.scatter_reduce_(0, rep[flag_now], t[flag_now], reduce="amin")
        finishing = (t >= s.chequer_s.index_select(0, rep)) & ~dry
        if bool(finishing.any()):
            put(s.finished, idx[finishing], True)
        cont = ~finishing & ~dry
        if not bool(cont.all()):
            out = idx[~cont]
            put(s.next_cross_s, out, float("inf"))
            put(s.anchor_s, out, float("inf"))  # out of the race: never on track again

        lap_end = None
        if self.recorder is not None:  # the lap's end state, before any stop changes it
            lap_end = {
                "fuel_end": take(s.fuel, idx),
                "energy_end": take(s.energy, idx),
                "tread": take(s.tread, idx),
                "compound": take(s.compound, idx),
                "tyre_age_laps": take(s.tyre_age, idx),
                "tyre_temp_c": take(s.tyre_temp_c, idx),
                "damage": take(s.damage, idx),
            }

        # Positions at the line (every crossing row, for the record and the strategies): the
        # cars at the line count the lap they just completed.
        put(key, idx, new_lap.double())
        pos_all, cls_all, ahead_all, behind_all = field_positions(key, f.class_index)
        ref_row = f.ref_lap_time_s.index_select(0, car)
        overall = take(pos_all, idx).float()
        cls_pos = take(cls_all, idx).float()
        gap_a = (take(ahead_all, idx) * ref_row).float()
        gap_b = (take(behind_all, idx) * ref_row).float()
        rain, wet, temp = self.weather.at(rep, t)
        flag_line = self._flag_at(rep, t)

        every = bool(cont.all())
        ci = torch.arange(idx.numel()) if every else cont.nonzero().squeeze(1)
        n = int(ci.numel())

        def sub(x: torch.Tensor) -> torch.Tensor:
            return x if every else x.index_select(0, ci)

        actions = torch.zeros(n, dtype=torch.int64)
        pit = torch.zeros(n, dtype=torch.bool)
        if n:
            obs, legal = self._observe(
                sub(idx),
                sub(t),
                sub(overall),
                sub(cls_pos),
                sub(gap_a),
                sub(gap_b),
                sub(wet),
                sub(flag_line),
            )
            ext = torch.zeros(n, dtype=torch.bool)
            if self.controlled_car is not None:
                ext = sub(car) == self.controlled_car
            grp = self.group_of_car[sub(car)]
            for g, strat in enumerate(self.group_objs):
                if len(self.group_objs) == 1 and self.controlled_car is None:
                    sel, o, lg = torch.arange(n), obs, legal  # every row: no gather
                else:
                    sel = ((grp == g) & ~ext).nonzero().squeeze(1)
                    if sel.numel() == 0:
                        continue
                    o, lg = obs.index(sel), legal.index_select(0, sel)
                act = strat.decide(o, lg, self.gens["strategies"])
                check_decisions(act, lg, getattr(strat, "name", type(strat).__name__))
                actions[sel] = act
            if bool(ext.any()):
                sel = ext.nonzero().squeeze(1)
                self.pending = Pending(
                    replicas=sub(rep)[sel],
                    obs=obs.index(sel),
                    legal=legal.index_select(0, sel),
                    positions=sel,
                )
                self._decisions_given = self.env.event()
                assert self.decision_needed is not None
                self.decision_needed.succeed()
                yield self._decisions_given
                assert self.pending_actions is not None
                check_decisions(self.pending_actions, legal.index_select(0, sel), "controlled car")
                actions[sel] = self.pending_actions
                self.pending = None
                self.pending_actions = None
            pit = ACTION_TABLE.pit[actions]
            put(s.pace, sub(idx), ACTION_TABLE.pace[actions])
            hold = self._pit_stops(sub(idx), sub(t), actions, pit)
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

        # Draw the next lap of every continuing car: traffic is the cars that crossed the line
        # less than TRAFFIC_WINDOW_S before it and did not stop.
        rows = sub(idx)
        rrep, rcar, rt = sub(rep), sub(car), sub(t)
        # float32 times relative to the window: cars in the pit lane are far in the past.
        started = torch.where(
            s.anchor_s <= s.lap_start_s, (s.lap_start_s - a).float(), -1.0e9
        ).index_select(0, rrep)  # [n, C]
        since = (rt - a).float().unsqueeze(1) - started
        near = ((since > 0) & (since < TRAFFIC_WINDOW_S)).float()
        near_class = near @ self.class_onehot  # [n, K]
        rcls = f.class_index.index_select(0, rcar)
        traffic = near_class.sum(dim=1)
        other = traffic - near_class.gather(1, rcls.unsqueeze(1)).squeeze(1)
        slow = (near_class * f.slower_class.index_select(0, rcls)).sum(dim=1)
        weather = (sub(wet), sub(temp))
        self._draw_laps(rows, rt, sub(flag_line), pit, traffic, other, slow, hold, weather)

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
        fuel = take(s.fuel, rows)
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
        next_total = torch.where(others, drivers, float("inf")).min(dim=1).values
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

    def _time_left(self, rep: torch.Tensor, t: torch.Tensor, ref_lap: torch.Tensor) -> torch.Tensor:
        if self.duration is not None:
            return (self.duration - t).clamp(min=0.0)
        lead = self.state.lap.max(dim=1).values.index_select(0, rep).double()
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

    def _incidents(self, a: float, b: float) -> None:
        s, f = self.state, self.field
        running = s.running()
        drawn = None
        if self.sc.events.incidents and self.event_model is not None:
            # Time on track in the window: none before the pit exit, none once out of the race.
            # (a car out of the race has its anchor at infinity)
            track_s = (b - s.anchor_s.clamp(min=a)).clamp(0.0, b - a)
            _, wet, _ = self.weather.at(self._all_replicas, torch.full((self.R,), b, dtype=F64))
            exposure = CarExposure(
                dt_s=track_s.float(),
                race_time_s=torch.full((self.R, self.C), b),
                traffic=s.traffic,
                faster_class_traffic=s.other_class_traffic,
                pace_mode=s.pace,
                tread_min=s.tread.min(dim=2).values,
                class_index=self._class_rc,
                driver_skill=f.driver_skill.view(-1)
                .index_select(0, (self._car_rc * f.max_drivers + s.driver).view(-1))
                .view(self.R, self.C),
                wetness=wet.unsqueeze(1).expand(self.R, self.C),
                night=darkness(self.sc, torch.tensor([b], dtype=F64)).expand(self.R, self.C),
            )
            drawn = self.event_model.car_incidents(self.params, exposure, self.gens["incidents"])
        forced = self._forced_car_events(a, b)
        if drawn is None and forced is None:
            return
        # Incidents are sparse: work on the rows that had one ([k]), not on the field.
        parts = []
        if drawn is not None:
            parts.append(
                (
                    drawn.time_s.double(),
                    drawn.damage.float(),
                    drawn.puncture.bool(),
                    drawn.failure.bool() | drawn.retired.bool(),
                    drawn.contact.bool(),
                )
            )
        if forced is not None:
            none = torch.zeros(self.R, self.C, dtype=torch.bool)
            parts.append(
                (forced["time_s"], forced["damage"], forced["puncture"], forced["failure"], none)
            )
        idx_parts = [(~torch.isnan(p[0])).view(-1).nonzero().squeeze(1) for p in parts]
        idx = torch.cat(idx_parts).unique() if len(parts) > 1 else idx_parts[0]
        idx = idx[take(running, idx)] if idx.numel() else idx
        severity = torch.zeros(self.R)
        first = torch.full((self.R,), float("inf"), dtype=F64)
        if idx.numel():
            when = torch.full((idx.numel(),), float("nan"), dtype=F64)
            damage = torch.zeros(idx.numel())
            puncture = torch.zeros(idx.numel(), dtype=torch.bool)
            failure = torch.zeros(idx.numel(), dtype=torch.bool)
            contact = torch.zeros(idx.numel(), dtype=torch.bool)
            for t_p, d_p, p_p, f_p, c_p in parts:
                t_k = take(t_p, idx)
                when = torch.where(torch.isnan(when), t_k, when)
                damage = torch.maximum(damage, take(d_p, idx))
                puncture |= take(p_p, idx)
                failure |= take(f_p, idx)
                contact |= take(c_p, idx)
            when = torch.nan_to_num(when, nan=b)
            self._apply_incidents(idx, when, damage, puncture, failure, contact, b)
            rep = idx // self.C
            severity.scatter_reduce_(
                0, rep, torch.where(failure | puncture, 1.0, damage), reduce="amax"
            )
            first.scatter_reduce_(0, rep, when, reduce="amin")
        if self.sc.events.incidents and self.event_model is not None:
            self._neutralise(severity, first, b)

    def _apply_incidents(
        self,
        idx: torch.Tensor,
        when: torch.Tensor,
        damage: torch.Tensor,
        puncture: torch.Tensor,
        failure: torch.Tensor,
        contact: torch.Tensor,
        b: float,
    ) -> None:
        """Damage, punctures and failures of flat rows ``idx`` (each had an incident)."""
        s, rules = self.state, self.sc.rules
        # Damage stretches what is left of the current lap by the change of its time loss; a
        # puncture costs a slow crawl; both from the end of the window. Failures stop the car.
        slowed = ((damage > 0) | puncture) & ~failure
        if bool(slowed.any()):
            sel = slowed.nonzero().squeeze(1)
            rows = idx.index_select(0, sel)
            rrep = rows // self.C
            self._settle(rows, rrep, b)
            old_loss, _ = self._damage_effects()
            old_loss = take(old_loss, rows).double()
            put(s.damage, rows, (take(s.damage, rows) + damage.index_select(0, sel)).clamp(max=1.0))
            self._dmg_dirty = True
            new_loss, _ = self._damage_effects()
            stretch = (1.0 + take(new_loss, rows).double()) / (1.0 + old_loss)
            crawl = puncture.index_select(0, sel).double() * rules.puncture_loss_s
            before = take(s.rem_s, rows)
            after = before * stretch + crawl
            put(s.rem_s, rows, after)
            add(s.lap_total_s, rows, after - before)
            self._predict(rows, rrep)
        if bool(puncture.any()):
            rows = idx[puncture]
            tread = take(s.tread, rows)
            worst = tread.argmin(dim=1, keepdim=True)
            put(s.tread, rows, tread.scatter(1, worst, 0.0))
        if bool(failure.any()):
            rows = idx[failure]
            put(s.retired, rows, True)
            put(s.next_cross_s, rows, float("inf"))
            put(s.anchor_s, rows, float("inf"))
        kinds = np.where(
            failure.numpy(),
            "failure",
            np.where(puncture.numpy(), "puncture", np.where(contact.numpy(), "contact", "damage")),
        )
        self.incident_parts["replica"].append((idx // self.C + self.first_replica).numpy())
        self.incident_parts["car"].append((idx % self.C).numpy())
        self.incident_parts["race_time_s"].append(when.numpy())
        self.incident_parts["kind"].append(kinds.astype(np.str_))
        self.incident_parts["damage"].append(damage.numpy())

    def _neutralise(self, severity: torch.Tensor, when: torch.Tensor, b: float) -> None:
        """Race control's answer to the window's incidents (drawn every window: fixed shape);
        ``severity`` and ``when`` (first incident, inf if none) are ``[R]``."""
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
        first = when[reps]
        first = torch.where(torch.isfinite(first), first, b)
        start = torch.maximum(
            first + self.sc.rules.neutralisation_delay_s, torch.full_like(first, b)
        )
        end = start + neut.duration_s[reps].double()
        self.control.deploy(reps, kind[reps], start, end)

    # -- the outcome --------------------------------------------------------------------------

    def result(self, strategy_names: list[str]) -> RaceResult:
        s, f = self.state, self.field
        pos, cls = final_order(self._key(float(self.env.now)), f.class_index)
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
