"""Race scenarios: frozen dataclasses loaded from TOML, unknown keys rejected.

A scenario is everything the engine needs to know about a race before it starts: the track,
the race length, the rules that shape strategy, the field (classes and entries), which
stochastic models are switched on, scripted what-if events and the strategist's own car.
Shipped scenarios live in ``engine/scenarios/`` and load by name (``load_scenario("lemans_24h")``).

Units: seconds [s], metres [m], degrees Celsius [°C], hours of the day [h], fractions of a
tank (fuel) or of a stint allocation (virtual energy), fractions of tread.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.risks import Risks, merge_risks
from events.interface import ForcedEvent, ForcedKind
from world_model.interface import Compound, FlagState
from world_model.parametric import ParametricLapParams

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Where the shipped scenarios live."""


class ScenarioError(ValueError):
    """A scenario file or change that does not describe a valid race."""


@dataclass(frozen=True)
class Track:
    """The circuit."""

    name: str
    lap_length_m: float
    pit_lane_loss_s: float
    """Time a drive-through of the pit lane (in-lap plus out-lap) costs over a green lap [s]."""
    fcy_speed_kph: float = 80.0
    """Speed limit under full-course yellow [km/h] (informative; the rules' factors apply)."""
    sc_min_gap_s: float = 1.0
    """Gap cars close up to behind the safety car [s] (the field bunches)."""
    sunrise_hour: float = 6.0
    """Local time of day the sun rises [h] (night is a half-hour ramp around it)."""
    sunset_hour: float = 21.5
    """Local time of day the sun sets [h]."""
    track_temp_c: float = 30.0
    """Track temperature when the weather model is off [°C]."""
    air_temp_c: float = 22.0
    """Air temperature when the weather model is off [°C]."""


@dataclass(frozen=True)
class Race:
    """How long the race is and when it starts."""

    duration_h: float | None = None
    """Time-certain race length [h]; the leader's first crossing after it ends the race."""
    laps: int | None = None
    """Lap race length; the leader completing it ends the race."""
    start_hour_of_day: float = 16.0
    """Local time of day at the start [h]."""
    window_s: float = 20.0
    """Race-clock window of the batched stepper [s]; incidents and flags are resolved per window."""

    @property
    def duration_s(self) -> float | None:
        return None if self.duration_h is None else self.duration_h * 3600.0


@dataclass(frozen=True)
class FlagRule:
    """What a neutralisation does to cars running under it, as factors on green values."""

    lap_time_factor: float
    fuel_factor: float
    wear_factor: float
    default_duration_s: float = 600.0
    """Duration of a scripted neutralisation with no end when no event model is loaded [s]."""


@dataclass(frozen=True)
class Rules:
    """The sporting rules that decide strategy."""

    tyre_change_4_s: float = 30.0
    """Stationary time to change four tyres [s]."""
    tyre_change_2_s: float = 15.0
    """Stationary time to change two tyres [s]."""
    driver_change_s: float = 25.0
    """Stationary time of a driver change [s] (in parallel with the other work)."""
    refuel_with_tyres: bool = False
    """True if refuelling and tyre changes may run in parallel; else they add up (WEC)."""
    min_pit_time_s: float = 0.0
    """Minimum stationary time of any stop [s]."""
    max_stint_driving_s: float = 14400.0
    """Longest a driver may drive without a break [s]."""
    max_total_driving_s: float = 50400.0
    """Most a driver may drive in the whole race [s]."""
    min_total_driving_s: float = 0.0
    """Least each driver must drive in the whole race [s] (0: no minimum)."""
    pit_closed_under_sc: bool = True
    """The pit lane is closed while the safety car is out (only a car that cannot make another
    lap may stop)."""
    neutralisation_delay_s: float = 30.0
    """Time between an incident and its neutralisation taking effect [s] (>= the clock window)."""
    overtake_cost_s: float = 0.4
    """Time a car loses per slower car of another class within 5 s ahead at the line [s]."""
    fuel_margin: float = 1.12
    """Staying out needs fuel (and energy) for this many nominal laps."""
    puncture_loss_s: float = 45.0
    """Time lost crawling round on a puncture [s]."""
    dry_crawl_s: float = -1.0
    """Time a car that runs out of fuel on a lap loses crawling on to the pits, where it must
    stop [s]; -1: running dry retires it (the default: WEC and IMSA forbid refuelling or
    pushing a car outside the pit lane, so a car stopped on track is out). Where the rules or
    the car allow it (a fuel system's last litres starving the engine in corners, a hybrid
    that can move on its battery, a series that tows a stopped car back), the crawl costs
    this instead, e.g. 120 s for the rest of a lap at about half pace."""
    fcy: FlagRule = FlagRule(1.45, 0.55, 0.5, 420.0)
    safety_car: FlagRule = FlagRule(1.6, 0.5, 0.45, 1200.0)
    slow_zone: FlagRule = FlagRule(1.06, 0.93, 0.93, 300.0)

    def flag_rule(self, kind: FlagState) -> FlagRule:
        return {
            FlagState.FCY: self.fcy,
            FlagState.SAFETY_CAR: self.safety_car,
            FlagState.SLOW_ZONE: self.slow_zone,
        }.get(kind, FlagRule(1.0, 1.0, 1.0, 0.0))


@dataclass(frozen=True)
class CarClass:
    """A class of cars and the rules specific to it."""

    name: str
    compounds: tuple[str, ...] = ("soft", "medium", "hard", "wet")
    """Compounds the class may fit."""
    tyre_sets: float = -1.0
    """Sets of four dry tyres allowed for the race (-1: unlimited)."""
    refuel_full_s: float = 40.0
    """Stationary time to fill an empty tank (or a whole energy allocation) [s]."""
    has_energy: bool = False
    """True if the class races on a virtual-energy allocation per stint."""
    risks: dict[str, Any] = field(default_factory=dict)
    """Overrides of the scenario's risk priors for this class (``[classes.risks.push]
    failure_factor = 3``; see :mod:`engine.risks`)."""

    @property
    def compound_codes(self) -> tuple[int, ...]:
        return tuple(int(Compound[c.upper()]) for c in self.compounds)


@dataclass(frozen=True)
class Driver:
    name: str
    skill: float = 0.0
    """Rating relative to the car's reference driver (+1 = one standard deviation faster)."""


@dataclass(frozen=True)
class Entry:
    """One car of the field."""

    number: str
    car_class: str
    team: str
    drivers: tuple[Driver, ...]
    ref_lap_time_s: float
    """Reference green pace [s] (10th percentile of clean timed green laps)."""
    ref_fuel_per_lap: float
    """Median fuel use per green lap, fraction of tank."""
    ref_wear_per_lap: float
    """Median tread loss per green lap on a medium tyre, fraction."""
    ref_energy_per_lap: float = 0.0
    """Median virtual-energy use per green lap, fraction of the stint allocation (0: none)."""
    start_compound: str = "medium"
    strategy: str = "fuel-reserve"
    """Default strategy spec (see engine.baselines.make_strategy)."""
    risks: dict[str, Any] = field(default_factory=dict)
    """Overrides of the class's risk priors for this car (after the class's own)."""


@dataclass(frozen=True)
class EventsSettings:
    incidents: bool = True
    """Draw contacts, damage, punctures, failures and the neutralisations they cause."""
    weather: bool = True
    """Draw rain, wetness and temperatures; off: dry at the track's temperatures."""
    model: str = "default"
    """Event model: "default" (events.load_default) or a path the events package loads."""
    full_course_cautions: bool = False
    """IMSA's race control: every neutralisation the event model calls (FCY, safety car, slow
    zone, and a local yellow too: IMSA neutralises the course for a car stopped off the
    racing line) is a full-course caution behind the safety car, flagged FCY (as IMSA timing
    flags it) and lasting as a safety car does; IMSA has no slow zones. False: WEC's FCY,
    safety cars and slow zones as drawn, local yellows without a neutralisation."""


@dataclass(frozen=True)
class Scenario:
    name: str
    track: Track
    race: Race
    rules: Rules
    classes: tuple[CarClass, ...]
    entries: tuple[Entry, ...]
    events: EventsSettings = EventsSettings()
    lap_model: str = "default"
    """"default" (world_model.load_default), "parametric" or a checkpoint path."""
    lap_model_core_only: bool = True
    """Draw a learned lap model's lap time from its core pace component only, leaving
    traffic, incidents, neutralisations and rain to the engine (see
    ``LearnedLapModel.with_core_only``). The default for every scenario: with the slow
    components drawn on top of the engine's own, the shipped Le Mans field's green laps ran a
    q90 11-17 % above reference (q90 / q50 1.10-1.15) against 1.7-2.4 % (q90 / q50 1.011-1.019;
    real Le Mans 2026 Hypercar 1.015), 4 races of 6 hours, seed 0. False: the full mixture."""
    lap_model_fuel_noise: float = 0.25
    """Spread of a learned lap model's per-lap fuel and energy draws about their centre, as a
    share of the fitted spread (``LearnedLapModel.with_fuel_noise``). LMU logs the tank level in
    steps of ~13 % of a lap's use, so a logged lap's use (a difference of two rounded levels)
    scatters ~5.3 % of a lap, which telescopes away over a stint; with per-car drift and mixed
    data the fitted per-lap spread is ~16-18 % of a lap, and drawn lap by lap independently it
    adds up to stint-level uncertainty no car has. 0.25 brings it to the ~4.5 % a lap that Paul
    Ricard's LMU laps show once the rounding scatter is taken out (sqrt(7 %² - 5.3 %²));
    measured in the six-hour race, 0.25 gives 3.3 % a lap and 0.15 lap over 20 laps. A stint's
    consumption uncertainty is the fuel-use risk's (``[risks.fuel]``, fitted). At 1, the rule
    field ran dry in 26 of 513 car-races of the six-hour race with that risk off (16 races,
    seed 2); at 0.25, in none of 531."""
    lap_model_recent_pace: bool = True
    """Feed the lap model each car's recent pace and previous lap
    (``LapConditions.recent_pace_pct`` and ``last_*``, from the laps it draws). False: these
    inputs stay unknown (NaN) all race. Scenarios built
    from timing data set it false: their reference pace already comes from the car's whole
    race, and the learned model's draws fed back through it settle about 1 % slow (Le Mans
    2026: Hypercar green-lap median 212.1 s simulated against 209.8 s real)."""
    lap_model_carried_wear_time: float = 0.034
    """Lap-time loss, fraction per unit of tread lost, of the tread a set carried into the
    stint, added for a lap model that reads tyre age as laps since the stop
    (``LearnedLapModel.tyre_age_is_stint_laps``): such a model knows the stint's own wear but
    not whether the set is fresh. Fitted within cars on the shared sim logs (``python -m
    events.tyre_pace_fit``): rF2 Istanbul 0.025, LMU Paul Ricard 0.034, rF2 Hungaroring 0.047,
    on tread lost up to 0.32-0.42; the default is their median. The carried tread is the car's
    reference wear per lap times the laps the set ran before this stint. Built scenarios set
    0: timing data has no tread (their tread rate is an assumption), and the real laps' pace
    already carries the teams' own tyre strategy (Le Mans 2026 validates without it)."""
    lap_model_wet_penalty: tuple[float, ...] = ParametricLapParams().wet_penalty
    """Lap-time loss at full wetness per compound (soft, medium, hard, wet), fraction, for
    any lap model (replacing a learned model's: its data record no wetness). The default is
    the stated prior ``world_model.parametric.ParametricLapParams.wet_penalty``."""
    forced_events: tuple[ForcedEvent, ...] = ()
    focus_car: str | None = None
    """Race number of the strategist's own car."""
    noise_scale: float = 1.0
    """Noise multiplier passed to the parametric lap model (0: deterministic laps)."""
    risks: Risks = field(default_factory=Risks)
    """The risk priors of the whole field (``[risks]``; see :mod:`engine.risks`)."""

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def class_of(self, entry: Entry) -> CarClass:
        return self.classes[self.class_names.index(entry.car_class)]

    def risks_of(self, entry: Entry, where: str | None = None) -> Risks:
        """The risks of one car: the scenario's, then its class's overrides, then its own;
        ``where`` names the source in errors."""
        where = where or f"scenario {self.name!r}"
        car_class = self.class_of(entry)
        out = merge_risks(self.risks, car_class.risks, f"{where}: classes.{car_class.name}.risks")
        out = merge_risks(out, entry.risks, f"{where}: entries (car {entry.number}).risks")
        return out.effective()

    def entry_index(self, number: str) -> int:
        for i, e in enumerate(self.entries):
            if e.number == number:
                return i
        raise ScenarioError(f"scenario {self.name!r} has no car number {number!r}")


# -- loading ------------------------------------------------------------------------------------


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a table, got {value!r}")
        return _build(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise ScenarioError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ScenarioError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected text, got {value!r}")
        return value
    return value


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    if cls is ForcedEvent:
        return _forced_event(table, where)
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    toml_names = {("class" if n == "car_class" else n): n for n in names}
    unknown = [k for k in table if k not in toml_names]
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(toml_names))})"
        )
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        name = toml_names[key]
        kwargs[name] = _convert(value, hints[name], f"{where}.{key}")
    missing = [
        n
        for n, f in names.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        key = "class" if missing[0] == "car_class" else missing[0]  # as the TOML spells it
        raise ScenarioError(f"{where}: missing key {key!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


def _forced_event(table: dict[str, Any], where: str) -> ForcedEvent:
    allowed = {"kind", "start_s", "end_s", "car", "lap", "intensity"}
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} (expected {sorted(allowed)})")
    try:
        kind = ForcedKind(table["kind"])
    except (KeyError, ValueError) as exc:
        raise ScenarioError(
            f"{where}.kind: expected one of {[k.value for k in ForcedKind]}, "
            f"got {table.get('kind')!r}"
        ) from exc

    def number(key: str) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        return _convert(value, float, f"{where}.{key}")

    lap = table.get("lap")
    if lap is not None:
        lap = _convert(lap, int, f"{where}.lap")
    return ForcedEvent(
        kind=kind,
        start_s=number("start_s"),
        end_s=number("end_s"),
        car=None if table.get("car") is None else _convert(table["car"], str, f"{where}.car"),
        lap=lap,
        intensity=1.0 if table.get("intensity") is None else number("intensity"),
    )


def _check_positive(where: str, **values: float | None) -> None:
    """Each value (keyed by its dotted TOML name, ``__`` for ``.``) must be > 0."""
    for key, value in values.items():
        if value is not None and not value > 0:
            raise ScenarioError(f"{where}: {key.replace('__', '.')} must be > 0, got {value}")


def _check_non_negative(where: str, **values: float) -> None:
    for key, value in values.items():
        if not value >= 0:
            raise ScenarioError(f"{where}: {key.replace('__', '.')} must be >= 0, got {value}")


def _validate_rules(s: Scenario, where: str) -> None:
    r = s.rules
    _check_positive(
        where,
        race__duration_h=s.race.duration_h,
        race__laps=s.race.laps,
        rules__max_stint_driving_s=r.max_stint_driving_s,
        rules__max_total_driving_s=r.max_total_driving_s,
    )
    _check_non_negative(
        where,
        rules__tyre_change_4_s=r.tyre_change_4_s,
        rules__tyre_change_2_s=r.tyre_change_2_s,
        rules__driver_change_s=r.driver_change_s,
        rules__min_pit_time_s=r.min_pit_time_s,
        rules__min_total_driving_s=r.min_total_driving_s,
        rules__overtake_cost_s=r.overtake_cost_s,
        rules__puncture_loss_s=r.puncture_loss_s,
    )
    if not (r.dry_crawl_s >= 0 or r.dry_crawl_s == -1):
        raise ScenarioError(
            f"{where}: rules.dry_crawl_s must be >= 0 (seconds lost) or -1 (running dry "
            f"retires), got {r.dry_crawl_s}"
        )
    for c in s.classes:
        place = f"{where}: class {c.name!r}"
        if c.refuel_full_s < 0:
            raise ScenarioError(f"{place}: refuel_full_s must be >= 0, got {c.refuel_full_s}")
        if c.tyre_sets != -1 and c.tyre_sets < 1:
            raise ScenarioError(
                f"{place}: tyre_sets must be at least 1 (or -1: unlimited), got {c.tyre_sets}"
            )


def _validate_entry_figures(place: str, e: Entry) -> None:
    for key in ("ref_lap_time_s", "ref_fuel_per_lap"):
        if not getattr(e, key) > 0:
            raise ScenarioError(f"{place}: {key} must be > 0, got {getattr(e, key)}")
    for key in ("ref_fuel_per_lap", "ref_energy_per_lap", "ref_wear_per_lap"):
        value = getattr(e, key)
        if not 0 <= value <= 1:
            raise ScenarioError(
                f"{place}: {key} is a fraction of a tank (or allocation, or tread) per lap, "
                f"in [0, 1]; {value} would not complete a lap"
            )


def max_race_laps(s: Scenario) -> int:
    """More laps than any car can complete: the lap count of a lap race, else the race length
    over the fastest reference lap less a generous margin (no car laps 25 % under it)."""
    if s.race.laps is not None:
        return s.race.laps
    fastest = min(e.ref_lap_time_s for e in s.entries)
    return math.ceil(s.race.duration_h * 3600.0 / (0.75 * fastest)) + 1


def check_forced_in_race(s: Scenario, events: tuple[ForcedEvent, ...], where: str) -> None:
    """Forced events must name entries and fall inside the race: an event after the end would
    silently never happen."""
    numbers = {e.number for e in s.entries}
    end_s = s.race.duration_s
    laps = max_race_laps(s)
    for ev in events:
        label = f"{where}: forced event {ev.kind.value}"
        if ev.car is not None and ev.car not in numbers:
            raise ScenarioError(f"{where}: forced event names unknown car {ev.car!r}")
        for key in ("start_s", "end_s"):
            value = getattr(ev, key)
            if value is not None and value < 0:
                raise ScenarioError(f"{label}: {key} must be >= 0, got {value}")
        if ev.start_s is not None and ev.end_s is not None and ev.end_s <= ev.start_s:
            raise ScenarioError(f"{label}: end_s ({ev.end_s}) must be after start_s")
        if end_s is not None and ev.start_s is not None and ev.start_s >= end_s:
            raise ScenarioError(
                f"{label}: start_s {ev.start_s:g} s is after the end of the race ({end_s:g} s)"
            )
        if ev.lap is not None and not 1 <= ev.lap <= laps:
            raise ScenarioError(
                f"{label}: lap {ev.lap} is outside the race (laps 1 to at most {laps})"
            )
        if not 0 <= ev.intensity <= 1:
            raise ScenarioError(f"{label}: intensity must lie in [0, 1], got {ev.intensity}")


def validate(s: Scenario, where: str) -> Scenario:
    """Cross-field checks: a consistent race length, known classes, compounds and numbers."""
    if (s.race.duration_h is None) == (s.race.laps is None):
        raise ScenarioError(f"{where}: [race] needs exactly one of duration_h and laps")
    if s.race.window_s <= 0:
        raise ScenarioError(f"{where}: race.window_s must be > 0")
    _validate_rules(s, where)
    if s.rules.neutralisation_delay_s < s.race.window_s:
        raise ScenarioError(
            f"{where}: rules.neutralisation_delay_s ({s.rules.neutralisation_delay_s}) must be "
            f">= race.window_s ({s.race.window_s}) so a neutralisation never acts on its past"
        )
    if not s.lap_model_fuel_noise >= 0:
        raise ScenarioError(f"{where}: lap_model_fuel_noise must be >= 0")
    if not s.lap_model_carried_wear_time >= 0:
        raise ScenarioError(f"{where}: lap_model_carried_wear_time must be >= 0")
    wet = s.lap_model_wet_penalty
    if len(wet) != len(Compound) or not all(0.0 <= v <= 1.0 for v in wet):
        raise ScenarioError(
            f"{where}: lap_model_wet_penalty must be {len(Compound)} fractions in [0, 1] "
            f"(soft, medium, hard, wet), got {list(wet)}"
        )
    if not s.entries:
        raise ScenarioError(f"{where}: no [[entries]]")
    for c in s.classes:
        for comp in c.compounds:
            if comp.upper() not in Compound.__members__:
                raise ScenarioError(f"{where}: class {c.name!r}: unknown compound {comp!r}")
    seen: set[str] = set()
    for i, e in enumerate(s.entries):
        place = f"{where}: entries[{i}] (car {e.number})"
        if e.number in seen:
            raise ScenarioError(f"{place}: duplicate race number")
        seen.add(e.number)
        if e.car_class not in s.class_names:
            raise ScenarioError(f"{place}: unknown class {e.car_class!r}")
        if not e.drivers:
            raise ScenarioError(f"{place}: needs at least one driver")
        _validate_entry_figures(place, e)
        if e.start_compound.upper() not in Compound.__members__:
            raise ScenarioError(f"{place}: unknown compound {e.start_compound!r}")
    try:
        s.risks.check(f"{where}: [risks]")
        for e in s.entries:
            s.risks_of(e, where)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from exc
    if s.focus_car is not None and s.focus_car not in seen:
        raise ScenarioError(f"{where}: focus_car {s.focus_car!r} is not an entry")
    check_forced_in_race(s, s.forced_events, where)
    return s


def parse_scenario(table: dict[str, Any], where: str) -> Scenario:
    """A scenario from a parsed TOML table; ``where`` names the source in errors."""
    table = dict(table)
    table.setdefault("name", Path(where).stem)
    return validate(_build(Scenario, table, where), where)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name ("lemans_24h", "six_hours", "test_race") or a TOML path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        shipped = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
        raise ScenarioError(f"scenario {str(name_or_path)!r} not found (shipped: {shipped})")
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse_scenario(table, str(path))


def _replace_path(obj: Any, parts: list[str], value: Any, where: str) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(obj, tuple):
        for i, item in enumerate(obj):
            key = getattr(item, "number", None) or getattr(item, "name", None)
            if head == str(i) or head == key:
                new = _replace_path(item, rest, value, where) if rest else value
                return (*obj[:i], new, *obj[i + 1 :])
        raise ScenarioError(f"{where}: no item {head!r}")
    if not dataclasses.is_dataclass(obj):
        raise ScenarioError(f"{where}: cannot descend into {type(obj).__name__}")
    name = "car_class" if head == "class" else head
    if name not in {f.name for f in dataclasses.fields(obj)}:
        raise ScenarioError(f"{where}: unknown field {head!r} of {type(obj).__name__}")
    current = getattr(obj, name)
    if rest:
        new = _replace_path(current, rest, value, where)
    else:
        hint = typing.get_type_hints(type(obj))[name]
        new = value if dataclasses.is_dataclass(value) else _convert(value, hint, where)
    return dataclasses.replace(obj, **{name: new})


def scenario_with(scenario: Scenario, **dotted_changes: Any) -> Scenario:
    """A copy with fields changed by dotted path, e.g. ``{"rules.min_pit_time_s": 40}``,
    ``{"entries.7.ref_lap_time_s": 210.0}`` (an entry by race number or index) or
    ``{"events.incidents": False}``."""
    out = scenario
    for path, value in dotted_changes.items():
        out = _replace_path(out, path.split("."), value, f"scenario_with {path!r}")
    return validate(out, f"scenario {out.name!r} after scenario_with")
