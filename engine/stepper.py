"""The batched race stepper: one chunk of replicas, every car, advanced in clock windows.

Each window of race time ``[a, b)``:

1. every running car serves pit-lane time, then drives; a neutralisation stretches the laps
   that span it (:mod:`engine.progress`); the line crossings inside the window are found and
   timed exactly;
2. the cars that crossed go through the line's phases, in the order a race unfolds
   (:meth:`ChunkSim._crossings`): **complete the lap** (fuel, energy and wear of the lap
   scaled by the flags it met; running dry ends the race), **the chequered flag** (the one
   place that decides the end of the race), **decide** (every strategy called ONCE for all
   of its cars that crossed, in every replica, with a legal-action mask), **serve pit stops**
   (garage queue per team), **draw the next laps** (the lap model called ONCE for every new
   lap); the rest of the window is driven on the new lap;
3. the event model draws the window's incidents for the whole ``[R, C]`` field (fixed shape:
   common random numbers), applies damage, punctures and retirements, and race control
   deploys neutralisations (starting at least one window later, so causality holds).

The stepper is a SimPy process (:mod:`engine.clock`); race control's processes own the flags.
Who writes what: :class:`engine.chunk_context.ChunkContext` holds what the chunk derives once
(read-only); the race itself is :class:`engine.state.RaceState`, written in place by the
phases here, by :mod:`engine.step_track` (progress on track), :mod:`engine.step_line`
(observations, pit stops, lap records), :mod:`engine.step_laps` (new laps) and
:mod:`engine.step_incidents` (the window's incidents). The phases hand rows on as the
dataclasses of :mod:`engine.line_rows`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
import torch

from engine.actions import ACTION_TABLE
from engine.chunk_context import ChunkContext
from engine.clock import RaceControl
from engine.damage_cache import DamageCache
from engine.line_rows import AtLine, Continuing, LapDone
from engine.observe import LINE_TIEBREAK, field_positions, final_order
from engine.result import LapRecorder, RaceResult, incident_columns
from engine.scenario import Scenario
from engine.state import F64, RaceState, add, initial_state, put, take
from engine.step_incidents import IncidentSteps
from engine.step_laps import LapSteps
from engine.step_line import LineSteps
from engine.step_track import TrackSteps
from engine.strategy import Observation, Strategy, check_decisions
from events.interface import FORCED_FLAG, EventModel, ForcedEvent
from world_model.interface import FlagState, LapModel


@dataclass
class Pending:
    """Decisions the stepper waits for (the externally controlled car's rows)."""

    replicas: torch.Tensor
    obs: Observation
    legal: torch.Tensor
    positions: torch.Tensor
    """Where these rows sit among the window's deciding rows."""


@dataclass
class ExternalDecisions:
    """The hand-over with whoever drives the controlled car (:class:`engine.race.RaceSim`):
    it sets ``needed``; the stepper fills ``pending``, succeeds ``needed`` and waits on
    ``given``; the driver puts ``actions`` and succeeds ``given``."""

    needed: simpy.Event | None = None
    pending: Pending | None = None
    given: simpy.Event | None = None
    actions: torch.Tensor | None = None
    boundary: simpy.Event | None = None
    """Set by the driver to ask for the state at the next window boundary (a snapshot: the
    only moment no car is half-way through the line's phases); succeeded there."""
    boundary_state: RaceState | None = None
    """That state (a copy), taken at race time ``env.now`` when ``boundary`` succeeded."""


class ChunkSim(TrackSteps, LineSteps, LapSteps, IncidentSteps):
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
        ctx = ChunkContext.build(
            scenario,
            car_strategies,
            replicas,
            seed,
            chunk,
            first_replica,
            lap_model,
            event_model,
            forced,
            controlled_car,
        )
        self.ctx = ctx
        self.env = simpy.Environment(initial_time=start_time_s)
        if start is None:
            temp0 = float(ctx.weather.track_temp_c[0, 0])
            self.state = initial_state(ctx.field, replicas, temp0)
        else:
            self.state = start
        self.control = RaceControl(self.env, self.state, keep_log)
        self.control.on_reschedule = self._reschedule
        self.damage = DamageCache(event_model, ctx.params, replicas, ctx.n_cars)
        self.recorder = LapRecorder() if record_laps else None
        self.incident_parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("replica", "car", "race_time_s", "kind", "damage", "other_car")
        }
        self.forced_done = [torch.zeros(replicas, dtype=torch.bool) for _ in ctx.forced_car]
        """Per scripted car event, ``[R]``: it has happened."""
        self.stint_fuel0 = self.state.fuel.clone() if ctx.fuel_factor is not None else None
        """``[R, C]`` fuel at the start of each car's stint (the fuel risk's reading)."""
        self._schedule_forced_flags(start_time_s)
        self.external = ExternalDecisions()
        self.process = self.env.process(self._run(first_laps=start is None))

    # -- setup --------------------------------------------------------------------------------

    def _schedule_forced_flags(self, start_time_s: float) -> None:
        """Hand the scripted neutralisations to race control (a resumed race skips those of
        its past)."""
        for e in self.ctx.forced:
            kind = FORCED_FLAG.get(e.kind)
            if kind is None:
                continue
            begin = float(e.start_s or 0.0)
            end = self._forced_end(e, kind, begin)
            if bool((end > start_time_s).any()):
                self.control.forced(kind, begin, end, self.ctx.window_s)

    def _forced_end(self, e: ForcedEvent, kind: FlagState, begin: float) -> torch.Tensor:
        """``[R]`` end of a scripted neutralisation: scripted, drawn by the event model
        (from the parameter stream, so incident draws stay common), or the rules' default."""
        ctx = self.ctx
        if e.end_s is not None:
            return torch.full((ctx.n_replicas,), float(e.end_s), dtype=F64)
        draw = getattr(ctx.event_model, "neutralisation_duration", None)
        if draw is not None:
            return begin + draw(ctx.params, kind, ctx.streams.params).double()
        default = ctx.scenario.rules.flag_rule(kind).default_duration_s
        return torch.full((ctx.n_replicas,), begin + default, dtype=F64)

    # -- the clock ----------------------------------------------------------------------------

    def _run(self, first_laps: bool) -> Generator:
        if first_laps:
            self._first_laps(float(self.env.now))
        limit = self.ctx.horizon_s
        while bool(self.state.running().any()):
            # The window [a, b) is resolved at its start: race control's events inside it
            # (a flag coming in at t in (a, b]) run after, so they cannot rewrite its schedule.
            a = float(self.env.now)
            if self.external.boundary is not None:
                yield from self._hand_over_boundary()
            b = a + self.ctx.window_s
            yield from self._window(a, b)
            yield self.env.timeout(self.ctx.window_s)
            if b > limit:
                # A car that cannot reach the line any more (a stop longer than the race).
                stuck = self.state.running()
                self.state.retired |= stuck
                self.state.next_cross_s[stuck] = float("inf")
                self.state.anchor_s[stuck] = float("inf")

    def _hand_over_boundary(self) -> Generator:
        """Copy the state between two windows for the driver, and pause so that it stops
        the clock here."""
        ext = self.external
        assert ext.boundary is not None
        ext.boundary_state = self.state.select(torch.arange(self.ctx.n_replicas))
        event, ext.boundary = ext.boundary, None
        event.succeed()
        yield self.env.timeout(0)

    def run(self) -> None:
        self.env.run(until=self.process)

    def over(self) -> bool:
        return not self.process.is_alive

    def _window(self, a: float, b: float) -> Generator:
        s = self.state
        idx = (s.next_cross_s < b).view(-1).nonzero().squeeze(1)
        if idx.numel():
            key = self._key(a)
            yield from self._crossings(a, b, idx, key)
        self._incidents(a, b)

    # -- at the line, phase by phase ------------------------------------------------------------

    def _crossings(self, a: float, b: float, idx: torch.Tensor, key: torch.Tensor) -> Generator:
        """Everything that happens to the cars (flat rows ``idx``) that reach the line in
        the window ``[a, b)``; ``key`` is the field's race-distance key at ``a``."""
        done = self._complete_laps(idx)
        finishing = self._chequered_flag(done, key, b)
        racing = ~finishing & ~done.dry
        self._out_of_race(done.idx, racing)
        lap_end = self._lap_end(done.idx) if self.recorder is not None else None
        line = self._at_line(done, key)
        cont = self._continuing(done, line, racing)
        pit = torch.zeros(cont.n, dtype=torch.bool)
        hold = torch.zeros(0, dtype=F64)
        if cont.n:
            actions = yield from self._decide(cont)
            pit = ACTION_TABLE.pit.index_select(0, actions)
            put(self.state.pace, cont.idx, ACTION_TABLE.pace.index_select(0, actions))
            hold = self._serve_pit_stops(cont, actions, pit, done.crawl_s[cont.positions])
        if lap_end is not None:
            pit_in = torch.zeros(done.idx.numel(), dtype=torch.bool)
            pit_in[cont.positions] = pit
            self._record(done, line, lap_end, pit_in)
        if cont.n:
            self._draw_laps(self._next_laps(cont, pit, hold, a))

    def _complete_laps(self, idx: torch.Tensor) -> LapDone:
        """Complete the lap of flat rows ``idx`` at their crossing: fuel, energy and wear
        of the lap (weighted by the flags it met), lap and driving counters. Running out of
        fuel ends the race; overspent virtual energy does not (the stewards' business): it
        reads 0 and the legal mask brings the car in at this line."""
        s, f, C = self.state, self.ctx.field, self.ctx.n_cars
        rep, car = idx // C, idx % C
        t = take(s.next_cross_s, idx)
        self._settle(idx, rep, t)
        lap_time = t - take(s.lap_start_s, idx)
        total = take(s.lap_total_s, idx).clamp(min=1e-9)
        frac_f = (take(s.acc_fuel_s, idx) / total).float()
        frac_w = (take(s.acc_wear_s, idx) / total).float()
        fuel_start = take(s.fuel, idx)
        energy_start = take(s.energy, idx)
        fuel = fuel_start - take(s.lap_fuel, idx) * frac_f
        energy = energy_start - take(s.lap_energy, idx) * frac_f
        ran_dry = fuel < 0
        crawl_s = self.ctx.scenario.rules.dry_crawl_s
        dry = ran_dry if crawl_s < 0 else torch.zeros_like(ran_dry)
        crawls = ran_dry & ~dry
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
        crawl = torch.where(crawls, max(crawl_s, 0.0), 0.0).double()
        # A crawl is booked at this line: on the finish time of a car that takes the flag now,
        # and on the pit-lane time of the stop the empty tank forces (_serve_pit_stops).
        put(s.finish_time_s, idx, t + crawl)
        put(s.lap_start_s, idx, t)  # at the line: nothing of the next lap driven yet
        done = LapDone(
            idx=idx,
            rep=rep,
            car=car,
            t=t,
            lap=take(s.lap, idx),
            lap_time_s=lap_time,
            fuel_start=fuel_start,
            energy_start=energy_start,
            driver=driver,
            flag=take(s.lap_flag, idx),
            pit_time_s=take(s.lap_pit_time_s, idx),
            out_lap=take(s.out_lap, idx),
            driver_change=take(s.lap_driver_change, idx),
            pace=take(s.pace, idx),
            dry=dry,
            crawl_s=crawl,
        )
        if bool(crawls.any()):
            out = idx[crawls]
            if self.stint_fuel0 is not None:  # the team now reads the tank as empty
                put(self.stint_fuel0, out, 0.0)
            kinds = np.array(["ran_dry"] * out.numel())
            self._log_incidents(out, t[crawls], kinds, torch.zeros(out.numel()))
        if bool(dry.any()):
            out = idx[dry]
            put(s.retired, out, True)
            kinds = np.array(["out_of_fuel"] * out.numel())
            self._log_incidents(out, t[dry], kinds, torch.zeros(out.numel()))
        return done

    def _chequered_flag(self, done: LapDone, key: torch.Tensor, b: float) -> torch.Tensor:
        """The one place that ends the race: the flag falls at the leader's first crossing
        once time (or distance) is up, and every car finishes at its next crossing after
        that. Writes ``chequer_s`` and ``finished``; the rows' ``[n]`` finishing mask."""
        s, ctx = self.state, self.ctx
        rep, t, dry = done.rep, done.t, done.dry
        if ctx.duration_s is not None:
            due = b >= ctx.duration_s
        else:
            due = int(done.lap.max()) >= int(ctx.laps_target or 0)
        if due:
            is_leader = done.car == key.argmax(dim=1).index_select(0, rep)
            if ctx.duration_s is not None:
                flag_now = is_leader & (t >= ctx.duration_s) & ~dry
            else:
                flag_now = is_leader & (done.lap >= int(ctx.laps_target or 0)) & ~dry
            if bool(flag_now.any()):
                s.chequer_s.scatter_reduce_(0, rep[flag_now], t[flag_now], reduce="amin")
        finishing = (t >= s.chequer_s.index_select(0, rep)) & ~dry
        if bool(finishing.any()):
            put(s.finished, done.idx[finishing], True)
        return finishing

    def _out_of_race(self, idx: torch.Tensor, racing: torch.Tensor) -> None:
        """Rows of ``idx`` not ``racing`` (finished or out) never reach the line again."""
        if not bool(racing.all()):
            out = idx[~racing]
            put(self.state.next_cross_s, out, float("inf"))
            put(self.state.anchor_s, out, float("inf"))

    def _at_line(self, done: LapDone, key: torch.Tensor) -> AtLine:
        """Positions, gaps, weather and flag at the line of every crossing row (the cars at
        the line count the lap they just completed); ``key`` is overwritten for them."""
        f = self.ctx.field
        idx, rep, t = done.idx, done.rep, done.t
        # Of the cars crossing in one window the earlier is ahead (equal keys fell back to
        # the entry order, and cars swapped places lap after lap).
        put(key, idx, done.lap.double() - LINE_TIEBREAK * (t - t.min()))
        pos_all, cls_all, ahead_all, behind_all = field_positions(key, f.class_index)
        ref_row = f.ref_lap_time_s.index_select(0, done.car)
        rain, wet, temp = self.ctx.weather.at(rep, t)
        return AtLine(
            overall=take(pos_all, idx).float(),
            class_pos=take(cls_all, idx).float(),
            gap_ahead_s=(take(ahead_all, idx) * ref_row).float(),
            gap_behind_s=(take(behind_all, idx) * ref_row).float(),
            rain=rain,
            wetness=wet,
            track_temp_c=temp,
            flag=self._flag_at(rep, t),
        )

    def _continuing(self, done: LapDone, line: AtLine, racing: torch.Tensor) -> Continuing:
        """The ``racing`` rows of the crossing (no copies when every row races on)."""
        if bool(racing.all()):
            return Continuing(
                idx=done.idx,
                rep=done.rep,
                car=done.car,
                t=done.t,
                line=line,
                positions=torch.arange(done.idx.numel()),
            )
        ci = racing.nonzero().squeeze(1)
        return Continuing(
            idx=done.idx.index_select(0, ci),
            rep=done.rep.index_select(0, ci),
            car=done.car.index_select(0, ci),
            t=done.t.index_select(0, ci),
            line=line.select(ci),
            positions=ci,
        )

    def _decide(self, cont: Continuing) -> Generator[simpy.Event, None, torch.Tensor]:
        """Every strategy's actions for its continuing rows (one call per strategy); the
        controlled car's rows wait for the outside's answer."""
        ctx = self.ctx
        obs, legal = self._observe(cont)
        n = cont.n
        actions = torch.zeros(n, dtype=torch.int64)
        ext = torch.zeros(n, dtype=torch.bool)
        if ctx.controlled_car is not None:
            ext = cont.car == ctx.controlled_car
        strategies = ctx.groups.strategies
        grp = ctx.groups.group_of_car.index_select(0, cont.car)
        for g, strat in enumerate(strategies):
            if len(strategies) == 1:
                # Every row, the controlled car's too (its answer is replaced below):
                # gathering most rows of the [n, N_ACTIONS] mask costs more than that.
                sel, o, lg = torch.arange(n), obs, legal
            else:
                sel = ((grp == g) & ~ext).nonzero().squeeze(1)
                if sel.numel() == 0:
                    continue
                o, lg = obs.index(sel), legal.index_select(0, sel)
            act = strat.decide(o, lg, ctx.streams.strategies)
            check_decisions(act, lg, strat.name)
            actions[sel] = act
        if bool(ext.any()):
            sel = ext.nonzero().squeeze(1)
            actions[sel] = yield from self._ask_outside(cont.rep[sel], obs, legal, sel)
        return actions

    def _ask_outside(
        self, replicas: torch.Tensor, obs: Observation, legal: torch.Tensor, sel: torch.Tensor
    ) -> Generator[simpy.Event, None, torch.Tensor]:
        """Hand rows ``sel`` (the controlled car, in ``replicas``) to the outside and wait
        for its actions."""
        ext = self.external
        ext.pending = Pending(
            replicas=replicas,
            obs=obs.index(sel),
            legal=legal.index_select(0, sel),
            positions=sel,
        )
        ext.given = self.env.event()
        assert ext.needed is not None
        ext.needed.succeed()
        yield ext.given
        assert ext.actions is not None
        actions = ext.actions
        check_decisions(actions, legal.index_select(0, sel), "controlled car")
        ext.pending = None
        ext.actions = None
        return actions

    # -- the outcome --------------------------------------------------------------------------

    def result(self, strategy_names: list[str]) -> RaceResult:
        s, ctx = self.state, self.ctx
        sc = ctx.scenario
        pos, cls = final_order(self._key(float(self.env.now)), ctx.field.class_index)
        fl = self.control.flags
        return RaceResult(
            scenario_name=sc.name,
            seed=ctx.seed,
            replicas=ctx.n_replicas,
            car_numbers=[e.number for e in sc.entries],
            car_classes=[e.car_class for e in sc.entries],
            car_teams=[e.team for e in sc.entries],
            strategy_names=strategy_names,
            finish_position=pos.numpy(),
            class_position=cls.numpy(),
            laps_completed=s.lap.numpy().copy(),
            finish_time_s=s.finish_time_s.numpy().copy(),
            pit_stops=s.pit_stops.numpy().copy(),
            pit_time_s=s.pit_time_s.numpy().copy(),
            retired=s.retired.numpy().copy(),
            flag_periods={
                "replica": np.asarray(fl.replica, dtype=np.int64) + ctx.first_replica,
                "kind": np.asarray(fl.kind, dtype=np.int64),
                "start_s": np.asarray(fl.start_s, dtype=np.float64),
                "end_s": np.asarray(fl.end_s, dtype=np.float64),
            },
            incidents=incident_columns(self.incident_parts),
            laps=self.recorder.columns() if self.recorder is not None else None,
            first_replica=ctx.first_replica,
        )
