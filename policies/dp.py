"""The optimal reference: dynamic programming on the single-car version of the problem.

The single-car problem (:func:`single_car_scenario`) is one car alone on the track over a
fixed number of laps, in the dry and in daylight, with no incidents, no weather, one driver,
no energy allocation and unlimited tyres, driven by the parametric lap model with its noise
switched off (:class:`world_model.parametric.ParametricLapModel` is then exactly its expected
value). What remains is the core of strategy: when to stop, how much fuel, which tyres (four
of a compound or one axle), and the pace of every lap. The DP minimises the race time.

State at the line after lap ``k``: fuel ``f`` (fraction of tank), the wear accumulated by the
front and the rear axle since each was fitted (``w_front``, ``w_rear``: tread lost by a wheel
of relative wear 1; wheel ``i`` has lost ``wheel_wear[i] * w``) and the compound fitted. The
value function lives on a grid over ``(f, w_front, w_rear)`` per compound and is
interpolated multilinearly; backward induction takes every legal decision (3 pace modes x
stay out or stop with 2 fuel choices x 5 tyre choices) through the engine's own stop rules
(:func:`engine.pitstop.plan_stop`, :func:`engine.pitstop.fit_tyres`) and the lap model's
expected lap time and wear. Wet tyres are left out: in the dry they are slower and wear
faster than every slick, so never optimal. The grid makes the DP an approximation of the
optimum; its greedy policy (:class:`DPStrategy`) is what agents are measured against, run in
the engine like any other strategy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from engine.actions import ACTIONS, Fuel, Tyres, action_index
from engine.pitstop import StoppingCars, fit_tyres, plan_stop
from engine.scenario import Driver, Scenario
from engine.strategy import Observation
from world_model.interface import Compound, FlagState, LapConditions, PaceMode
from world_model.parametric import ParametricLapModel, ParametricLapParams

DRY = (Compound.SOFT, Compound.MEDIUM, Compound.HARD)
TYRE_CHOICES = (Tyres.KEEP, Tyres.FOUR_SOFT, Tyres.FOUR_MEDIUM, Tyres.FOUR_HARD, Tyres.TWO_SAME)


def single_car_scenario(
    base: Scenario, car: str | None = None, laps: int | None = None
) -> Scenario:
    """The single-car problem built from one entry of ``base`` (default its focus car).

    ``laps`` defaults to about four and a half tanks of fuel, so the race needs four stops.
    The race starts at 10:00 and must end before sunset (no night laps).
    """
    car = car or base.focus_car or base.entries[0].number
    entry = base.entries[base.entry_index(car)]
    klass = base.class_of(entry)
    stint = 1.0 / entry.ref_fuel_per_lap
    laps = laps or round(4.5 * stint)
    start_h = 10.0
    if start_h + laps * entry.ref_lap_time_s * 1.1 / 3600.0 > base.track.sunset_hour - 0.5:
        raise ValueError(f"{laps} laps of car {car} would run into the night; choose fewer")
    solo = dataclasses.replace(
        entry,
        drivers=(Driver(entry.drivers[0].name, entry.drivers[0].skill),),
        ref_energy_per_lap=0.0,
        start_compound="medium",
    )
    rules = dataclasses.replace(
        base.rules,
        max_stint_driving_s=1e9,
        max_total_driving_s=1e9,
        min_total_driving_s=0.0,
    )
    return dataclasses.replace(
        base,
        name=f"{base.name}-single-car-{car}",
        race=dataclasses.replace(base.race, duration_h=None, laps=laps, start_hour_of_day=start_h),
        rules=rules,
        classes=(dataclasses.replace(klass, tyre_sets=-1.0, has_energy=False),),
        entries=(solo,),
        events=dataclasses.replace(base.events, incidents=False, weather=False),
        lap_model="parametric",
        forced_events=(),
        focus_car=car,
        noise_scale=0.0,
    )


@dataclass(frozen=True)
class Grid:
    """Grid of the value function."""

    fuel_step: float = 0.02
    wear_step: float = 0.025
    wear_max: float = 0.95
    """Largest axle wear on the grid (a worn-out front-left tyre is at ``1 / 1.06``)."""


def _decision_actions() -> list[int]:
    out = []
    for pace in PaceMode:
        out.append(action_index(pace))
        for fuel in (Fuel.FULL, Fuel.TO_FINISH):
            for tyres in TYRE_CHOICES:
                out.append(action_index(pace, True, fuel, tyres))
    return out


class SingleCarDP:
    """Backward induction over laps for the single-car problem (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        grid: Grid | None = None,
        params: ParametricLapParams | None = None,
    ) -> None:
        if scenario.race.laps is None or len(scenario.entries) != 1:
            raise ValueError("the DP needs a single-car race over a fixed number of laps")
        self.scenario = scenario
        self.grid = grid or Grid()
        self.model = ParametricLapModel(
            dataclasses.replace(params or ParametricLapParams(), noise_scale=0.0)
        )
        self.entry = scenario.entries[0]
        self.klass = scenario.classes[0]
        self.laps = int(scenario.race.laps)
        g = self.grid
        self.fuel_pts = torch.arange(0.0, 1.0 + 1e-9, g.fuel_step, dtype=torch.float64)
        self.wear_pts = torch.arange(0.0, g.wear_max + 1e-9, g.wear_step, dtype=torch.float64)
        self.actions = torch.tensor(_decision_actions(), dtype=torch.int64)
        self.wheel = torch.tensor(self.model.params.wheel_wear, dtype=torch.float64)
        self.values: list[torch.Tensor] = []
        """``values[k]``: value [s] at the line after ``k`` laps, ``[C, F, W, W]``."""

    # -- one lap ------------------------------------------------------------------------

    def _tread(self, wf: torch.Tensor, wr: torch.Tensor) -> torch.Tensor:
        w = torch.stack([wf, wf, wr, wr], dim=-1)
        return 1.0 - w * self.wheel

    def lap(
        self,
        fuel: torch.Tensor,
        wf: torch.Tensor,
        wr: torch.Tensor,
        compound: torch.Tensor,
        pace: torch.Tensor,
        out_lap: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lap time [s], fuel, front wear, rear wear after the lap) for flat batches."""
        n = fuel.shape[0]
        e = self.entry
        tread = self._tread(wf, wr).float()
        ones = torch.ones(n)
        track_temp = self.scenario.track.track_temp_c
        c = LapConditions(
            ref_lap_time_s=ones * e.ref_lap_time_s,
            ref_fuel_per_lap=ones * e.ref_fuel_per_lap,
            ref_energy_per_lap=ones * 0.0,
            ref_wear_per_lap=ones * e.ref_wear_per_lap,
            fuel=fuel.float(),
            energy=ones,
            tread=tread,
            tyre_age_laps=ones * 0.0,
            compound=compound,
            tyre_temp_c=ones * track_temp,
            damage=ones * 0.0,
            stint_time_s=ones * 0.0,
            pace_mode=pace,
            class_index=torch.zeros(n, dtype=torch.int64),
            driver_skill=ones * e.drivers[0].skill,
            flag=torch.full((n,), int(FlagState.GREEN), dtype=torch.int64),
            wetness=ones * 0.0,
            track_temp_c=ones * track_temp,
            night=ones * 0.0,
            traffic=ones * 0.0,
            out_lap=out_lap.float(),
        )
        lap_s = self.model.mean_lap_time_s(c).double()
        rate = (self.model.mean_wear(c)[:, 0] / self.model.params.wheel_wear[0]).double()
        use = e.ref_fuel_per_lap * torch.tensor(self.model.params.pace_mode_fuel)[pace]
        return lap_s, fuel - use.double(), wf + rate, wr + rate

    def _stop(
        self,
        actions: torch.Tensor,
        fuel: torch.Tensor,
        wf: torch.Tensor,
        wr: torch.Tensor,
        compound: torch.Tensor,
        k: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stop time [s], fuel, front wear, rear wear, compound) after the decision."""
        n = fuel.shape[0]
        pit = torch.tensor([ACTIONS[int(a)].pit for a in range(len(ACTIONS))])[actions]
        cars = StoppingCars(
            fuel=fuel.float(),
            energy=torch.ones(n),
            has_energy=torch.zeros(n, dtype=torch.bool),
            ref_fuel_per_lap=torch.full((n,), self.entry.ref_fuel_per_lap),
            ref_energy_per_lap=torch.zeros(n),
            laps_left=torch.full((n,), float(self.laps - k + 1)),
            refuel_full_s=torch.full((n,), self.klass.refuel_full_s),
            repair_time_s=torch.zeros(n),
        )
        work = plan_stop(actions, cars, self.scenario.rules)
        tread, comp, _, _ = fit_tyres(actions, self._tread(wf, wr).float(), compound)
        new_wf = torch.where(tread[:, 0] >= 1.0, 0.0, wf)
        new_wr = torch.where(tread[:, 2] >= 1.0, 0.0, wr)
        cost = work.stationary_s + self.scenario.track.pit_lane_loss_s
        return (
            torch.where(pit, cost, 0.0),
            torch.where(pit, work.fuel_to.double(), fuel),
            torch.where(pit, new_wf, wf),
            torch.where(pit, new_wr, wr),
            torch.where(pit, comp, compound),
        )

    # -- interpolation ------------------------------------------------------------------

    def _interp(
        self,
        v: torch.Tensor,
        compound: torch.Tensor,
        f: torch.Tensor,
        wf: torch.Tensor,
        wr: torch.Tensor,
    ) -> torch.Tensor:
        """Multilinear interpolation of ``v`` ``[C, F, W, W]``; +inf off the grid's top."""
        g = self.grid
        nf, nw = self.fuel_pts.shape[0], self.wear_pts.shape[0]
        out_of_range = (wf > g.wear_max + 1e-9) | (wr > g.wear_max + 1e-9)

        def split(x: torch.Tensor, step: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            pos = (x / step).clamp(0.0, n - 1 - 1e-9)
            i = pos.floor().long()
            return i, pos - i

        i_f, t_f = split(f, g.fuel_step, nf)
        i_a, t_a = split(wf, g.wear_step, nw)
        i_b, t_b = split(wr, g.wear_step, nw)
        ci = torch.as_tensor(compound).long()
        total = torch.zeros_like(f)
        for df in (0, 1):
            for da in (0, 1):
                for db in (0, 1):
                    w = (
                        (t_f if df else 1 - t_f)
                        * (t_a if da else 1 - t_a)
                        * (t_b if db else 1 - t_b)
                    )
                    total = total + w * v[ci, i_f + df, i_a + da, i_b + db]
        return torch.where(out_of_range, math.inf, total)

    # -- solve --------------------------------------------------------------------------

    def q_values(
        self,
        k: int,
        fuel: torch.Tensor,
        wf: torch.Tensor,
        wr: torch.Tensor,
        compound: torch.Tensor,
    ) -> torch.Tensor:
        """Cost to go [s] of every decision action ``[n, len(self.actions)]`` at the line after
        ``k`` laps (inf where illegal or infeasible). Needs :meth:`solve` first."""
        n, m = fuel.shape[0], self.actions.shape[0]
        acts = self.actions.repeat(n)
        rep = lambda x: x.repeat_interleave(m)  # noqa: E731
        f, a, b, c = rep(fuel), rep(wf), rep(wr), rep(compound)
        stop_s, f2, a2, b2, c2 = self._stop(acts, f, a, b, c, k)
        table_pit = torch.tensor([x.pit for x in ACTIONS])[acts]
        pace = torch.tensor([int(x.pace) for x in ACTIONS])[acts]
        # Rules: staying out needs fuel for fuel_margin laps and no worn-through tyre.
        tread_min = self._tread(a, b).min(dim=1).values
        short = f < self.entry.ref_fuel_per_lap * self.scenario.rules.fuel_margin
        stay_bad = ~table_pit & (short | (tread_min <= 0.0))
        lap_s, f3, a3, b3 = self.lap(f2, a2, b2, c2, pace, table_pit)
        future = self._interp(self.values[k + 1], c2, f3.clamp(min=0.0), a3, b3)
        cost = stop_s + lap_s + future
        cost = torch.where(stay_bad | (f3 < 0.0), math.inf, cost)
        return cost.view(n, m)

    def solve(self) -> float:
        """Fill the value tables; return the predicted race time [s] from the start."""
        nc, nf, nw = len(Compound), self.fuel_pts.shape[0], self.wear_pts.shape[0]
        self.values = [torch.zeros(0)] * (self.laps + 1)
        self.values[self.laps] = torch.zeros(nc, nf, nw, nw, dtype=torch.float64)
        for k in range(self.laps - 1, 0, -1):
            self.values[k] = self._backup(k)
        return self.start_value()

    def _backup(self, k: int) -> torch.Tensor:
        """``V_k`` on the grid ``[C, F, W, W]`` (inf for wet tyres).

        The same backup as :meth:`q_values`, organised for the grid: every decision leads to
        a post-stop state whose fuel is a grid value, a full tank or the "to the finish"
        amount, and whose axle wear is a grid value or zero; so the cost of the coming lap
        plus the interpolated future, ``U``, is computed once on that extended grid and each
        decision's value is a stop time plus a lookup.
        """
        nf, nw = self.fuel_pts.shape[0], self.wear_pts.shape[0]
        dry = torch.tensor([int(c) for c in DRY])
        e, rules = self.entry, self.scenario.rules
        laps_left = float(self.laps - k + 1)
        need = min((laps_left + 1.0) * e.ref_fuel_per_lap, 1.0)
        fuels = torch.cat([self.fuel_pts, torch.tensor([need], dtype=torch.float64)])
        # U[c, p, o, f, a, b]: lap at pace p (out-lap if o) from (f, a, b) on compound c.
        ci, pi, oi, fi, ai, bi = torch.meshgrid(
            dry,
            torch.arange(3),
            torch.arange(2),
            torch.arange(nf + 1),
            torch.arange(nw),
            torch.arange(nw),
            indexing="ij",
        )
        lap_s, f3, a3, b3 = self.lap(
            fuels[fi.flatten()],
            self.wear_pts[ai.flatten()],
            self.wear_pts[bi.flatten()],
            ci.flatten(),
            pi.flatten(),
            oi.flatten().bool(),
        )
        fut = self._interp(self.values[k + 1], ci.flatten(), f3.clamp(min=0.0), a3, b3)
        u = torch.where(f3 < 0.0, math.inf, lap_s + fut).view(len(DRY), 3, 2, nf + 1, nw, nw)
        # Index grids of the decision states (dry compound slot, fuel, front, rear).
        cs, fs, as_, bs = torch.meshgrid(
            torch.arange(len(DRY)),
            torch.arange(nf),
            torch.arange(nw),
            torch.arange(nw),
            indexing="ij",
        )
        tread = self._tread(self.wear_pts[as_], self.wear_pts[bs])
        short = self.fuel_pts[fs] < e.ref_fuel_per_lap * rules.fuel_margin
        stay_bad = short | (tread.min(dim=-1).values <= 0.0)
        best = torch.full(cs.shape, math.inf, dtype=torch.float64)
        for p in range(3):
            stay = u[cs, p, 0, fs, as_, bs]
            best = torch.minimum(best, torch.where(stay_bad, math.inf, stay))
        # Stops: the engine's stop time for each grid fuel and stop choice.
        stops = [(fuel, tyres) for fuel in (Fuel.FULL, Fuel.TO_FINISH) for tyres in TYRE_CHOICES]
        acts = torch.tensor([action_index(PaceMode.NORMAL, True, f, t) for f, t in stops])
        n = nf * len(stops)
        cars = StoppingCars(
            fuel=self.fuel_pts.repeat_interleave(len(stops)).float(),
            energy=torch.ones(n),
            has_energy=torch.zeros(n, dtype=torch.bool),
            ref_fuel_per_lap=torch.full((n,), e.ref_fuel_per_lap),
            ref_energy_per_lap=torch.zeros(n),
            laps_left=torch.full((n,), laps_left),
            refuel_full_s=torch.full((n,), self.klass.refuel_full_s),
            repair_time_s=torch.zeros(n),
        )
        work = plan_stop(acts.repeat(nf), cars, rules)
        stop_s = (work.stationary_s + self.scenario.track.pit_lane_loss_s).view(nf, len(stops))
        fuel_to = work.fuel_to.double().view(nf, len(stops))
        # TWO_SAME changes the axle fit_tyres picks (the one with less tread).
        axle_tread, _, _, _ = fit_tyres(
            torch.full((nw * nw,), action_index(PaceMode.NORMAL, True, Fuel.FULL, Tyres.TWO_SAME)),
            self._tread(*torch.meshgrid(self.wear_pts, self.wear_pts, indexing="ij"))
            .view(-1, 4)
            .float(),
            torch.zeros(nw * nw, dtype=torch.int64),
        )
        front_new = (axle_tread[:, 0] >= 1.0).view(nw, nw)[as_, bs]
        zero = torch.zeros_like(as_)
        for s_i, (fuel, tyres) in enumerate(stops):
            cost = stop_s[fs, s_i]
            if fuel == Fuel.FULL:
                f_post = torch.full_like(fs, nf - 1)
            else:
                topped = fuel_to[fs, s_i] > self.fuel_pts[fs] + 1e-12
                f_post = torch.where(topped, nf, fs)
            if tyres == Tyres.KEEP:
                c_post, a_post, b_post = cs, as_, bs
            elif tyres == Tyres.TWO_SAME:
                c_post = cs
                a_post = torch.where(front_new, zero, as_)
                b_post = torch.where(front_new, bs, zero)
            else:
                slot = DRY.index(tyres.compound)
                c_post, a_post, b_post = torch.full_like(cs, slot), zero, zero
            for p in range(3):
                q = cost + u[c_post, p, 1, f_post, a_post, b_post]
                best = torch.minimum(best, q)
        out = torch.full((len(Compound), nf, nw, nw), math.inf, dtype=torch.float64)
        out[dry] = best
        return out

    def start_value(self) -> float:
        """Predicted race time [s]: the first lap at normal pace from a full tank on new
        mediums, then the optimal cost to go."""
        one = torch.ones(1, dtype=torch.float64)
        comp = torch.tensor([int(Compound.MEDIUM)])
        lap_s, f, a, b = self.lap(
            one,
            one * 0.0,
            one * 0.0,
            comp,
            torch.tensor([int(PaceMode.NORMAL)]),
            torch.zeros(1, dtype=torch.bool),
        )
        return float(lap_s + self._interp(self.values[1], comp, f, a, b))


class DPStrategy:
    """The DP's greedy policy as an ``engine.strategy.Strategy`` (one-step lookahead on the
    solved value function, restricted to the legal actions)."""

    def __init__(self, dp: SingleCarDP, name: str = "dp-optimal") -> None:
        if not dp.values:
            dp.solve()
        self.dp = dp
        self.name = name

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        dp = self.dp
        wheel = dp.wheel
        tread = obs.tread.double()
        wf = ((1.0 - tread[:, 1]) / wheel[1]).clamp(min=0.0)
        wr = ((1.0 - tread[:, 2]) / wheel[2]).clamp(min=0.0)
        out = legal.float().argmax(dim=1)
        for lap in obs.lap.unique().tolist():
            rows = obs.lap == lap
            k = int(lap)
            if k >= dp.laps:
                continue
            q = dp.q_values(k, obs.fuel[rows].double(), wf[rows], wr[rows], obs.compound[rows])
            q = torch.where(legal[rows][:, dp.actions], q, math.inf)
            best = dp.actions[q.argmin(dim=1)]
            out[rows] = torch.where(torch.isfinite(q.min(dim=1).values), best, out[rows])
        return out
