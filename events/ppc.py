"""Posterior-predictive checks: each model's observed statistic beside its simulated 5-95 %
interval, race by race, on training and held-out races.

Simulations use the posterior draws directly (vectorised over draws) and an explicit
generator, so a check is reproducible from its seed.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import asdict, dataclass

import torch

from events import observations as obs
from events.classes import CLASS_GROUPS
from events.interface import CarExposure
from events.models import contacts, failures, neutralisations, weather
from events.sampler import PosteriorEventModel
from world_model.interface import FlagState

LOW, HIGH = 0.05, 0.95
REF_KM = neutralisations.REFERENCE_LAP_KM


@dataclass(frozen=True)
class Check:
    model: str
    race: str
    split: str
    """'train' or 'held-out'."""
    statistic: str
    observed: float
    low: float
    high: float

    @property
    def covered(self) -> bool:
        return self.low <= self.observed <= self.high

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "covered": self.covered}


def _interval(sim: torch.Tensor) -> tuple[float, float]:
    q = torch.quantile(sim.double(), torch.tensor([LOW, HIGH], dtype=torch.float64))
    return float(q[0]), float(q[1])


def _check(model: str, race: str, split: str, stat: str, observed: float, sim: torch.Tensor):
    low, high = _interval(sim)
    return Check(model, race, split, stat, float(observed), low, high)


def neutralisation_checks(
    conn: sqlite3.Connection,
    race: obs.Race,
    split: str,
    draws: dict[str, torch.Tensor],
    generator: torch.Generator,
) -> list[Check]:
    """FCY and safety-car periods per 24 h and their mean durations."""
    hours = obs.race_hours(conn, race)
    car_hours = obs.green_car_hours(conn, race)
    if hours <= 0:
        return []
    s = draws["neut_rate_fcy"].shape[0]
    effect = (draws["neut_race_sd"] * torch.randn(s, generator=generator)).exp()
    out = []
    for kind, flag in (("fcy", FlagState.FCY), ("sc", FlagState.SAFETY_CAR)):
        observed = obs.flag_periods(conn, race, flag)
        rate = car_hours * draws[f"neut_rate_{kind}"] * effect
        counts = torch.poisson(rate, generator=generator)
        per_24h = 24.0 / hours
        out.append(
            _check(
                "neutralisations",
                race.name,
                split,
                f"{kind.upper()} periods per 24 h",
                len(observed) * per_24h,
                counts * per_24h,
            )
        )
        n = len(observed)
        if n:
            z = torch.randn((s, n), generator=generator)
            mu = draws[f"neut_{kind}_log_mean"]
            if kind == "sc":
                mu = mu + neutralisations.sc_length_term(draws, race.lap_km or REF_KM)
            mu = mu.unsqueeze(-1)
            sd = draws[f"neut_{kind}_log_sd"].unsqueeze(-1)
            mean_min = (mu + sd * z).exp().mean(-1) / 60.0
            out.append(
                _check(
                    "neutralisations",
                    race.name,
                    split,
                    f"{kind.upper()} mean duration [min] (n={n})",
                    float(observed.mean()) / 60.0,
                    mean_min,
                )
            )
    return out


def failure_checks(
    conn: sqlite3.Connection,
    race: obs.Race,
    split: str,
    draws: dict[str, torch.Tensor],
    other_hazard: torch.Tensor,
    generator: torch.Generator,
) -> list[Check]:
    """Retirements per class group over the race (failures plus terminal contacts)."""
    cars = [c for c in obs.car_records(conn, race) if c.group is not None]
    hours = obs.race_hours(conn, race)
    out = []
    for g, group in enumerate(CLASS_GROUPS):
        members = [c for c in cars if c.group == g]
        if not members:
            continue
        frailty = torch.randn(draws["failure_rate"].shape[0], generator=generator)
        rate = draws["failure_rate"][:, g] * (draws["failure_race_sd"] * frailty).exp()
        big_h = (
            failures.cumulative_hazard(rate, draws["failure_shape"], torch.tensor(hours))
            + other_hazard * hours
        )
        p = -torch.expm1(-big_h)
        retired = (torch.rand((p.shape[0], len(members)), generator=generator) < p[:, None]).sum(-1)
        names = "/".join(sorted({c.class_name or "?" for c in members}))
        out.append(
            _check(
                "failures",
                race.name,
                split,
                f"retirements {group} ({names}, {len(members)} cars)",
                sum(c.retired for c in members),
                retired.float(),
            )
        )
    return out


def contact_checks(
    race: str,
    split: str,
    data: contacts.ContactData,
    draws: dict[str, torch.Tensor],
    generator: torch.Generator,
) -> list[Check]:
    """Contacts per hour of racing (all cars) in a race that records contacts."""
    assert data.counts is not None
    features = tuple(data.features.unbind(-1))
    params = {k: v.unsqueeze(-1) for k, v in draws.items() if k.startswith("contact_")}
    log_rate = contacts.log_hazard(params, features) + params["contact_sim_offset"] * data.sim
    expected = (data.hours * log_rate.exp()).sum(-1)
    simulated = torch.poisson(expected, generator=generator)
    car_hours = data.hours.sum()
    return [
        _check(
            "contacts",
            race,
            split,
            "contacts per car-hour",
            float(data.counts.sum() / car_hours),
            simulated / car_hours,
        ),
        _check(
            "contacts", race, split, "contacts in the race", float(data.counts.sum()), simulated
        ),
    ]


def terminal_checks(
    race: str,
    split: str,
    terminal: torch.Tensor,
    draws: dict[str, torch.Tensor],
    generator: torch.Generator,
) -> list[Check]:
    """Contacts that ended the car's race."""
    n = terminal.shape[0]
    if n == 0:
        return []
    p = draws["damage_terminal"]
    sim = (torch.rand((p.shape[0], n), generator=generator) < p[:, None]).sum(-1).float()
    return [
        _check("damage", race, split, f"terminal contacts (of {n})", float(terminal.sum()), sim)
    ]


def flag_lap_checks(
    race: str,
    split: str,
    log_ratio: dict[str, torch.Tensor],
    draws: dict[str, torch.Tensor],
    generator: torch.Generator,
) -> list[Check]:
    """Median lap time under FCY and safety car over the green reference."""
    out = []
    for kind, x in log_ratio.items():
        n = x.shape[0]
        if n == 0:
            continue
        s = draws[f"flag_{kind}_lap"].shape[0]
        z = torch.randn((s, n), generator=generator)
        race_effect = draws["flag_race_sd"] * torch.randn(s, generator=generator)
        loc = draws[f"flag_{kind}_lap"].log() + race_effect
        sim = loc[:, None] + draws["flag_lap_sd"][:, None] * z
        out.append(
            _check(
                "flags",
                race,
                split,
                f"median {kind.upper()} lap / green (n={n})",
                float(x.median().exp()),
                sim.median(-1).values.exp(),
            )
        )
    return out


def temperature_checks(
    race: str,
    split: str,
    data: weather.TemperatureData,
    draws: dict[str, torch.Tensor],
    generator: torch.Generator,
    spacing_s: float = 900.0,
) -> list[Check]:
    """Mean air temperature, its range over the race, and the track's mean excess over it."""
    n = data.hour_of_day.shape[0]
    s = draws["air_mean_c"].shape[0]
    p = {k: draws[k][:, None] for k in weather.PRIORS}
    rho = math.exp(-spacing_s / weather.TEMP_CORRELATION_S)
    z = torch.randn((s, n), generator=generator)
    dev = torch.empty((s, n))
    d = p["temp_noise_c"][:, 0] * z[:, 0]
    for k in range(n):
        if k:
            d = rho * d + math.sqrt(1 - rho * rho) * p["temp_noise_c"][:, 0] * z[:, k]
        dev[:, k] = d
    air = weather.air_cycle_c(p, data.hour_of_day) + dev
    track = weather.track_cycle_c(p, data.hour_of_day, data.wetness) + dev
    return [
        _check(
            "weather",
            race,
            split,
            "mean air temperature [°C]",
            float(data.air_c.mean()),
            air.mean(-1),
        ),
        _check(
            "weather",
            race,
            split,
            "air temperature range [°C]",
            float(data.air_c.max() - data.air_c.min()),
            air.max(-1).values - air.min(-1).values,
        ),
        _check(
            "weather",
            race,
            split,
            "mean track minus air [°C]",
            float((data.track_c - data.air_c).mean()),
            (track - air).mean(-1),
        ),
    ]


def format_table(checks: list[Check]) -> str:
    """The checks as an aligned text table."""
    lines = [f"{'model':<16}{'split':<9}{'race':<34}{'statistic':<52}{'observed':>10}  5-95 %"]
    for c in checks:
        mark = "" if c.covered else "  OUTSIDE"
        lines.append(
            f"{c.model:<16}{c.split:<9}{c.race[:33]:<34}{c.statistic[:51]:<52}"
            f"{c.observed:>10.3g}  [{c.low:.3g}, {c.high:.3g}]{mark}"
        )
    return "\n".join(lines)


def sampler_checks(
    model: PosteriorEventModel,
    race_name: str,
    split: str,
    observed: dict[str, float],
    class_index: list[int],
    hours: float,
    start_hour_of_day: float,
    generator: torch.Generator,
    replicas: int = 200,
    window_s: float = 30.0,
) -> list[Check]:
    """The engine-facing sampler end to end over a whole race at the reference exposure:
    incidents every window, race control answering the worst of each window when no
    neutralisation is running, retired cars leaving the track. ``observed``: statistic name
    -> observed value (keys 'FCY periods per 24 h', 'SC periods per 24 h', 'retirements');
    ``class_index``: each car's class in the model's class names (configure it for them)."""
    ref = model.reference
    params = model.draw_params(replicas, generator)
    shape = (replicas, len(class_index))
    running = torch.ones(shape, dtype=torch.bool)
    busy_until = torch.zeros(replicas)
    counts = {FlagState.FCY: torch.zeros(replicas), FlagState.SAFETY_CAR: torch.zeros(replicas)}
    classes = torch.tensor(class_index, dtype=torch.int64).expand(shape)
    windows = int(hours * 3600.0 / window_s)
    for k in range(windows):
        t = (k + 1) * window_s
        hour = (start_hour_of_day + t / 3600.0) % 24.0
        night = 1.0 if (hour >= 22.0 or hour < 5.5) else 0.0
        exposure = CarExposure(
            dt_s=running.float() * window_s,
            race_time_s=torch.full(shape, t),
            traffic=torch.full(shape, ref.traffic),
            faster_class_traffic=torch.full(shape, ref.faster_class_traffic),
            pace_mode=torch.ones(shape, dtype=torch.int64),
            tread_min=torch.full(shape, ref.tread_min),
            class_index=classes,
            driver_skill=torch.zeros(shape),
            wetness=torch.zeros(shape),
            night=torch.full(shape, night),
        )
        inc = model.car_incidents(params, exposure, generator)
        stopped = inc.failure | inc.puncture
        severity = torch.where(stopped, 1.0, inc.damage).amax(-1)
        neut = model.neutralisation(params, severity, generator)
        free = busy_until <= t
        for flag, c in counts.items():
            c += (free & (neut.kind == flag)).float()
        race_wide = neut.kind != FlagState.LOCAL_YELLOW
        busy_until = torch.where(free & race_wide, t + neut.duration_s, busy_until)
        running &= ~inc.retired
    per_24h = 24.0 / hours
    sims = {
        "FCY periods per 24 h": counts[FlagState.FCY] * per_24h,
        "SC periods per 24 h": counts[FlagState.SAFETY_CAR] * per_24h,
        "retirements": (~running).sum(-1).float(),
    }
    return [
        _check("sampler", race_name, split, f"{name} (engine sampler)", observed[name], sims[name])
        for name in sims
        if name in observed
    ]
