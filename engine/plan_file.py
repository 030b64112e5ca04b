"""Scripted plans: the ``plan:FILE`` strategy and its TOML format.

A plan file lists the car's stops, each at the lap it is completing when it turns into the pit
lane (its in-lap), with the service::

    pace = "normal"          # pace of every lap that is not a stop: save, normal or push
    on_conflict = "refuse"   # or "adapt" (below)

    [[stop]]
    lap = 27                 # laps completed at the pit entry (the in-lap's number)
    fuel = "full"            # full (fill the tank / energy allocation) or to_finish (the
                             # laps left at the nominal use plus one, capped at full)
    tyres = "four_medium"    # keep, four_soft, four_medium, four_hard, four_wet, two_same
    driver_change = true     # the next driver of the line-up gets in
    repair = false           # repair damage (needs damage)
    pace = "normal"          # pace of the out-lap (default: the plan's pace)

Every lap not listed is driven at the plan's ``pace`` without stopping. A plan is run exactly
as written. Where a race forbids the written decision (the car cannot make another lap on its
fuel or energy, a flat tyre, a driver past the driving-time limits, the pit lane closed under
the safety car, no tyre sets left, a change with nobody to hand over to), ``on_conflict =
"refuse"`` (the default) stops the simulation with :class:`PlanRefused`, naming the stop, the
race and the reason; ``"adapt"`` lets the car do the nearest legal thing (stop where it must
with a full fill and the tyres it has; stay out where it may not stop) and counts every such
change in :attr:`PlanStrategy.conflicts`, so a report can say how often the race changed the
plan and where. A plan is never changed silently.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.actions import ACTION_TABLE, ACTIONS, Fuel, Tyres, action_index
from engine.legal import first_legal
from engine.strategy import Observation
from world_model.interface import Compound, FlagState, PaceMode

STOP_KEYS = ("lap", "fuel", "tyres", "driver_change", "repair", "pace")
ON_CONFLICT = ("refuse", "adapt")


class PlanRefused(ValueError):
    """A plan that cannot be run as written: the message names the stop and the reason."""


@dataclass(frozen=True)
class PlanStop:
    """One written stop."""

    lap: int
    """Laps completed at the pit entry (the in-lap's number)."""
    fuel: Fuel = Fuel.FULL
    tyres: Tyres = Tyres.KEEP
    driver_change: bool = False
    repair: bool = False
    pace: PaceMode | None = None
    """Pace of the out-lap (None: the plan's pace)."""

    def action(self, pace: PaceMode) -> int:
        return action_index(
            self.pace if self.pace is not None else pace,
            True,
            self.fuel,
            self.tyres,
            self.driver_change,
            self.repair,
        )

    def to_toml(self) -> str:
        lines = [
            "[[stop]]",
            f"lap = {self.lap}",
            f'fuel = "{self.fuel.name.lower()}"',
            f'tyres = "{self.tyres.name.lower()}"',
            f"driver_change = {str(self.driver_change).lower()}",
            f"repair = {str(self.repair).lower()}",
        ]
        if self.pace is not None:
            lines.append(f'pace = "{self.pace.name.lower()}"')
        return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    """A whole written plan."""

    stops: tuple[PlanStop, ...]
    pace: PaceMode = PaceMode.NORMAL
    on_conflict: str = "refuse"

    def to_toml(self, header: str = "", notes: Mapping[int, str] | None = None) -> str:
        """The plan file; ``header`` and ``notes`` (stop lap -> text, e.g. the level the
        stop fills to) are written as comments, so they never change how the plan runs."""
        head = [f"# {line}" if line else "#" for line in header.splitlines()]
        body = [f'pace = "{self.pace.name.lower()}"', f'on_conflict = "{self.on_conflict}"']
        stops = []
        for s in self.stops:
            note = (notes or {}).get(s.lap)
            stops.append("\n" + (f"# {note}\n" if note else "") + s.to_toml())
        return "\n".join([*head, *body, *stops]) + "\n"


def _enum(kind: type, value: object, where: str) -> object:
    names = [m.name.lower() for m in kind]  # type: ignore[attr-defined]
    if not isinstance(value, str) or value.lower() not in names:
        raise ValueError(f"{where}: expected one of {', '.join(names)}, got {value!r}")
    return kind[value.upper()]  # type: ignore[index]


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value


def parse_plan(table: dict, where: str) -> Plan:
    """A plan from a parsed TOML table; errors name ``where`` and the key."""
    extra = set(table) - {"stop", "pace", "on_conflict"}
    if extra:
        raise ValueError(f"plan {where}: unknown key {sorted(extra)[0]!r}")
    pace = _enum(PaceMode, table.get("pace", "normal"), f"plan {where}: pace")
    on_conflict = table.get("on_conflict", "refuse")
    if on_conflict not in ON_CONFLICT:
        raise ValueError(
            f"plan {where}: on_conflict: expected refuse or adapt, got {on_conflict!r}"
        )
    stops: list[PlanStop] = []
    for i, st in enumerate(table.get("stop", [])):
        place = f"plan {where}: stop[{i}]"
        unknown = set(st) - set(STOP_KEYS)
        if unknown:
            raise ValueError(f"{place}: unknown key {sorted(unknown)[0]!r}")
        lap = st.get("lap")
        if isinstance(lap, bool) or not isinstance(lap, int) or lap < 1:
            raise ValueError(f"{place}: lap: expected a lap number >= 1, got {lap!r}")
        if stops and lap <= stops[-1].lap:
            raise ValueError(f"{place}: lap {lap} is not after the previous stop's {stops[-1].lap}")
        fuel = _enum(Fuel, st.get("fuel", "full"), f"{place}: fuel")
        if fuel == Fuel.NONE:
            raise ValueError(f"{place}: fuel: a stop fills to full or to_finish, not none")
        stops.append(
            PlanStop(
                lap=lap,
                fuel=fuel,  # type: ignore[arg-type]
                tyres=_enum(Tyres, st.get("tyres", "keep"), f"{place}: tyres"),  # type: ignore[arg-type]
                driver_change=_flag(st.get("driver_change", False), f"{place}: driver_change"),
                repair=_flag(st.get("repair", False), f"{place}: repair"),
                pace=None if "pace" not in st else _enum(PaceMode, st["pace"], f"{place}: pace"),  # type: ignore[arg-type]
            )
        )
    return Plan(stops=tuple(stops), pace=pace, on_conflict=on_conflict)  # type: ignore[arg-type]


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"plan {path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"plan {path}: not valid TOML ({exc})") from None
    return parse_plan(table, str(path))


def conflict_reason(obs: Observation, row: int, planned: int, legal: torch.Tensor) -> str:
    """Why the written decision ``planned`` is not legal for row ``row`` (``legal`` its mask)."""
    act = ACTIONS[planned]
    stay_ok = bool(legal[action_index(PaceMode.NORMAL, False)])
    if not act.pit:
        if float(obs.tread[row].amin()) <= 0.0:
            return "a flat tyre: the car must stop"
        laps_left = float(obs.fuel_laps_left[row])
        if laps_left < 1.5:
            return f"fuel or energy for {laps_left:.2f} laps left: the car must stop"
        return "a driver reaches the driving-time limits: the car must stop to change"
    if act.tyres == Tyres.KEEP and float(obs.tread[row].amin()) <= 0.0:
        return "a flat tyre: the stop must change tyres"
    new_dry = act.tyres.count == 4 and act.tyres.compound != Compound.WET
    if new_dry and float(obs.tyre_sets_left[row]) < 1:
        return "no dry tyre sets left"
    if act.repair and float(obs.damage[row]) <= 0.0:
        return "a repair with no damage to repair"
    if stay_ok and int(obs.flag[row]) == int(FlagState.SAFETY_CAR):
        return "the pit lane is closed under the safety car"
    other = action_index(act.pace, True, act.fuel, act.tyres, not act.driver_change, act.repair)
    if bool(legal[other]):
        if act.driver_change:
            return "no driver may take over (one driver, or the next one past the limits)"
        return "a driver must hand over here (driving-time limits) and the stop keeps them"
    return "the class may not fit these tyres"


@dataclass
class PlanStrategy:
    """Runs a :class:`Plan`: stops at the written laps with the written service."""

    name: str
    plan: Plan
    conflicts: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(lap, reason) -> times the race changed the plan there (``on_conflict = "adapt"``)."""
    changed_races: set[int] = field(default_factory=set)
    """Replicas in which the race changed the plan at least once."""

    @property
    def stops(self) -> dict[int, int]:
        """Lap completed -> action index."""
        return {s.lap: s.action(self.plan.pace) for s in self.plan.stops}

    @staticmethod
    def from_file(path: str | Path) -> PlanStrategy:
        path = Path(path)
        return PlanStrategy(name=f"plan:{path.name}", plan=load_plan(path))

    def decide(
        self, obs: Observation, legal: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        stay = action_index(self.plan.pace, False)
        planned = torch.full_like(obs.car, stay)
        lap = obs.lap.long()
        for stop_lap, act in self.stops.items():
            planned = torch.where(lap == stop_lap, act, planned)
        ok = legal.gather(1, planned.unsqueeze(1)).squeeze(1)
        if bool(ok.all()):
            return planned
        bad = (~ok).nonzero().squeeze(1)
        if self.plan.on_conflict == "refuse":
            i = int(bad[0])
            raise PlanRefused(
                f"{self.name}: cannot be run as written at lap {int(lap[i])} of race "
                f"{int(obs.replica[i])} ({ACTIONS[int(planned[i])]}): "
                f"{conflict_reason(obs, i, int(planned[i]), legal[i])}"
            )
        for i in bad.tolist():
            reason = conflict_reason(obs, i, int(planned[i]), legal[i])
            self.conflicts[(int(lap[i]), reason)] += 1
            self.changed_races.add(int(obs.replica[i]))
        return torch.where(ok, planned, _nearest_legal(planned, legal, self.plan.pace))


def _nearest_legal(planned: torch.Tensor, legal: torch.Tensor, pace: PaceMode) -> torch.Tensor:
    """Where the written decision is illegal: a full fill keeping tyres and driver if the car
    must stop (else whatever stop the rules allow), staying out if it may not stop."""
    stay = action_index(pace, False)
    plain = [
        action_index(pace, True, Fuel.FULL, t, d, r)
        for t in (Tyres.KEEP, Tyres.TWO_SAME, Tyres.FOUR_MEDIUM)
        for d in (False, True)
        for r in (False, True)
    ]
    prefs = torch.tensor([stay, *plain]).expand(planned.shape[0], -1)
    stop_prefs = torch.tensor([*plain, stay]).expand(planned.shape[0], -1)
    written_pit = ACTION_TABLE.pit.index_select(0, planned).unsqueeze(1)
    return first_legal(torch.where(written_pit, stop_prefs, prefs).contiguous(), legal)
