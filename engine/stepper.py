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
What happens at the line (observations, legal masks, pit stops, lap records) lives in
:mod:`engine.step_line`, the window's incidents in :mod:`engine.step_incidents`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
import torch

from engine.actions import ACTION_TABLE
from engine.clock import RaceControl
from engine.conditions import FlagFactors, WeatherGrid, darkness, draw_weather
from engine.field import FieldTable
from engine.observe import (
    FINISH_TIEBREAK,
    RETIRED_OFFSET,
    TRAFFIC_WINDOW_S,
    field_positions,
    final_order,
)
from engine.progress import FOREVER_S, drive
from engine.result import LapRecorder, RaceResult, incident_columns
from engine.risks import RiskTable
from engine.rng import chunk_generators
from engine.scenario import Scenario
from engine.state import F64, RaceState, add, initial_state, put, take
from engine.step_incidents import IncidentSteps
from engine.step_line import LineSteps
from engine.strategy import Observation, Strategy, check_decisions
from events.interface import EventModel, ForcedEvent, ForcedKind
from events.models.punctures import cliff_depth
from world_model.interface import FlagState, LapConditions, LapModel

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


class ChunkSim(LineSteps, IncidentSteps):
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
            k: [] for k in ("replica", "car", "race_time_s", "kind", "damage", "other_car")
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
        self._setup_risks(scenario)
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

    def _setup_risks(self, scenario: Scenario) -> None:
        """The field's risk priors (:mod:`engine.risks`); with the fuel risk on, one fuel-use
        factor per car and stint, drawn up front from the risks stream (common random
        numbers: stint ``k`` of a car has the same factor whatever the strategy)."""
        self.risk_table = RiskTable.build([scenario.risks_of(e) for e in scenario.entries])
        rt = self.risk_table
        self._fuel_factor: torch.Tensor | None = None
        if rt.fuel_on:
            z = torch.randn((self.R, self.C, rt.max_stints), generator=self.gens["risks"])
            cv = rt.fuel_stint_cv.view(1, -1, 1)
            # Lognormal with mean 1: the planning figure is the car's average consumption.
            self._fuel_factor = (cv * z - 0.5 * cv.square()).exp()
            self._stint_fuel0 = self.state.fuel.clone()

    def stint_fuel_factor(self, idx: torch.Tensor) -> torch.Tensor:
        """Fuel-use factor of flat rows ``idx``'s current stint (1 without the fuel risk)."""
        if self._fuel_factor is None:
            return torch.ones(idx.numel())
        k = self._fuel_factor.shape[2]
        stint = take(self.state.pit_stops, idx).clamp(max=k - 1)
        return self._fuel_factor.view(-1, k)[idx, stint]

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
            driver_skill=f.driver_skill.view(-1).index_select(0, car * f.max_drivers + driver),
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
        rt = self.risk_table
        if rt.cliff_on:  # the lap-time cliff of a tyre worn past it (engine.risks)
            depth = cliff_depth(cond.tread.amin(dim=1), rt.cliff_tread.index_select(0, car))
            loss_cliff = rt.cliff_lap_time_loss.index_select(0, car) * depth.square()
            green = green * (1.0 + loss_cliff.double())
        fuel_used = out.fuel_used
        if self._fuel_factor is not None:
            fuel_used = fuel_used * self.stint_fuel_factor(idx)
        total = green * (1.0 + take(loss, idx).double()) + (
            self.sc.rules.overtake_cost_s * slow_traffic.double()
        )
        put(s.green_lap_s, idx, out.lap_time_s)
        put(s.lap_total_s, idx, total)
        put(s.rem_s, idx, total)
        put(s.lap_start_s, idx, t)
        put(s.lap_fuel, idx, fuel_used)
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
        # Out of fuel ends the race; overspent virtual energy does not (the stewards'
        # business): it reads 0 and the legal mask brings the car in at this line.
        dry = fuel < 0
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
            out = idx[dry]
            put(s.retired, out, True)
            kinds = np.array(["out_of_fuel"] * out.numel())
            self._log_incidents(out, t[dry], kinds, torch.zeros(out.numel()))
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
            grp = self.group_of_car.index_select(0, sub(car))
            for g, strat in enumerate(self.group_objs):
                if len(self.group_objs) == 1:
                    # Every row, the controlled car's too (its answer is replaced below):
                    # gathering most rows of the [n, N_ACTIONS] mask costs more than that.
                    sel, o, lg = torch.arange(n), obs, legal
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
            pit = ACTION_TABLE.pit.index_select(0, actions)
            put(s.pace, sub(idx), ACTION_TABLE.pace.index_select(0, actions))
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
