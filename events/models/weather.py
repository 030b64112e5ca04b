"""Weather: rain as a two-state Markov process over race time, wetness lagging the rain, and
air and track temperature through the day and night.

- Rain: a dry track turns to rain at ``rain_onset_per_h`` per hour; a shower stops at
  ``rain_stop_per_h`` (mean spell 1 / rate hours). Each shower's intensity (0 to 1) is
  Kumaraswamy(``rain_intensity_a``, ``rain_intensity_b``).
- Wetness follows the rain with a first-order lag: it rises toward the rain intensity with
  time constant ``wet_tau_s`` and dries toward 0 with ``dry_tau_s``.
- Air and track temperatures are each a 24 h sinusoid in the local time of day (mean plus
  cosine and sine parts: linear in the parameters, so the fit is well conditioned), the
  track cooled by ``rain_cooling_c x wetness``; both share a slow AR(1) departure of
  standard deviation ``temp_noise_c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior

TEMP_CORRELATION_S = 3600.0
"""Correlation time of the temperature departures from the daily cycle [s]."""

PRIORS: dict[str, Prior] = {
    "rain_onset_per_h": Prior(math.log(0.02), 0.7, link="exp", note="rain in ~40 % of 24 h races"),
    "rain_stop_per_h": Prior(math.log(0.6), 0.4, link="exp", note="showers last ~1-2 h"),
    "rain_intensity_a": Prior(math.log(1.5), 0.3, link="exp"),
    "rain_intensity_b": Prior(math.log(2.5), 0.3, link="exp", note="mean intensity ~0.4"),
    "wet_tau_s": Prior(math.log(600.0), 0.3, link="exp", note="a track soaks in ~10 min"),
    "dry_tau_s": Prior(math.log(2400.0), 0.3, link="exp", note="and dries in ~40 min"),
    "air_mean_c": Prior(20.0, 4.0, note="daily mean air temperature [°C]"),
    "air_cos_c": Prior(-3.0, 2.5, note="daily cycle, cosine part: warmest mid-afternoon"),
    "air_sin_c": Prior(-4.0, 2.5, note="daily cycle, sine part (amplitude ~5 °C)"),
    "track_mean_c": Prior(26.0, 6.0, note="daily mean track temperature [°C]"),
    "track_cos_c": Prior(-4.0, 4.0, note="the sun swings the track more than the air"),
    "track_sin_c": Prior(-5.0, 4.0),
    "temp_noise_c": Prior(math.log(0.8), 0.4, link="exp", note="departures from the cycle"),
    "rain_cooling_c": Prior(6.0, 2.0, note="a wet track is ~6 °C cooler"),
}


def _cycle(mean: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, hour_of_day: torch.Tensor):
    phase = 2.0 * math.pi * hour_of_day / 24.0
    return mean + cos * torch.cos(phase) + sin * torch.sin(phase)


def air_cycle_c(params: dict[str, torch.Tensor], hour_of_day: torch.Tensor) -> torch.Tensor:
    """Air temperature of the daily cycle [°C] (broadcasting)."""
    return _cycle(params["air_mean_c"], params["air_cos_c"], params["air_sin_c"], hour_of_day)


def track_cycle_c(
    params: dict[str, torch.Tensor], hour_of_day: torch.Tensor, wetness: torch.Tensor
) -> torch.Tensor:
    """Track temperature of the daily cycle less wet cooling [°C] (broadcasting)."""
    dry = _cycle(params["track_mean_c"], params["track_cos_c"], params["track_sin_c"], hour_of_day)
    return dry - params["rain_cooling_c"] * wetness


@dataclass(frozen=True)
class TemperatureData:
    """Weather-station samples (thinned so that their noise is close to independent)."""

    hour_of_day: torch.Tensor
    """Local time of day [h], ``[N]``."""
    air_c: torch.Tensor
    """Air temperature [°C], ``[N]``."""
    track_c: torch.Tensor
    """Track temperature [°C], ``[N]``."""
    wetness: torch.Tensor
    """Track wetness, ``[N]`` (0 where unknown and dry)."""


TEMPERATURE_PARAMS: tuple[str, ...] = (
    "air_mean_c",
    "air_cos_c",
    "air_sin_c",
    "track_mean_c",
    "track_cos_c",
    "track_sin_c",
    "temp_noise_c",
    "rain_cooling_c",
)


def temperature_model(data: TemperatureData) -> None:
    n = data.hour_of_day.shape[0]
    assert data.air_c.shape == (n,) and data.track_c.shape == (n,) and data.wetness.shape == (n,)
    p = {name: pyro.sample(name, PRIORS[name].dist()) for name in TEMPERATURE_PARAMS}
    with pyro.plate("samples", n, dim=-1):
        air = air_cycle_c(p, data.hour_of_day)
        pyro.sample("air", dist.Normal(air, p["temp_noise_c"]), obs=data.air_c)
        track = track_cycle_c(p, data.hour_of_day, data.wetness)
        pyro.sample("track", dist.Normal(track, p["temp_noise_c"]), obs=data.track_c)


@dataclass(frozen=True)
class RainData:
    """Rain spells of races with rain records, summed per race ``[K]``."""

    dry_hours: torch.Tensor
    onsets: torch.Tensor
    wet_hours: torch.Tensor
    stops: torch.Tensor
    intensities: torch.Tensor | None = None
    """Mean intensity of each observed shower in (0, 1), ``[M]``."""


def rain_model(data: RainData) -> None:
    k = data.dry_hours.shape[0]
    assert data.onsets.shape == (k,) and data.wet_hours.shape == (k,) and data.stops.shape == (k,)
    names = ("rain_onset_per_h", "rain_stop_per_h", "rain_intensity_a", "rain_intensity_b")
    p = {name: pyro.sample(name, PRIORS[name].dist()) for name in names}
    with pyro.plate("races", k, dim=-1):
        pyro.sample("onsets", dist.Poisson(data.dry_hours * p["rain_onset_per_h"]), obs=data.onsets)
        pyro.sample("stops", dist.Poisson(data.wet_hours * p["rain_stop_per_h"]), obs=data.stops)
    if data.intensities is not None and data.intensities.numel():
        with pyro.plate("showers", data.intensities.shape[0], dim=-1):
            pyro.sample(
                "intensity",
                dist.Kumaraswamy(p["rain_intensity_a"], p["rain_intensity_b"]),
                obs=data.intensities,
            )
