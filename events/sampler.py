"""The engine's event sampler: every incident model driven by a set of parameter draws.

:class:`PosteriorEventModel` implements :class:`events.interface.EventModel` from draws
``{name: Tensor[S, ...]}`` (a fitted posterior or prior samples). ``draw_params`` picks one
draw per replica, so parameter uncertainty reaches the spread of simulated races. Every
random call draws a fixed-shape block of numbers from the generator it is given, whatever
the race state (common random numbers): two strategies on the same seed see the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from events.classes import CLASS_GROUPS, class_groups
from events.interface import (
    CarExposure,
    CarIncidents,
    EventParams,
    FlagEffect,
    ForcedEvent,
    ForcedKind,
    Neutralisation,
    WeatherTrack,
)
from events.models import (
    ALL_PRIORS,
    contacts,
    damage,
    failures,
    flags,
    neutralisations,
    punctures,
    weather,
)
from events.models.neutralisations import KINDS
from events.risk_hazards import incident_kind, risk_hazards
from world_model.interface import FlagState, PaceMode

_KIND_FLAG: dict[str, FlagState] = {
    "ly": FlagState.LOCAL_YELLOW,
    "fcy": FlagState.FCY,
    "sc": FlagState.SAFETY_CAR,
    "sz": FlagState.SLOW_ZONE,
}


@dataclass(frozen=True, eq=False)
class ReplicaParams(Mapping[str, torch.Tensor]):
    """Every replica's parameters (first dimension ``R``): the posterior draw it got, read
    by name like a mapping, and the constants derived from it once per replica."""

    draws: Mapping[str, torch.Tensor]
    """The fitted parameters of the replica's posterior draw, by name."""
    failure_rate_by_group: torch.Tensor
    """``[R, G]`` failure rate per car-hour of each class group, with the replica's frailty."""
    failure_rate_by_class: torch.Tensor
    """``[R, n_classes]`` the same per scenario class (``[R, 1]`` pooled without names)."""
    sc_log_shift: torch.Tensor
    """``[R]`` log-duration shift of a safety car for the track's lap length."""
    race_proneness: torch.Tensor
    """``[R]`` the replica's multiplier on neutralisation rates."""
    neut_sc_scale: torch.Tensor
    """``[R]`` chance of a safety car per squared incident severity."""
    neut_fcy_scale: torch.Tensor
    """``[R]`` chance of an FCY per incident severity."""
    neut_sz_scale: torch.Tensor
    """``[R]`` chance of a slow zone per incident severity."""
    trigger_rate: torch.Tensor
    """``[R]`` incidents per car-hour at the reference exposure."""

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.draws[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)


@dataclass(frozen=True)
class ReferenceExposure:
    """The typical state of a car in a race, at which the neutralisation rates are calibrated.

    Race control's chance of calling each kind for an incident is scaled so that, at this
    exposure, neutralisations arrive at their fitted rate per car-hour.
    """

    traffic: float = 1.5
    """Cars within 5 s."""
    faster_class_traffic: float = 0.5
    """Of those, of another class."""
    night: float = 1.0 / 3.0
    """Fraction of a 24 h race in darkness."""
    tread_min: float = 0.5
    """Mid-stint tread."""
    age_h: float = failures.REFERENCE_AGE_H

    def contact_hazard(self, params: EventParams) -> torch.Tensor:
        """Contact hazard per car-hour of each draw (first dimension of ``params``) here."""
        r = next(iter(params.values())).shape[0]
        ones, zeros = torch.ones(r), torch.zeros(r)
        features = (
            ones * self.traffic,
            ones * self.faster_class_traffic,
            ones * self.night,
            zeros,
            zeros,
            zeros,
            zeros,
        )
        return contacts.log_hazard(dict(params), features).exp()


class PosteriorEventModel:
    """:class:`~events.interface.EventModel` sampling from parameter draws.

    ``class_names`` (the scenario's classes, in ``class_index`` order) map each class onto
    the failure rate of its fitted group (:mod:`events.classes`); a class of no known group,
    or every class when names are not given, uses the geometric mean of the groups' rates.
    ``lap_length_m`` (default: Le Mans) scales safety-car durations.
    """

    def __init__(
        self,
        draws: Mapping[str, torch.Tensor],
        *,
        class_names: Sequence[str] | None = None,
        lap_length_m: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        reference: ReferenceExposure | None = None,
    ) -> None:
        missing = [k for k in _REQUIRED if k not in draws]
        if missing:
            raise ValueError(f"parameter draws lack {missing}")
        self.draws = {k: v.to(torch.float32) for k, v in draws.items()}
        self.num_draws = int(next(iter(self.draws.values())).shape[0])
        self.class_names = None if class_names is None else tuple(class_names)
        self.lap_length_m = lap_length_m
        self.lap_length_km = (
            neutralisations.REFERENCE_LAP_KM if lap_length_m is None else lap_length_m / 1000.0
        )
        self.metadata = dict(metadata or {})
        self.reference = reference or ReferenceExposure()
        self._flag_effects = self._mean_flag_effects()

    def configured(
        self, class_names: Sequence[str] | None = None, lap_length_m: float | None = None
    ) -> PosteriorEventModel:
        """The same draws for a scenario: its class names (``class_index`` order) and lap
        length [m] (safety cars last longer on a longer lap); None keeps the current one."""
        return PosteriorEventModel(
            self.draws,
            class_names=self.class_names if class_names is None else class_names,
            lap_length_m=self.lap_length_m if lap_length_m is None else lap_length_m,
            metadata=self.metadata,
            reference=self.reference,
        )

    # -- parameters -------------------------------------------------------------------------

    def draw_params(self, replicas: int, generator: torch.Generator) -> ReplicaParams:
        """One posterior draw per replica, plus derived per-replica constants: the replica's
        race proneness (neutralisations) and class frailties (failures)."""
        index = torch.randint(self.num_draws, (replicas,), generator=generator)
        race_effect = torch.randn(replicas, generator=generator)
        frailty = torch.randn((replicas, len(CLASS_GROUPS)), generator=generator)
        p = {k: v[index] for k, v in self.draws.items()}
        rate = p["failure_rate"] * (p["failure_race_sd"].unsqueeze(-1) * frailty).exp()
        proneness = (p["neut_race_sd"] * race_effect).exp()
        sc_scale, fcy_scale, sz_scale, trigger_rate = self._neutralisation_calibration(
            p, rate, proneness
        )
        return ReplicaParams(
            draws=p,
            failure_rate_by_group=rate,
            failure_rate_by_class=self._failure_table(rate),
            sc_log_shift=neutralisations.sc_length_term(p, self.lap_length_km),
            race_proneness=proneness,
            neut_sc_scale=sc_scale,
            neut_fcy_scale=fcy_scale,
            neut_sz_scale=sz_scale,
            trigger_rate=trigger_rate,
        )

    def _failure_table(self, rate: torch.Tensor) -> torch.Tensor:
        """``[R, n_classes]`` failure rate of each scenario class (``[R, 1]`` if unnamed)."""
        pooled = rate.log().mean(-1, keepdim=True).exp()
        if self.class_names is None:
            return pooled
        columns = [
            pooled[:, 0] if g is None else rate[:, g] for g in class_groups(self.class_names)
        ]
        return torch.stack(columns, dim=-1)

    def _neutralisation_calibration(
        self,
        p: Mapping[str, torch.Tensor],
        failure_rate_by_group: torch.Tensor,
        proneness: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(safety-car, FCY and slow-zone scales, trigger rate): per-kind scale of race
        control's response so that kinds arrive at their rates.

        An incident of severity ``s`` becomes a safety car with probability
        ``c_sc s² / E[s²]`` and an FCY or slow zone with ``c_k s / E[s]``, where ``c_k`` is
        the kind's fitted rate (times the replica's race proneness) over the rate of
        incidents at the reference exposure (with the replica's own failure frailty), and
        the moments are over those incidents' severities (contacts: 1 when terminal or
        puncturing, else Kumaraswamy; failures and punctures: 1).
        """
        ref = self.reference
        ones = torch.ones(next(iter(p.values())).shape[0])
        contact_rate = ref.contact_hazard(p)
        puncture_rate = punctures.log_hazard(p, ones * ref.tread_min).exp()
        failure_rate = failures.hazard(
            failure_rate_by_group.mean(-1), p["failure_shape"], ones * ref.age_h
        )
        trigger_rate = contact_rate + puncture_rate + failure_rate
        w = contact_rate / trigger_rate
        # A contact's severity: 1 if terminal or if it punctures a tyre (the car stops),
        # else Kumaraswamy.
        pt, cut = p["damage_terminal"], p["damage_puncture"]
        full = pt + (1 - pt) * cut
        m1 = w * (full + (1 - full) * damage.kumaraswamy_moment(1, p["damage_a"], p["damage_b"]))
        m2 = w * (full + (1 - full) * damage.kumaraswamy_moment(2, p["damage_a"], p["damage_b"]))
        m1, m2 = m1 + (1 - w), m2 + (1 - w)
        scale = proneness / trigger_rate
        return (
            p["neut_rate_sc"] * scale / m2,
            p["neut_rate_fcy"] * scale / m1,
            p["neut_rate_sz"] * scale / m1,
            trigger_rate,
        )

    # -- incidents --------------------------------------------------------------------------

    @staticmethod
    def _hazards(
        params: ReplicaParams, exposure: CarExposure
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[R, C]`` hazards per car-hour of a contact, a puncture and a failure.

        Every car's hazard over the dense field: a few fused elementwise passes over
        ``[R, C]`` cost less than gathering candidates (a bound on the field's worst car is
        useless once any car sits in heavy traffic or on a punctured tyre)."""
        p = {k: params[k].unsqueeze(-1) for k in _PER_CAR_KEYS}
        pace = exposure.pace_mode
        features = (
            exposure.traffic,
            exposure.faster_class_traffic,
            exposure.night,
            exposure.wetness,
            (pace == PaceMode.PUSH).float(),
            (pace == PaceMode.SAVE).float(),
            exposure.driver_skill,
        )
        h_contact = contacts.log_hazard(p, features).exp_()
        h_puncture = punctures.log_hazard(p, exposure.tread_min).exp_()
        table = params.failure_rate_by_class
        rate = table.gather(1, exposure.class_index.clamp(0, table.shape[1] - 1))
        age_h = exposure.race_time_s * (1.0 / 3600.0)
        return h_contact, h_puncture, failures.hazard(rate, p["failure_shape"], age_h)

    def car_incidents(
        self, params: ReplicaParams, exposure: CarExposure, generator: torch.Generator
    ) -> CarIncidents:
        """Contacts, damage, punctures and failures in one window.

        Draws exactly one float64 uniform per car per call (``[R, C]``), whatever the state.
        A car has an incident when it falls below ``1 - exp(-hazard x dt)`` of its total
        hazard; given that, the uniform rescaled to (0, 1) is again uniform and independent
        of the event, and is peeled in turn for the kind (contact, puncture, failure in
        proportion to their hazards), the partner, the time inside the window, a
        contact-caused puncture, a terminal contact and the damage severity (a float64
        uniform carries ~40 bits below a hazard of 1e-4, plenty for these). At most one
        incident per car per window, which the short windows make negligible.

        A contact's ``partner`` is a uniformly random other car of the same replica on track
        in the window (the traffic features say how likely a contact is, not with whom;
        -1 if the car is alone on track); the partner draws no
        damage from it here (its own hazard already counts its involvement). A failure
        always retires the car; a terminal contact sets damage to 1 and retires it.
        """
        dt = exposure.dt_s
        r, c = dt.shape
        u = torch.rand((r, c), generator=generator, dtype=torch.float64)
        h_contact, h_puncture, h_failure = self._hazards(params, exposure)
        h_off, h_puncture, h_failure = risk_hazards(exposure, h_puncture, h_failure)
        h_total = h_contact + h_puncture + h_failure
        if h_off is not None:
            h_total = h_total + h_off
        p_any = torch.expm1(-h_total * (dt * (1.0 / 3600.0))).neg_()
        hit = (u < p_any).view(-1).nonzero().squeeze(-1)
        rows, cars = hit // c, hit % c

        def at(x: torch.Tensor) -> torch.Tensor:
            return x[rows, cars]

        u_hit = at(u)
        h_contact, h_puncture, h_total, p_any = (
            at(x) for x in (h_contact, h_puncture, h_total, p_any)
        )
        h_off_hit = None if h_off is None else at(h_off)
        col = {k: params[k][rows] for k in _PER_CAR_KEYS if k.startswith("damage_")}

        partner = torch.full((r, c), -1, dtype=torch.int64)
        damage_added = torch.zeros_like(dt)
        time_s = torch.full_like(dt, math.nan)
        contact, off, puncture, failure, retired = torch.zeros((5, r, c), dtype=torch.bool).unbind(
            0
        )
        if rows.numel():
            v = u_hit / p_any.double()
            is_c, is_p, is_o, is_f, v = incident_kind(v, h_contact, h_puncture, h_off_hit, h_total)
            is_hit = is_c | is_o
            # The partner: a uniformly random other car on track in the window (-1 if none).
            on_track = dt[rows] > 0
            on_track[torch.arange(rows.numel()), cars] = False
            others = on_track.sum(-1)
            scaled = v.clamp(0.0, 1.0 - 1e-12) * others.clamp_min(1)
            pick = scaled.floor()
            v = scaled - pick
            nth = on_track & (on_track.cumsum(-1) == pick.long().unsqueeze(-1) + 1)
            other = torch.where(others > 0, nth.long().argmax(-1), -1)
            bin_, v = _peel(v, 256)
            frac_in_window = (bin_.double() + 0.5) / 256
            cut = col["damage_puncture"].double()
            also_puncture = is_hit & (v < cut)
            v = torch.where(v < cut, v / cut, (v - cut) / (1 - cut))
            pt = col["damage_terminal"].double()
            is_terminal = is_hit & (v < pt)
            w = torch.where(v < pt, v / pt, (v - pt) / (1 - pt)).clamp(1e-9, 1 - 1e-9).float()
            severity = damage.kumaraswamy_icdf(w, col["damage_a"], col["damage_b"])
            contact[rows, cars] = is_c
            off[rows, cars] = is_o
            puncture[rows, cars] = is_p | (also_puncture & ~is_terminal)
            failure[rows, cars] = is_f
            retired[rows, cars] = is_f | is_terminal
            partner[rows, cars] = torch.where(is_c, other, -1)
            hit = torch.where(is_terminal, 1.0, severity)
            damage_added[rows, cars] = torch.where(is_hit, hit, 0.0)
            time_s[rows, cars] = (
                exposure.race_time_s[rows, cars] - dt[rows, cars] * frac_in_window.float()
            )
        return CarIncidents(
            contact=contact,
            off=off,
            partner=partner,
            damage=damage_added,
            puncture=puncture,
            failure=failure,
            retired=retired,
            time_s=time_s,
        )

    def damage_effects(
        self, params: EventParams, damage_level: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lap-time loss fraction, repair time [s]) for damage ``[R, C]``."""
        col = {k: params[k].unsqueeze(-1) for k in ("damage_lap_loss", "damage_repair_s")}
        return (
            damage.lap_loss_fraction(col, damage_level),
            damage.repair_time_s(col, damage_level),
        )

    # -- race control -----------------------------------------------------------------------

    def neutralisation(
        self, params: ReplicaParams, severity: torch.Tensor, generator: torch.Generator
    ) -> Neutralisation:
        """Race control's answer to the worst incident of the window, per replica.

        Draws a fixed ``[2, R]`` block (kind choice, duration) per call. A kind's chance
        rises with severity (see :meth:`_neutralisation_calibration`); an incident left green
        by the race-wide kinds gets a local yellow with probability ``neut_local``.
        """
        r = severity.shape[0]
        u = torch.rand(r, generator=generator)
        z = torch.randn(r, generator=generator)
        s = severity.clamp(0.0, 1.0)
        p_sc = params.neut_sc_scale * s.square()
        p_fcy = params.neut_fcy_scale * s
        p_sz = params.neut_sz_scale * s
        total = p_sc + p_fcy + p_sz
        norm = total.clamp_min(1.0)
        p_sc, p_fcy, p_sz = p_sc / norm, p_fcy / norm, p_sz / norm
        p_ly = params["neut_local"] * (1.0 - total / norm)
        edges = torch.stack([p_sc, p_fcy, p_sz, p_ly]).cumsum(0)
        choice = (u.unsqueeze(0) >= edges).sum(0)  # 0 sc, 1 fcy, 2 sz, 3 ly, 4 none
        codes = torch.tensor(
            [
                FlagState.SAFETY_CAR,
                FlagState.FCY,
                FlagState.SLOW_ZONE,
                FlagState.LOCAL_YELLOW,
                FlagState.GREEN,
            ]
        )
        kind = torch.where(s > 0, codes[choice], FlagState.GREEN)
        duration = self._durations(params, kind, z)
        return Neutralisation(kind=kind, duration_s=duration)

    def neutralisation_duration(
        self, params: ReplicaParams, kind: FlagState, generator: torch.Generator
    ) -> torch.Tensor:
        """Duration [s] ``[R]`` of a neutralisation of ``kind`` called now (a forced one
        without an end); draws one normal per replica."""
        r = params["neut_fcy_log_mean"].shape[0]
        z = torch.randn(r, generator=generator)
        return self._durations(params, torch.full((r,), int(kind)), z)

    def _durations(
        self, params: ReplicaParams, kind: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        out = torch.zeros_like(z)
        for name in KINDS:
            loc = params[f"neut_{name}_log_mean"]
            if name == "sc":
                loc = loc + params.sc_log_shift
            d = (loc + params[f"neut_{name}_log_sd"] * z).exp()
            out = torch.where(kind == _KIND_FLAG[name], d, out)
        return out

    def flag_effect(self, kind: FlagState) -> FlagEffect:
        """Posterior-mean lap-time, fuel and wear factors per lap under ``kind``."""
        return self._flag_effects.get(FlagState(kind), FlagEffect(1.0, 1.0, 1.0))

    def _mean_flag_effects(self) -> dict[FlagState, FlagEffect]:
        out = {}
        for state, name in flags.KIND_NAMES.items():
            out[state] = FlagEffect(
                lap_time_factor=float(self.draws[f"flag_{name}_lap"].mean()),
                fuel_factor=float(self.draws[f"flag_{name}_fuel"].mean()),
                wear_factor=float(self.draws[f"flag_{name}_wear"].mean()),
            )
        return out

    # -- weather ----------------------------------------------------------------------------

    def weather(
        self,
        params: EventParams,
        start_hour_of_day: float,
        duration_s: float,
        step_s: float,
        generator: torch.Generator,
        forced: Sequence[ForcedEvent] = (),
    ) -> WeatherTrack:
        """The whole race's weather on a grid of ``step_s``.

        Draws a fixed ``[3, T, R]`` block (rain transitions, shower intensity, temperature
        noise) plus one uniform per replica for each forced rain without an end. Forced rain
        replaces the drawn rain from ``start_s`` to ``end_s`` (end drawn from the shower
        length when absent) at the scripted intensity; wetness and track temperature then
        follow the forced rain. Forced wetness (``ForcedKind.WET``) sets the track's wetness,
        and the rain, to its intensity inside its span (to the race's end without an end
        time), with no lag; outside it the track is as the draw has it.
        """
        if step_s <= 0 or duration_s < 0:
            raise ValueError(
                f"weather grid needs step_s > 0 and duration_s >= 0, got {step_s}, {duration_s}"
            )
        r = params["rain_onset_per_h"].shape[0]
        t = math.floor(duration_s / step_s) + 1
        u = torch.rand((2, t, r), generator=generator)
        z = torch.randn((t, r), generator=generator)
        step_h = step_s / 3600.0
        p_on = -torch.expm1(-params["rain_onset_per_h"] * step_h)
        p_off = -torch.expm1(-params["rain_stop_per_h"] * step_h)
        shower = damage.kumaraswamy_icdf(
            u[1].clamp(1e-6, 1 - 1e-6), params["rain_intensity_a"], params["rain_intensity_b"]
        )
        rain = torch.empty(t, r)
        raining = torch.zeros(r, dtype=torch.bool)
        intensity = torch.zeros(r)
        for k in range(t):
            start = ~raining & (u[0, k] < p_on)
            stop = raining & (u[0, k] < p_off)
            intensity = torch.where(start, shower[k], intensity)
            raining = (raining | start) & ~stop
            rain[k] = torch.where(raining, intensity, 0.0)
        times = torch.arange(t, dtype=torch.float64) * step_s
        for event in forced:
            if event.kind != ForcedKind.RAIN:
                continue
            if event.start_s is None:
                raise ValueError(f"forced rain needs a start time: {event}")
            if event.end_s is not None:
                end = torch.full((r,), float(event.end_s), dtype=torch.float64)
            else:
                uu = torch.rand(r, generator=generator).clamp_min(1e-12)
                end = event.start_s - uu.log().double() / params["rain_stop_per_h"].double() * 3600
            inside = (times.unsqueeze(1) >= event.start_s) & (times.unsqueeze(1) < end)
            rain = torch.where(inside, float(event.intensity), rain)
        scripted_wet = [e for e in forced if e.kind == ForcedKind.WET]
        wet_gain = -torch.expm1(-step_s / params["wet_tau_s"])
        dry_gain = -torch.expm1(-step_s / params["dry_tau_s"])
        rho = math.exp(-step_s / weather.TEMP_CORRELATION_S)
        innovation = math.sqrt(1.0 - rho * rho) * params["temp_noise_c"]
        wetness = torch.empty(t, r)
        w = torch.zeros(r)
        dev = params["temp_noise_c"] * z[0]
        departure = torch.empty(t, r)
        for k in range(t):
            gain = torch.where(rain[k] > w, wet_gain, dry_gain)
            w = w + (rain[k] - w) * gain
            wetness[k] = w
            if k:
                dev = rho * dev + innovation * z[k]
            departure[k] = dev
        for event in scripted_wet:
            start = event.start_s or 0.0
            end = event.end_s if event.end_s is not None else math.inf
            inside = ((times >= start) & (times < end)).unsqueeze(1)
            wetness = torch.where(inside, float(event.intensity), wetness)
            rain = torch.where(inside, float(event.intensity), rain)
        hour = (start_hour_of_day + times.float() / 3600.0).remainder(24.0).unsqueeze(1)
        col = {k: params[k].unsqueeze(0) for k in _WEATHER_KEYS}
        air = weather.air_cycle_c(col, hour) + departure
        track = weather.track_cycle_c(col, hour, wetness) + departure
        return WeatherTrack(
            step_s=float(step_s),
            rain=rain.T.contiguous(),
            wetness=wetness.T.contiguous(),
            track_temp_c=track.T.contiguous(),
            air_temp_c=air.T.contiguous(),
        )


_PER_CAR_KEYS: tuple[str, ...] = (
    *contacts.PRIORS,
    *punctures.PRIORS,
    "failure_shape",
    "damage_puncture",
    "damage_terminal",
    "damage_a",
    "damage_b",
)
"""Per-replica parameters of ``car_incidents``."""


def _peel(v: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a uniform on [0, 1) into a uniform integer below ``n`` and a fresh uniform."""
    scaled = v * n
    whole = scaled.floor()
    return whole.long().clamp_max(n - 1), scaled - whole


_WEATHER_KEYS: tuple[str, ...] = weather.TEMPERATURE_PARAMS
_REQUIRED: tuple[str, ...] = tuple(ALL_PRIORS)
