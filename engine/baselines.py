"""Rule-based strategies and the name registry that builds any strategy from a spec string.

Specs: ``"fixed:laps=12"`` (stop every 12 laps; ``"fixed:laps=12,tyres=3"`` changes tyres
every third stint instead of every second, the names the tuned fixed plan is printed under),
``"fuel-reserve:laps=1.5"`` (stop when the
fuel or energy left would leave less than 1.5 laps in reserve at the next line),
``"double-stint"`` / ``"triple-stint"`` (fuel-reserve stops, tyres and driver every second /
third stint; ``stints=N`` on any fuel-reserve rule: every N-th stint, a driver spell),
``"opportunistic"`` (fuel-reserve, plus a stop under FCY or safety car once half
the tank is gone), ``"plan:FILE"`` (a scripted plan, TOML with ``[[stop]]`` tables; see
:mod:`engine.plan_file`).
Every rule but ``plan`` also takes ``pace=save|normal|push`` (the pace of every lap; default
normal) and ``rain=W`` (stop at once for wets when the track's wetness passes W on dry tyres,
and for dry tyres when it falls below W / 2 on wets; default ``WET_TRACK``, as a team calls its
car in when the rain sets in), or ``rain=off`` (tyres follow the track only at the stops fuel
or the stint plan call for), e.g. ``"double-stint:pace=push,rain=0.2"``.
Every rule skips a stop for fuel when the tank reaches the flag and takes fuel to finish at
its stops (a full tank until the last, then a splash).
Any other ``"module.path:factory[:k=v,...]"`` is imported (so agents plug in without the
engine importing them) and ``factory(**kwargs)`` must return a :class:`Strategy`.

Every rule picks the first legal action of its preference list, row by row, so a rule never
needs to know the rules of racing: the legal mask does.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass

import torch

from engine.actions import ACTION_TABLE, ACTIONS, Fuel, Tyres, action_index
from engine.legal import first_legal
from engine.plan_file import PlanStrategy
from engine.strategy import Observation, Strategy
from world_model.interface import Compound, FlagState, PaceMode

_FOUR = {
    int(Compound.SOFT): Tyres.FOUR_SOFT,
    int(Compound.MEDIUM): Tyres.FOUR_MEDIUM,
    int(Compound.HARD): Tyres.FOUR_HARD,
    int(Compound.WET): Tyres.FOUR_WET,
}
WET_TRACK = 0.35
"""Wetness above which the rules fit wet tyres (and, by default, stop for them at once): slicks
then lose 4.6 to 7.3 % of a lap to wets at the lap model's wet pace prior (soft to hard), so a
stop of about a minute pays for itself within about ten laps."""


@functools.cache
def _stop_table(fuel: Fuel) -> torch.Tensor:
    """Flat ``[tyres * 4 + driver * 2 + repair]`` table of pit actions with ``fuel``."""
    return torch.tensor(
        [
            action_index(PaceMode.NORMAL, True, fuel, Tyres(t), bool(d), bool(r))
            for t in range(len(Tyres))
            for d in (0, 1)
            for r in (0, 1)
        ]
    )


_WITH_PACE = torch.tensor(
    [
        [action_index(pace, a.pit, a.fuel, a.tyres, a.driver_change, a.repair) for a in ACTIONS]
        for pace in PaceMode
    ]
)
"""``[pace, action]``: the same decision at another pace."""

_PREF_TYRES = torch.tensor(
    [-1, -1, -1, -1, int(Tyres.KEEP), int(Tyres.KEEP)] + [int(Tyres.TWO_SAME)] * 2
)
"""Tyre choice of each preference column (-1: the wished-for one)."""
_PREF_FLIP_DRIVER = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
_PREF_FLIP_REPAIR = torch.tensor([0, 0, 1, 1, 0, 0, 0, 0])


def _stop_prefs(
    tyres: torch.Tensor, driver: torch.Tensor, repair: torch.Tensor, fuel: Fuel = Fuel.FULL
) -> torch.Tensor:
    """``[n, P]`` pit actions: the wished-for stop first, then the nearest alternatives
    (the other driver choice, the other repair choice, keeping tyres, two tyres)."""
    n = tyres.shape[0]
    t = torch.where(_PREF_TYRES < 0, tyres.long().unsqueeze(1), _PREF_TYRES)
    d = driver.long().unsqueeze(1) ^ _PREF_FLIP_DRIVER
    r = repair.long().unsqueeze(1) ^ _PREF_FLIP_REPAIR
    flat = (t * 4 + d * 2 + r).view(-1)
    return _stop_table(fuel).index_select(0, flat).view(n, _PREF_TYRES.numel())


def laps_to_flag(obs: Observation) -> torch.Tensor:
    """Green laps a car at the line may still have to drive, taken high: the time left at
    its reference pace, the lap it ends on, and one more in case the leader crosses just
    before the clock runs out."""
    return obs.race_time_left_s / obs.ref_lap_time_s + 2.0


@dataclass
class RuleStrategy:
    """Stop when the rule says (or the mask forces it) unless the fuel reaches the flag; at a
    stop take fuel to finish (a full tank until the last stop, then what the laps to the flag
    need: a splash), choose tyres for the track, change tyres and driver every ``tyre_stints``
    stints, repair heavy damage."""

    name: str
    stint_laps: float | None = None
    """Stop after this many laps (fixed stints); None: stop on fuel reserve."""
    reserve_laps: float = 1.0
    tyre_stints: float = 1.0
    opportunistic: bool = False
    pace: PaceMode = PaceMode.NORMAL
    """Pace of every lap."""
    rain_wetness: float | None = WET_TRACK
    """Stop at once for wets above this wetness on dry tyres, for dry tyres below half of it
    on wets; None: change compound only at the stops the plan makes (above ``WET_TRACK``)."""

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        stay = torch.full_like(obs.car, action_index(PaceMode.NORMAL, False))
        stay_ok = legal.gather(1, stay.unsqueeze(1)).squeeze(1)
        if self.stint_laps is not None:
            want = obs.stint_laps >= self.stint_laps
        else:
            want = obs.fuel_laps_left < self.reserve_laps + 1.0
        if self.opportunistic:
            neutral = (obs.flag == int(FlagState.FCY)) | (obs.flag == int(FlagState.SAFETY_CAR))
            want |= neutral & (obs.fuel < 0.5)
        # Endgame: no stop for fuel when the tank already reaches the flag.
        want &= obs.fuel_laps_left < laps_to_flag(obs) + self.reserve_laps
        pit = want | ~stay_ok
        # The field decides at every crossing: the rain check costs one reduction on a dry
        # track with no wets fitted (most of the races), nothing with the option off.
        rain_only = None
        stopping = pit
        if self.rain_wetness is not None and bool(
            ((obs.wetness > 0.5 * self.rain_wetness) | (obs.compound == int(Compound.WET))).any()
        ):
            rain_only = (self._wets_wanted(obs) != (obs.compound == int(Compound.WET))) & ~pit
            stopping = pit | rain_only
        if bool(stopping.any()):
            # The stop is chosen only for the rows that pit (a few per cent of the crossings).
            rows = stopping.nonzero().squeeze(1)
            stops = self._stop(obs.index(rows), legal, rows)
            if rain_only is not None and bool(rain_only.any()):
                # A stop for the weather is made only where it changes the compound (not where
                # the class has no wets, or the pit lane is closed).
                new = ACTION_TABLE.compound.index_select(0, stops)
                changes = ACTION_TABLE.pit.index_select(0, stops) & (new >= 0)
                changes &= new != obs.compound.index_select(0, rows)
                keep = ~rain_only.index_select(0, rows) | changes
                rows, stops = rows[keep], stops[keep]
            stay.index_copy_(0, rows, stops)
        if self.pace != PaceMode.NORMAL:
            # Legality does not depend on the pace (engine.legal): same decision, other pace.
            stay = _WITH_PACE[int(self.pace)].index_select(0, stay)
        return stay

    def _wets_wanted(self, obs: Observation) -> torch.Tensor:
        """Rows whose track calls for wets, with the hysteresis of ``rain_wetness``."""
        on_wets = obs.compound == int(Compound.WET)
        if self.rain_wetness is None:
            return obs.wetness > WET_TRACK
        limit = torch.where(on_wets, 0.5 * self.rain_wetness, self.rain_wetness)
        return obs.wetness > limit

    def _stop(self, obs: Observation, legal: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The stop of each of ``obs``'s rows (rows ``rows`` of ``legal``): fill up, tyres for
        the track and the stint plan, a fresh driver, repair of heavy damage (the nearest
        legal alternative where not legal)."""
        wet = self._wets_wanted(obs)
        on_wets = obs.compound == int(Compound.WET)
        stint = obs.stint_laps.clamp(min=1.0)
        tyres_due = (obs.tyre_age_laps >= (self.tyre_stints - 0.5) * stint) | (
            obs.tread.amin(dim=1) < 0.35
        )
        dry_choice = torch.where(
            on_wets,
            int(_FOUR[int(Compound.MEDIUM)]),
            torch.tensor([int(_FOUR[c]) for c in range(4)])[obs.compound],
        )
        tyres = torch.where(
            wet & ~on_wets,
            int(Tyres.FOUR_WET),
            torch.where(
                ~wet & on_wets, dry_choice, torch.where(tyres_due, dry_choice, int(Tyres.KEEP))
            ),
        )
        tyres = torch.where(wet & on_wets & ~tyres_due, int(Tyres.KEEP), tyres)
        # The driver changes with the tyres of the stint plan (a driver spell of
        # ``tyre_stints`` stints), not for the weather: teams fit wets and slicks without a
        # driver change (Le Mans 2024, a wet night: 528 driver changes in 1,548 stops). A
        # driver's time limit forces a change through the legal mask.
        driver = tyres_due
        repair = obs.damage > 0.15
        prefs = _stop_prefs(tyres, driver, repair, Fuel.TO_FINISH)
        return first_legal(prefs, legal, rows)


def _number_or_text(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _parse_kwargs(text: str) -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {}
    if not text:
        return out
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"strategy argument {part!r}: expected key=value")
        k, v = part.split("=", 1)
        out[k.strip()] = _number_or_text(v)
    return out


def _spec_number(spec: str, kw: dict, key: str, default: float, *, zero_ok: bool) -> float:
    """``kw[key]`` as a finite number > 0 (>= 0 where ``zero_ok``), or a ValueError naming the
    spec and the key: ``fixed:laps=-3`` would pit every lap, ``laps=abc`` is no number."""
    value = kw.get(key, default)
    if (
        isinstance(value, str)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero_ok)
    ):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"strategy {spec!r}: {key} must be a number {bound}, got {value!r}")
    return float(value)


BUILTIN = ("fixed", "fuel-reserve", "double-stint", "triple-stint", "opportunistic", "plan")


def make_strategy(spec: str) -> Strategy:
    """Build a strategy from its spec string (see the module docstring)."""
    head, _, rest = spec.partition(":")
    if head == "plan":
        if not rest:
            raise ValueError("strategy 'plan' needs a file: 'plan:FILE'")
        return PlanStrategy.from_file(rest)
    if head in BUILTIN:
        kw = _parse_kwargs(rest)
        known = {"laps", "tyres", "pace", "rain"} if head == "fixed" else {"laps", "pace", "rain"}
        if head in ("fuel-reserve", "double-stint", "triple-stint", "opportunistic"):
            known.add("stints")
        bad = set(kw) - known
        if bad:
            raise ValueError(f"strategy {spec!r}: unknown argument {sorted(bad)[0]!r}")
        pace_name = str(kw.get("pace", "normal")).upper()
        if pace_name not in PaceMode.__members__:
            raise ValueError(
                f"strategy {spec!r}: pace must be save, normal or push, got {kw['pace']!r}"
            )
        rain = kw.get("rain", WET_TRACK)
        if rain != "off" and (isinstance(rain, str) or not 0.0 < rain < 1.0):
            raise ValueError(
                f"strategy {spec!r}: rain must be a wetness in (0, 1) or off, got {rain!r}"
            )
        common = {
            "pace": PaceMode[pace_name],
            "rain_wetness": None if rain == "off" else float(rain),
        }
        if head == "fixed":
            if "laps" not in kw:
                raise ValueError("strategy 'fixed' needs laps: 'fixed:laps=N'")
            tyres = _spec_number(spec, kw, "tyres", 2.0, zero_ok=False)
            laps = _spec_number(spec, kw, "laps", 0.0, zero_ok=False)
            return RuleStrategy(name=spec, stint_laps=laps, tyre_stints=tyres, **common)
        reserve = _spec_number(spec, kw, "laps", 1.0, zero_ok=True)
        tyre_stints = float(
            kw.get("stints", {"double-stint": 2.0, "triple-stint": 3.0}.get(head, 1.0))
        )
        if not 1.0 <= tyre_stints <= 6.0:
            raise ValueError(f"strategy {spec!r}: stints must be 1 to 6, got {kw['stints']!r}")
        return RuleStrategy(
            name=spec,
            reserve_laps=reserve,
            tyre_stints=tyre_stints,
            opportunistic=head == "opportunistic",
            **common,
        )
    if "." in head and rest:
        factory_name, _, args = rest.partition(":")
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise ValueError(f"strategy {spec!r}: cannot import {head!r} ({exc})") from exc
        factory = getattr(module, factory_name, None)
        if factory is None:
            raise ValueError(f"strategy {spec!r}: {head} has no {factory_name!r}")
        strat = factory(**_parse_kwargs(args))
        if not isinstance(strat, Strategy):
            raise ValueError(f"strategy {spec!r}: the factory did not return a Strategy")
        return strat
    raise ValueError(
        f"unknown strategy {spec!r}: use one of {', '.join(BUILTIN)} or 'module.path:factory'"
    )


__all__ = ["ACTIONS", "PlanStrategy", "RuleStrategy", "first_legal", "make_strategy"]
