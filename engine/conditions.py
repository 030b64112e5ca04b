"""The race's surroundings over time: weather grids, darkness, and flag factors by code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.scenario import Scenario
from events.interface import EventModel, EventParams, ForcedEvent, ForcedKind, WeatherTrack
from world_model.interface import FlagState

WEATHER_STEP_S = 60.0
"""Grid spacing of the weather track [s]."""
FORECAST_S = 3600.0
"""Horizon of a team's rain forecast [s]."""


@dataclass(frozen=True)
class WeatherGrid:
    """Rain, wetness and track temperature ``[R, T]`` on a grid of ``step_s``, plus the
    cumulative rain used for forecasts."""

    step_s: float
    rain: torch.Tensor
    wetness: torch.Tensor
    track_temp_c: torch.Tensor
    air_temp_c: torch.Tensor
    rain_cum: torch.Tensor
    """``[R, T + 1]`` float64 cumulative rain (``rain_cum[:, k]`` = sum of the first k)."""

    @staticmethod
    def from_track(track: WeatherTrack) -> WeatherGrid:
        cum = torch.zeros(track.rain.shape[0], track.rain.shape[1] + 1, dtype=torch.float64)
        cum[:, 1:] = track.rain.double().cumsum(dim=1)
        return WeatherGrid(
            step_s=track.step_s,
            rain=track.rain.float(),
            wetness=track.wetness.float(),
            track_temp_c=track.track_temp_c.float(),
            air_temp_c=track.air_temp_c.float(),
            rain_cum=cum,
        )

    @property
    def _stacked(self) -> torch.Tensor:
        """``[R * T, 3]`` rain, wetness, track temperature (built once: one gather per call)."""
        cached = self.__dict__.get("_stacked_cache")
        if cached is None:
            cached = torch.stack([self.rain, self.wetness, self.track_temp_c], dim=2).reshape(-1, 3)
            object.__setattr__(self, "_stacked_cache", cached)
        return cached

    def at(self, rep: torch.Tensor, time_s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(rain, wetness, track temp) of rows ``rep`` at race times ``time_s``."""
        t = self.rain.shape[1]
        k = (time_s / self.step_s).long().clamp(0, t - 1)
        rows = self._stacked.index_select(0, rep * t + k)
        return rows[:, 0], rows[:, 1], rows[:, 2]

    def forecast(self, rep: torch.Tensor, time_s: torch.Tensor) -> torch.Tensor:
        """Mean rain over the next ``FORECAST_S`` for rows ``rep``."""
        t = self.rain.shape[1]
        k0 = (time_s / self.step_s).long().clamp(0, t)
        n = int(FORECAST_S / self.step_s)
        k1 = (k0 + n).clamp(max=t)
        span = (k1 - k0).clamp(min=1).double()
        cum = self.rain_cum.view(-1)
        base = rep * (t + 1)  # flat rows: index_select, not advanced indexing
        return ((cum.index_select(0, base + k1) - cum.index_select(0, base + k0)) / span).float()


def draw_weather(
    scenario: Scenario,
    event_model: EventModel | None,
    params: EventParams | None,
    replicas: int,
    horizon_s: float,
    generator: torch.Generator,
    forced: Sequence[ForcedEvent],
) -> WeatherGrid:
    """The weather of every replica: the event model's draw when weather is on, else dry at
    the track's temperatures with any scripted rain or wetness laid on top (the track as wet
    as the rain: no lag)."""
    rain_events = [e for e in forced if e.kind in (ForcedKind.RAIN, ForcedKind.WET)]
    if scenario.events.weather:
        if event_model is None or params is None:
            raise ValueError("weather is on but no event model is loaded")
        track = event_model.weather(
            params,
            scenario.race.start_hour_of_day,
            horizon_s,
            WEATHER_STEP_S,
            generator,
            forced=tuple(rain_events),
        )
        return WeatherGrid.from_track(track)
    t = int(horizon_s // WEATHER_STEP_S) + 2
    rain = torch.zeros(replicas, t)
    times = torch.arange(t) * WEATHER_STEP_S
    for e in rain_events:
        start = e.start_s or 0.0
        end = e.end_s if e.end_s is not None else horizon_s
        rain[:, (times >= start) & (times < end)] = e.intensity
    return WeatherGrid.from_track(
        WeatherTrack(
            step_s=WEATHER_STEP_S,
            rain=rain,
            wetness=rain.clone(),
            track_temp_c=torch.full((replicas, t), scenario.track.track_temp_c),
            air_temp_c=torch.full((replicas, t), scenario.track.air_temp_c),
        )
    )


def darkness(scenario: Scenario, race_time_s: torch.Tensor) -> torch.Tensor:
    """1.0 in darkness, 0.0 in daylight, half-hour ramps centred on sunset and sunrise."""
    h = (scenario.race.start_hour_of_day + race_time_s.double() / 3600.0) % 24.0
    sunset, sunrise = scenario.track.sunset_hour, scenario.track.sunrise_hour
    night_len = (sunrise - sunset) % 24.0
    since_set = (h - sunset) % 24.0
    to_rise = (sunrise - h) % 24.0
    to_set = (sunset - h) % 24.0
    since_rise = (h - sunrise) % 24.0
    inside = since_set < night_len
    dark_in = (0.5 + 2.0 * torch.minimum(since_set, to_rise)).clamp(max=1.0)
    dark_out = (0.5 - 2.0 * torch.minimum(to_set, since_rise)).clamp(min=0.0)
    return torch.where(inside, dark_in, dark_out).float()


@dataclass(frozen=True)
class FlagFactors:
    """Lap-time, fuel and wear factors indexed by :class:`FlagState` code."""

    time: torch.Tensor
    fuel: torch.Tensor
    wear: torch.Tensor

    @staticmethod
    def from_scenario(scenario: Scenario) -> FlagFactors:
        rules = [scenario.rules.flag_rule(FlagState(k)) for k in range(len(FlagState))]
        return FlagFactors(
            time=torch.tensor([r.lap_time_factor for r in rules], dtype=torch.float64),
            fuel=torch.tensor([r.fuel_factor for r in rules], dtype=torch.float64),
            wear=torch.tensor([r.wear_factor for r in rules], dtype=torch.float64),
        )
