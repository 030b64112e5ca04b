"""The gambles of endurance racing as named, documented priors: the scenario's ``[risks]``.

Each risk is a small frozen dataclass with an ``enabled`` switch and its parameters, each
with a default taken from racing knowledge (or a fit to the shared data where it can size it;
the docstring says which, and how uncertain the value is). ``[risks]`` in the scenario sets
them for the whole field; ``[classes.risks]`` (after a ``[[classes]]`` table) and
``[entries.risks]`` (after an ``[[entries]]`` table) override single values for a class or
one car, e.g. ``[entries.risks.push] failure_factor = 3.0``. A risk switched off (``enabled =
false``) leaves the race exactly as it was without it: the same random numbers, bit for bit.

:class:`RiskTable` turns the resolved risks of every car into ``[C]`` tensors for the stepper
and the event model (:class:`events.interface.CarRisks`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from events.interface import CarRisks


@dataclass(frozen=True)
class FuelRisk:
    """Fuel use differs from the team's planning figure stint by stint, and a car that runs
    dry is out.

    A stint's fuel use per lap is the lap model's draw (which already carries per-lap noise)
    times a lognormal factor of mean 1 and coefficient of variation ``stint_cv``, drawn per
    car and stint. The team reads the fuel left as it planned it: the fuel at the stop minus
    what the laps since used at the planning figure (the car's use without the stint factor),
    so a stint run to the last drop of the planned figure runs dry when the car used more.
    The legal safety margin (``rules.fuel_margin``) acts on that reading. Running dry retires
    the car (the stepper's rule).
    """

    enabled: bool = True
    stint_cv: float = 0.02
    """Coefficient of variation of a stint's fuel use per lap around the planning figure.
    Prior: 2 % (teams quote fuel-calculation errors of 1-3 % a stint from traffic, tows, wind
    and driver style); the LMU Paul Ricard logs give the within-car, stint-to-stint spread of
    mean fuel per lap (see the README's Risk section). Uncertainty: 1-4 %."""
    max_stints: int = 64
    """Stints per car with their own factor drawn (later stints reuse the last one)."""


@dataclass(frozen=True)
class TyreCliffRisk:
    """Worn tyres fall off a cliff: punctures and failures multiply and lap time drops away
    below a tread threshold.

    With ``x = clamp((tread - tread_min) / tread, 0, 1)`` measured on the most worn wheel
    (0 at the threshold, 1 on the canvas): the puncture hazard is multiplied by
    ``puncture_factor ** x`` and the lap time by ``1 + lap_time_loss x²``.
    """

    enabled: bool = True
    tread: float = 0.15
    """Tread left below which the cliff starts, fraction. Prior: sim drivers (LMU / rF2)
    report the cliff at 10-20 % tread left; the rF2 Istanbul logs reach 0.20 and cannot
    place it. Uncertainty: 0.10-0.25."""
    puncture_factor: float = 20.0
    """Multiplier of the puncture hazard on a tyre worn to the canvas. Prior: a tyre run
    past the cliff fails within a few laps in sim and real racing (blistered, delaminated
    treads); 20 turns the fitted debris rate (~0.04 per car-hour at 0.2 tread) into about one
    failure per hour on the canvas. Uncertainty: x5-x100."""
    lap_time_loss: float = 0.04
    """Lap-time loss on a tyre worn to the canvas, fraction of the lap (quadratic in the
    depth below the threshold). Prior: sim drivers report 3-6 s a lap on a 2-minute lap
    past the cliff. Uncertainty: 0.02-0.08."""


@dataclass(frozen=True)
class SlickWetRisk:
    """Slicks on a wet track go off: an off / crash hazard growing with wetness on any
    compound but wets, on top of the contact model's wet factor (which holds for every car).

    Hazard per car-hour ``off_per_h x wetness²``; an off draws damage as a contact does
    (terminal with the damage model's probability, a puncture with its cut probability) but
    with no other car involved.
    """

    enabled: bool = True
    off_per_h: float = 1.0
    """Offs per car-hour on slicks on a fully wet track. Prior, rough: when a shower hit Le Mans
    2023 in its fifth hour, a handful (about 6-8) of 62 cars on slicks went off within minutes
    (~1 per car-hour on the wettest stretch); at the rule strategies' switch-over wetness
    (0.35) that is ~0.12 per hour, about 1 % a stint. Uncertainty: x0.3-x3."""


@dataclass(frozen=True)
class PushRisk:
    """Pushing stresses the car: the mechanical-failure hazard is multiplied while a car runs
    at push pace (the contact model already has its own push factor)."""

    enabled: bool = True
    failure_factor: float = 2.0
    """Multiplier of the failure hazard per hour at push pace. Prior: engine and gearbox
    mileage budgets count a qualifying-like lap as about twice a race lap; teams turn engines
    down to preserve them. No data: timing records neither the pace mode nor the cause of a
    retirement. Uncertainty: x1.2-x4."""


@dataclass(frozen=True)
class Risks:
    """Every risk of the race (the scenario's ``[risks]`` table)."""

    enabled: bool = True
    """False switches every risk off whatever its own switch says (``--set
    risks.enabled=false`` reruns a race as the engine ran it before the risks)."""
    fuel: FuelRisk = FuelRisk()
    tyre_cliff: TyreCliffRisk = TyreCliffRisk()
    slick_wet: SlickWetRisk = SlickWetRisk()
    push: PushRisk = PushRisk()

    def off(self) -> Risks:
        """The same table with every risk switched off (the race as before the risks)."""
        return Risks(
            **{
                f.name: dataclasses.replace(getattr(self, f.name), enabled=False)
                for f in dataclasses.fields(self)
                if f.name != "enabled"
            }
        )

    def effective(self) -> Risks:
        """These risks, or every one off where the master switch is off."""
        return self if self.enabled else self.off()

    def check(self, where: str) -> None:
        """Raise ValueError naming ``where`` for a value outside its meaning."""
        checks = [
            (self.fuel.stint_cv >= 0, "fuel.stint_cv must be >= 0"),
            (self.fuel.max_stints >= 1, "fuel.max_stints must be >= 1"),
            (0 < self.tyre_cliff.tread < 1, "tyre_cliff.tread must lie in (0, 1)"),
            (self.tyre_cliff.puncture_factor >= 1, "tyre_cliff.puncture_factor must be >= 1"),
            (self.tyre_cliff.lap_time_loss >= 0, "tyre_cliff.lap_time_loss must be >= 0"),
            (self.slick_wet.off_per_h >= 0, "slick_wet.off_per_h must be >= 0"),
            (self.push.failure_factor > 0, "push.failure_factor must be > 0"),
        ]
        for ok, text in checks:
            if not ok:
                raise ValueError(f"{where}: {text}")


def merge_risks(base: Risks, overrides: dict[str, Any], where: str) -> Risks:
    """``base`` with the values of an override table (``{"push": {"failure_factor": 3}}``);
    unknown names or values of the wrong type raise ValueError naming ``where``."""
    changes: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(base)}
    for key, table in overrides.items():
        if key == "enabled":
            changes[key] = _typed(table, bool, f"{where}.enabled")
            continue
        if key not in names:
            raise ValueError(f"{where}: unknown risk {key!r} (expected one of {sorted(names)})")
        if not isinstance(table, dict):
            raise ValueError(f"{where}.{key}: expected a table, got {table!r}")
        current = getattr(base, key)
        fields = {f.name: f for f in dataclasses.fields(current)}
        values: dict[str, Any] = {}
        for name, value in table.items():
            if name not in fields:
                raise ValueError(
                    f"{where}.{key}: unknown key {name!r} (expected one of {sorted(fields)})"
                )
            values[name] = _typed(value, type(getattr(current, name)), f"{where}.{key}.{name}")
        changes[key] = dataclasses.replace(current, **values)
    out = dataclasses.replace(base, **changes)
    out.check(where)
    return out


def _typed(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if kind is int:
        if not float(value).is_integer():
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class RiskTable:
    """The resolved risks of every car as ``[C]`` tensors (neutral values where off)."""

    fuel_on: bool
    """Any car has the fuel risk on (else the stepper skips it entirely)."""
    fuel_stint_cv: torch.Tensor
    max_stints: int
    cliff_on: bool
    cliff_tread: torch.Tensor
    cliff_log_factor: torch.Tensor
    """Log of the puncture multiplier on the canvas (0 where off)."""
    cliff_lap_time_loss: torch.Tensor
    hazards: CarRisks | None
    """Per-car hazard modifiers for the event model; None when every hazard risk is off."""

    def draw_fuel_factors(self, replicas: int, generator: torch.Generator) -> torch.Tensor | None:
        """``[R, C, max_stints]`` fuel-use factor of each car's stint ``k`` (lognormal, mean
        1, CV ``stint_cv``), drawn up front so stint ``k`` of a car has the same factor
        whatever the strategy (common random numbers); None without the fuel risk."""
        if not self.fuel_on:
            return None
        c = self.fuel_stint_cv.shape[0]
        z = torch.randn((replicas, c, self.max_stints), generator=generator)
        sigma = (1.0 + self.fuel_stint_cv.square()).log().sqrt().view(1, -1, 1)
        return (sigma * z - 0.5 * sigma.square()).exp()

    @staticmethod
    def build(per_car: list[Risks]) -> RiskTable:
        def col(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32)

        fuel = [r.fuel.stint_cv if r.fuel.enabled else 0.0 for r in per_car]
        cliff = [r.tyre_cliff.enabled for r in per_car]
        slick = [r.slick_wet.off_per_h if r.slick_wet.enabled else 0.0 for r in per_car]
        push = [r.push.failure_factor if r.push.enabled else 1.0 for r in per_car]
        cliff_tread = col([r.tyre_cliff.tread for r in per_car])
        cliff_log = col(
            [
                math.log(r.tyre_cliff.puncture_factor) if on else 0.0
                for r, on in zip(per_car, cliff, strict=True)
            ]
        )
        hazards = None
        if any(cliff) or any(s > 0 for s in slick) or any(p != 1.0 for p in push):
            hazards = CarRisks(
                cliff_tread=cliff_tread,
                cliff_log_factor=cliff_log,
                slick_wet_off_per_h=col(slick),
                push_failure_factor=col(push),
            )
        return RiskTable(
            fuel_on=any(v > 0 for v in fuel),
            fuel_stint_cv=col(fuel),
            max_stints=max(r.fuel.max_stints for r in per_car),
            cliff_on=any(
                on and r.tyre_cliff.lap_time_loss > 0 for r, on in zip(per_car, cliff, strict=True)
            ),
            cliff_tread=cliff_tread,
            cliff_log_factor=cliff_log,
            cliff_lap_time_loss=col(
                [
                    r.tyre_cliff.lap_time_loss if on else 0.0
                    for r, on in zip(per_car, cliff, strict=True)
                ]
            ),
            hazards=hazards,
        )
